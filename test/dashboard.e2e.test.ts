import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startHarness, waitFor, type Harness } from './harness.js';

/**
 * The dashboard in a real headless Chromium (Debian's package, driven by playwright-core; no
 * browser download) against a real Lifeboat with demo VMs. Every page is screenshotted into
 * test-results/dashboard/ for a reviewer. With CI=true a missing Chromium fails the suite.
 */
const CHROMIUM = '/usr/lib/chromium/chromium';
const SHOTS = join(process.cwd(), 'test-results', 'dashboard');
const haveChromium = existsSync(CHROMIUM);
const skip = !haveChromium && process.env.CI !== 'true' ? `Chromium not installed at ${CHROMIUM} (apt-get install chromium); set CI=true to make this a failure` : false;

describe('dashboard in headless Chromium', { skip }, () => {
  let h: Harness;
  let ctx: BrowserContext;
  let profile: string;
  let workloadId = '';
  const started = Date.now();

  before(async () => {
    assert.ok(haveChromium, `Chromium is required with CI=true: ${CHROMIUM} is missing`);
    mkdirSync(SHOTS, { recursive: true });
    h = await startHarness();
    profile = mkdtempSync(join(tmpdir(), 'lifeboat-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
      timezoneId: 'America/New_York',
      locale: 'en-US',
    });
  });
  after(async () => {
    await ctx?.close();
    await h?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  async function logIn(page: Page, user: string, password: string, project: string): Promise<void> {
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByLabel('Project').fill(project);
    await page.getByRole('button', { name: 'Log in' }).click();
  }

  test('cold load shows the login form; a wrong password shows the error', async (t) => {
    const page = await ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${h.url}/dashboard/`);
    await page.getByLabel('User name').waitFor();
    t.diagnostic(`cold first load to an interactive login form: ${Date.now() - t0} ms`);
    await logIn(page, 'alice', 'not-her-password', 'alpha');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /requires authentication/);
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    await shot(page, '01-login-wrong-password');
    await page.close();
  });

  test('a member logs in, sees no admin page, creates a workload (form validation first)', async () => {
    const page = await ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'alice', 'alice-pw', 'alpha');
    await page.getByRole('heading', { name: 'Workloads' }).waitFor();
    assert.match((await page.locator('.who').textContent()) ?? '', /alice · project alpha/);
    assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
    await shot(page, '02-workloads-empty');
    await page.goto(`${h.url}/dashboard/admin`);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    await shot(page, '03-member-admin-not-found');

    await page.getByRole('link', { name: 'Workloads', exact: true }).click();
    await page.getByRole('link', { name: 'New workload' }).click();
    await page.getByRole('heading', { name: 'New workload' }).waitFor();
    await page.getByLabel('Every').fill('0');
    await page.getByRole('button', { name: 'Create workload' }).click();
    assert.equal(await page.locator('#name-error').textContent(), 'Enter a name.');
    assert.equal(await page.locator('#instanceIds-error').textContent(), 'Enter at least one instance id.');
    assert.equal(await page.locator('#intervalValue-error').textContent(), 'Enter a whole number greater than 0.');
    assert.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'name');
    await shot(page, '04-new-workload-invalid');

    const vms = h.vms.filter((v) => v.projectId === h.alice.projectId).slice(0, 2);
    await page.getByLabel('Name').fill('web tier');
    await page.getByLabel('Instance ids').fill(vms.map((v) => v.id).join('\n'));
    await page.getByLabel('Every').fill('12');
    await page.getByRole('button', { name: 'Create workload' }).click();
    await page.getByRole('heading', { name: 'Workload web tier' }).waitFor();
    workloadId = page.url().split('/').pop()!;
    await page.locator('.summary .status-available').waitFor();
    const w = (await h.api(h.alice, 'GET', `/workloads/${workloadId}`)).json.workload;
    assert.deepEqual(w.instances.map((i: { id: string }) => i.id).sort(), vms.map((v) => v.id).sort());
    assert.equal(w.jobschedule.interval, '12 hr');
    assert.equal(w.jobschedule.timezone, 'America/New_York');
    await shot(page, '05-workload-created');

    // Full snapshot: the bar, fed by polling the snapshot detail, reaches 100 %.
    await page.getByRole('button', { name: 'Take full snapshot' }).click();
    const bar = page.getByRole('progressbar');
    await bar.waitFor();
    await page.locator('[role=progressbar][aria-valuenow="100"]').waitFor({ timeout: 60_000 });
    await page.locator('tbody .status-available').first().waitFor();
    const snaps = (await h.api(h.alice, 'GET', `/workloads/${workloadId}/snapshots`)).json.snapshots;
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0].status, 'available');
    assert.equal(snaps[0].snapshot_type, 'full');
    const time = page.locator('tbody time').first();
    assert.match((await time.getAttribute('title')) ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
    await shot(page, '06-snapshot-done');

    // One-click restore: the result page shows the new instances, as the API records them.
    await page.getByRole('button', { name: /^Restore snapshot/ }).click();
    await page.getByRole('heading', { name: /^Restore / }).waitFor();
    await page.locator('.summary .status-available').waitFor({ timeout: 60_000 });
    const rid = page.url().split('/').pop()!;
    const restore = (await h.api(h.alice, 'GET', `/restores/${rid}`)).json.restore;
    assert.equal(restore.status, 'available');
    assert.equal(restore.instances.length, 2);
    await page.locator('.instances li').nth(1).waitFor();
    const shown = await page.locator('.instances code').allTextContents();
    assert.deepEqual(shown.sort(), restore.instances.map((i: { id: string }) => i.id).sort());
    for (const id of shown) assert.ok(!vms.some((v) => v.id === id), 'restored instances are new VMs');
    assert.equal(await page.locator('[role=progressbar]').getAttribute('aria-valuenow'), '100');
    await shot(page, '07-restore-result');

    // The list shows the workload, its VMs and the last snapshot.
    await page.getByRole('link', { name: 'Workloads', exact: true }).click();
    const row = page.locator('tbody tr', { hasText: 'web tier' });
    await row.waitFor();
    const text = (await row.textContent()) ?? '';
    for (const v of vms) assert.ok(text.includes(v.name), `${v.name} in ${text}`);
    assert.match(text, /full · available/);
    await shot(page, '08-workloads-list');

    // Incremental snapshot, then pause and resume the schedule, from the workload page.
    await page.getByRole('link', { name: 'web tier' }).click();
    await page.getByRole('button', { name: 'Take incremental snapshot' }).click();
    await page.locator('[role=progressbar][aria-valuenow="100"]').waitFor({ timeout: 60_000 });
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${workloadId}/snapshots`)).json.snapshots.some((x: { snapshot_type: string; status: string }) => x.snapshot_type === 'incremental' && x.status === 'available'), 10_000, 'incremental available');
    await page.locator('tbody tr', { hasText: 'incremental' }).locator('.status-available').waitFor();
    await page.getByRole('button', { name: 'Pause schedule' }).click();
    await page.getByRole('button', { name: 'Resume schedule' }).waitFor();
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${workloadId}`)).json.workload.jobschedule.enabled, false);
    await shot(page, '09-incremental-paused');
    await page.getByRole('button', { name: 'Resume schedule' }).click();
    await page.getByRole('button', { name: 'Pause schedule' }).waitFor();
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${workloadId}`)).json.workload.jobschedule.enabled, true);

    // Delete the incremental (after confirming): it leaves the list and the API.
    const incr = (await h.api(h.alice, 'GET', `/workloads/${workloadId}/snapshots`)).json.snapshots.find((x: { snapshot_type: string }) => x.snapshot_type === 'incremental');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: `Delete snapshot ${incr.name}` }).click();
    await page.locator('tbody tr', { hasText: 'incremental' }).waitFor({ state: 'detached', timeout: 30_000 });
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${incr.id}`)).status, 404);
    assert.equal(await page.locator('tbody tr').count(), 1);

    // A failing snapshot (its VM's disk is gone) shows its error message, as the API has it.
    const vm3 = h.vms.find((v) => v.name === 'vm-a3')!;
    const created = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'doomed', instances: [{ 'instance-id': vm3.id }] } });
    assert.equal(created.status, 202, created.text);
    const doomed = created.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${doomed}`)).json.workload.status === 'available', 10_000, 'doomed available');
    rmSync(vm3.disks[0]!.path);
    await page.goto(`${h.url}/dashboard/workloads/${doomed}`);
    await page.getByRole('button', { name: 'Take full snapshot' }).click();
    const errText = page.locator('tbody .error-text');
    await errText.waitFor({ timeout: 60_000 });
    const failed = (await h.api(h.alice, 'GET', `/workloads/${doomed}/snapshots/detail`)).json.snapshots[0];
    assert.equal(failed.status, 'error');
    assert.ok(failed.error_msg, 'the API has an error message');
    assert.equal(await errText.textContent(), failed.error_msg);
    assert.doesNotMatch(failed.error_msg, new RegExp(h.home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await shot(page, '10-snapshot-error');

    // Logout revokes the token and clears the session.
    const token = String(await page.evaluate(`JSON.parse(sessionStorage.getItem('lifeboat.session') || '{}').token`));
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('User name').waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    const r = await fetch(`${h.url}/v1/${h.alice.projectId}/workloads`, { headers: { 'x-auth-token': token } });
    assert.equal(r.status, 401);
    await page.close();
  });

  test('an admin sees the admin page and switches the global job scheduler', async () => {
    const page = await ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'admin', 'admin-pw', 'admin');
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Administration' }).waitFor();
    const state = page.getByTestId('scheduler-state');
    assert.equal(await state.textContent(), 'enabled');
    await page.getByRole('button', { name: 'Disable the scheduler' }).click();
    await page.getByRole('button', { name: 'Enable the scheduler' }).waitFor();
    assert.equal(await state.textContent(), 'disabled');
    assert.equal((await h.api(h.admin, 'GET', '/global_job_scheduler')).json.global_job_scheduler, false);
    await shot(page, '11-admin');
    await page.getByRole('button', { name: 'Enable the scheduler' }).click();
    await waitFor(async () => (await h.api(h.admin, 'GET', '/global_job_scheduler')).json.global_job_scheduler === true, 10_000, 'scheduler enabled again');
    await page.close();
  });

  test('suite time', (t) => {
    t.diagnostic(`dashboard e2e suite (browser start to here): ${Date.now() - started} ms`);
  });
});
