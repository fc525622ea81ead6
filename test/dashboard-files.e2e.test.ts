import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { buildExt4Disk } from './fs-images.js';
import { pseudoRandom } from './recovery-fixtures.js';
import { createWorkloadAndWait, startHarness, takeSnapshotAndWait, type Harness } from './harness.js';

/**
 * File recovery in the dashboard, in headless Chromium against a real Lifeboat: a snapshot of
 * a VM whose disk holds a real ext4 file system is mounted from its page (a real libguestfs
 * appliance, TCG), browsed folder by folder, a file downloaded byte for byte, then dismounted.
 * A separate file from dashboard.e2e because the appliance's launch takes minutes on a loaded
 * machine (timings are printed, never asserted).
 */
const CHROMIUM = '/usr/lib/chromium/chromium';
const SHOTS = join(process.cwd(), 'test-results', 'dashboard');
const MOUNT_WAIT = 600_000;
const skip = !existsSync(CHROMIUM) && process.env.CI !== 'true' ? `Chromium not installed at ${CHROMIUM}` : skipUnlessInstalled('guestfish', 'sgdisk', 'mkfs.ext4', 'fusermount3');

describe('dashboard file browser in headless Chromium', { skip }, () => {
  let h: Harness;
  let ctx: BrowserContext;
  let profile: string;
  let sid = '';
  const report = pseudoRandom(1_500_000, 'dashboard-report');

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium is required with CI=true: ${CHROMIUM} is missing`);
    mkdirSync(SHOTS, { recursive: true });
    h = await startHarness({ env: { LIFEBOAT_APPLIANCE_TCG: '1' } });
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    await buildExt4Disk(vm.disks[0]!.path, 64, { 'etc/hostname': 'vm-a3\n', 'srv/reports/q3.bin': report });
    const wid = await createWorkloadAndWait(h, h.alice, [vm.id], 'files');
    sid = (await takeSnapshotAndWait(h, h.alice, wid, true, 300_000)).id as string;
    profile = mkdtempSync(join(tmpdir(), 'lifeboat-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
    });
  });
  after(async () => {
    await ctx?.close();
    await h?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  test('mount from the snapshot page, browse, download a file byte for byte, dismount', async (t) => {
    const page = await ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('alice-pw');
    await page.getByLabel('Project').fill('alpha');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Workloads' }).waitFor();
    await page.goto(`${h.url}/dashboard/snapshots/${sid}`);
    const t0 = Date.now();
    await page.getByRole('button', { name: 'Mount snapshot' }).click();
    await page.getByRole('button', { name: 'Open folder vda1' }).waitFor({ timeout: MOUNT_WAIT });
    t.diagnostic(`mount to first listing: ${Date.now() - t0} ms`);
    await page.screenshot({ path: join(SHOTS, '18-files-root.png'), fullPage: true });
    await page.getByRole('button', { name: 'Open folder vda1' }).click();
    await page.getByRole('button', { name: 'Open folder srv' }).click();
    await page.getByRole('button', { name: 'Open folder reports' }).click();
    assert.equal(await page.getByTestId('browse-path').textContent(), '/vda1/srv/reports');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download q3.bin' }).click()]);
    assert.equal(download.suggestedFilename(), 'q3.bin');
    assert.ok(readFileSync((await download.path())!).equals(report), 'the downloaded file is the file in the snapshot');
    await page.screenshot({ path: join(SHOTS, '19-files-folder.png'), fullPage: true });
    await page.getByRole('button', { name: 'Up one folder' }).click();
    assert.equal(await page.getByTestId('browse-path').textContent(), '/vda1/srv');
    await page.getByRole('button', { name: 'Dismount' }).click();
    await page.getByRole('button', { name: 'Mount snapshot' }).waitFor({ timeout: 120_000 });
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status, 'available');
    await page.close();
  });
});
