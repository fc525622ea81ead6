import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startHarness, waitFor, type Harness } from './harness.js';
import { startSlowDisk } from './slow-disk.js';

/**
 * The dashboard in a real headless Chromium (Debian's package, driven by playwright-core; no
 * browser download) against a real Lifeboat with demo VMs. Every page is screenshotted into
 * test-results/dashboard/ for a reviewer. With CI=true a missing Chromium fails the suite.
 */
const CHROMIUM = '/usr/lib/chromium/chromium';
const SHOTS = join(process.cwd(), 'test-results', 'dashboard');
const AXE_SOURCE = readFileSync(join(process.cwd(), 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const haveChromium = existsSync(CHROMIUM);
const skip = !haveChromium && process.env.CI !== 'true' ? `Chromium not installed at ${CHROMIUM} (apt-get install chromium); set CI=true to make this a failure` : false;

describe('dashboard in headless Chromium', { skip }, () => {
  let h: Harness;
  let ctx: BrowserContext;
  let profile: string;
  let workloadId = '';
  const pageErrors: string[] = [];
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
    // Any uncaught error in a page fails the suite (and names the page it happened on).
    ctx.on('page', (p) => {
      p.on('pageerror', (e) => pageErrors.push(`${p.url()}: ${e.message}`));
      p.on('console', (m) => {
        // The page boundary logs what it caught; failed requests (4xx the tests provoke) are not page errors.
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`${p.url()}: ${m.text()}`);
      });
    });
  });
  after(async () => {
    await ctx?.close();
    await h?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  /**
   * Every screenshotted page is also checked with axe-core (WCAG 2 A/AA rules: labels, names,
   * contrast, landmarks...): no serious or critical violation. axe is evaluated over the
   * DevTools protocol, so the page's CSP (no inline scripts) stays in force.
   */
  async function a11y(page: Page, name: string): Promise<void> {
    if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(AXE_SOURCE);
    const found = (await page.evaluate(`axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } }).then((r) =>
      r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id + ': ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')))`)) as string[];
    assert.deepEqual(found, [], `accessibility of ${name}`);
  }

  const shot = async (page: Page, name: string) => {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    await a11y(page, name);
  };

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
    t.diagnostic(`cold first load to an interactive login form: ${Date.now() - t0} ms as the test sees it`);
    const mark = await page.evaluate(`performance.getEntriesByName('lifeboat:interactive')[0].startTime`);
    const nav = (await page.evaluate(`JSON.stringify(performance.getEntriesByType('navigation')[0])`)) as string;
    const n = JSON.parse(nav) as { responseEnd: number; domContentLoadedEventEnd: number; transferSize: number };
    t.diagnostic(`in the page, from navigation start: interactive at ${Math.round(Number(mark))} ms (HTML received ${Math.round(n.responseEnd)} ms, DOMContentLoaded ${Math.round(n.domContentLoadedEventEnd)} ms)`);
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
    await page.getByRole('heading', { name: 'Workloads', exact: true }).waitFor();
    assert.match((await page.locator('.who').textContent()) ?? '', /alice · project alpha/);
    assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
    await shot(page, '02-workloads-empty');
    await page.goto(`${h.url}/dashboard/admin`);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    await shot(page, '03-member-admin-not-found');

    await page.getByRole('link', { name: 'Workloads', exact: true }).click();
    await page.getByRole('link', { name: 'New workload' }).click();
    await page.getByRole('heading', { name: 'New workload', exact: true }).waitFor();
    await page.getByLabel('Every').fill('0');
    await page.getByRole('button', { name: 'Create workload' }).click();
    assert.equal(await page.locator('#name-error').textContent(), 'Enter a name.');
    assert.equal(await page.locator('#instanceIds-error').textContent(), 'Choose at least one VM.');
    assert.equal(await page.locator('#intervalValue-error').textContent(), 'Enter a whole number greater than 0.');
    assert.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'name');
    await shot(page, '04-new-workload-invalid');

    const vms = h.vms.filter((v) => v.projectId === h.alice.projectId).slice(0, 2);
    await page.getByLabel('Name', { exact: true }).fill('web tier');
    for (const v of vms) await page.locator(`#vm-${v.id}`).check();
    await page.getByLabel('Every').fill('12');
    await page.getByRole('button', { name: 'Create workload' }).click();
    await page.getByRole('heading', { name: 'Workload web tier', exact: true }).waitFor();
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
    await page.getByTestId('snapshots').locator('tbody .status-available').first().waitFor();
    const snaps = (await h.api(h.alice, 'GET', `/workloads/${workloadId}/snapshots`)).json.snapshots;
    const firstName = snaps[0].name as string;
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0].status, 'available');
    assert.equal(snaps[0].snapshot_type, 'full');
    const time = page.getByTestId('snapshots').locator('tbody time').first();
    assert.match((await time.getAttribute('title')) ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
    await shot(page, '06-snapshot-done');

    // The storage section: full bytes, the reduction ratio and the chart (uPlot, loaded on demand).
    await page.getByTestId('storage-numbers').filter({ hasText: /Full snapshots1 · \d/ }).waitFor();
    assert.match((await page.getByTestId('reduction').textContent()) ?? '', /^\d+\.\d : 1/);
    await page.locator('.chart-box canvas').waitFor();

    // The snapshot's detail page with the GUIDE's fields and its VMs.
    await page.getByRole('link', { name: firstName, exact: true }).click();
    await page.getByRole('heading', { name: `Snapshot ${firstName}` }).waitFor();
    await page.getByRole('cell', { name: /vm-a1/ }).waitFor();
    await shot(page, '06b-snapshot-detail');

    // One-click restore through the wizard: the result page shows the new instances, as the API records them.
    await page.getByRole('link', { name: 'Restore…' }).click();
    await page.getByRole('heading', { name: /^Restore snapshot/ }).waitFor();
    await shot(page, '06c-restore-wizard');
    await page.getByRole('button', { name: 'Start restore' }).click();
    await page.getByRole('heading', { name: /^Restore of / }).waitFor();
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
    // The result links to the new VMs on the VMs page (one-click: the workload now protects them).
    await page.locator('.instances a').first().click();
    await page.getByRole('heading', { name: 'VMs', exact: true }).waitFor();
    const newRow = page.locator(`tr#vm-${restore.instances[0].id}`);
    await newRow.waitFor();
    assert.match((await newRow.textContent()) ?? '', new RegExp(`^${restore.instances[0].name}${restore.instances[0].id}`));
    await shot(page, '07b-vms');

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
    await page.getByTestId('snapshots').locator('tbody tr', { hasText: 'incremental' }).locator('.status-available').waitFor();
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
    await page.getByTestId('snapshots').locator('tbody tr', { hasText: 'incremental' }).waitFor({ state: 'detached', timeout: 30_000 });
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${incr.id}`)).status, 404);
    assert.equal(await page.getByTestId('snapshots').locator('tbody tr').count(), 1);

    // A failing snapshot (its VM's disk is gone) shows its error message, as the API has it.
    const vm3 = h.vms.find((v) => v.name === 'vm-a3')!;
    const created = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'doomed', instances: [{ 'instance-id': vm3.id }] } });
    assert.equal(created.status, 202, created.text);
    const doomed = created.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${doomed}`)).json.workload.status === 'available', 10_000, 'doomed available');
    rmSync(vm3.disks[0]!.path);
    await page.goto(`${h.url}/dashboard/workloads/${doomed}`);
    await page.getByRole('button', { name: 'Take full snapshot' }).click();
    const errText = page.getByTestId('snapshots').locator('tbody .error-text');
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

  test('selective and in-place restores through the wizard; edit the workload', async () => {
    const page = await ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'alice', 'alice-pw', 'alpha');
    await page.getByRole('heading', { name: 'Workloads', exact: true }).waitFor();
    const full = (await h.api(h.alice, 'GET', `/workloads/${workloadId}/snapshots`)).json.snapshots.find((x: { snapshot_type: string }) => x.snapshot_type === 'full');
    const [a1, a2] = ['vm-a1', 'vm-a2'].map((n) => h.vms.find((v) => v.name === n)!);

    // Selective: only vm-a1, only its second disk, a new name, the network chosen from the platform's list.
    await page.goto(`${h.url}/dashboard/snapshots/${full.id}/restore`);
    await page.getByRole('heading', { name: /^Restore snapshot/ }).waitFor();
    await page.getByLabel(/^Selective/).check();
    await page.locator(`#vm-${a2!.id}`).uncheck();
    await page.getByLabel('New name for vm-a1').fill('');
    await page.getByRole('button', { name: 'Start restore' }).click();
    assert.equal(await page.locator(`#vm-${a1!.id}-name-error`).textContent(), 'Enter a name for the new VM.');
    await page.getByLabel('New name for vm-a1').fill('a1-copy');
    await page.getByRole('group', { name: 'Disks of vm-a1' }).getByLabel('/dev/vda').uncheck();
    const net = page.getByLabel('VMs on private join');
    assert.deepEqual(await net.locator('option').allTextContents(), ['private (10.0.0.0/24)']);
    await shot(page, '12-restore-selective');
    await page.getByRole('button', { name: 'Start restore' }).click();
    await page.getByRole('heading', { name: /^Restore of / }).waitFor();
    await page.locator('.summary .status-available').waitFor({ timeout: 60_000 });
    const sel = (await h.api(h.alice, 'GET', `/restores/${page.url().split('/').pop()}`)).json.restore;
    assert.deepEqual(sel.instances.map((i: { name: string }) => i.name), ['a1-copy']);
    await page.getByRole('link', { name: 'a1-copy' }).waitFor();
    await shot(page, '13-restore-selective-result');

    // In place: refused until the overwrite is confirmed; then the disks are rewritten.
    await page.goto(`${h.url}/dashboard/snapshots/${full.id}/restore`);
    await page.getByLabel(/^In place/).check();
    await page.locator(`#vm-${a2!.id}`).uncheck();
    await page.getByRole('button', { name: 'Start restore' }).click();
    await page.locator('#confirm-error').waitFor();
    await shot(page, '14-restore-inplace-confirm');
    await page.getByLabel(/I understand/).check();
    await page.getByRole('button', { name: 'Start restore' }).click();
    await page.getByRole('heading', { name: /^Restore of / }).waitFor();
    await page.locator('.summary .status-available').waitFor({ timeout: 60_000 });
    const inplace = (await h.api(h.alice, 'GET', `/restores/${page.url().split('/').pop()}`)).json.restore;
    assert.equal(inplace.status, 'available');

    // Edit: the form starts from the workload; the change reaches the API.
    await page.goto(`${h.url}/dashboard/workloads/${workloadId}`);
    await page.locator('.summary .status-available').waitFor();
    await page.getByRole('link', { name: 'Edit workload' }).click();
    await page.getByRole('heading', { name: 'Edit workload web tier' }).waitFor();
    assert.equal(await page.getByLabel('Every').inputValue(), '12');
    const members = (await h.api(h.alice, 'GET', `/workloads/${workloadId}`)).json.workload.instances as { id: string }[];
    for (const m of members) assert.equal(await page.locator(`#vm-${m.id}`).isChecked(), true);
    await page.getByLabel('Every').fill('6');
    await page.getByLabel('Description').fill('front end');
    await shot(page, '15-workload-edit');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Workload web tier', exact: true }).waitFor();
    const edited = (await h.api(h.alice, 'GET', `/workloads/${workloadId}`)).json.workload;
    assert.equal(edited.jobschedule.interval, '6 hr');
    assert.equal(edited.description, 'front end');
    await page.close();
  });

  test('keyboard only: log in with Tab and Enter, focus on each new page heading; cancel a running snapshot', async () => {
    const page = await ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await page.getByLabel('User name').focus();
    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    await page.keyboard.type('alice-pw');
    await page.keyboard.press('Tab');
    await page.keyboard.type('alpha');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Workloads', exact: true }).waitFor();
    // Focus lands on the new page's heading; the next Tab reaches its first action, Enter follows it.
    assert.equal(await page.evaluate('document.activeElement.tagName + " " + document.activeElement.textContent'), 'H1 Workloads');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.textContent'), 'New workload');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'New workload', exact: true }).waitFor();
    assert.equal(await page.evaluate('document.activeElement.tagName'), 'H1');

    // vm-a3's disk is 1 GiB of incompressible bytes read at 8 MiB/s at most (a throttled FUSE
    // file below the platform): its snapshot copies for minutes on any machine, so the cancel
    // below always reaches a snapshot that is copying data.
    const vm3 = h.vms.find((v) => v.name === 'vm-a3')!;
    const slow = await startSlowDisk(1 << 30, 8 << 20);
    try {
      rmSync(vm3.disks[0]!.path, { force: true });
      symlinkSync(slow.path, vm3.disks[0]!.path);
      const doomed = (await h.api(h.alice, 'GET', '/workloads')).json.workloads.find((w: { name: string }) => w.name === 'doomed');
      await page.goto(`${h.url}/dashboard/workloads/${doomed.id}`);
      await page.getByRole('button', { name: 'Take full snapshot' }).click();
      await page.getByRole('progressbar', { name: /: uploading$/ }).waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Cancel snapshot' }).click();
      await page.getByTestId('snapshots').locator('tbody .status-cancelled').waitFor({ timeout: 60_000 });
      const snaps = (await h.api(h.alice, 'GET', `/workloads/${doomed.id}/snapshots`)).json.snapshots as { status: string }[];
      assert.ok(snaps.some((x) => x.status === 'cancelled'), JSON.stringify(snaps));
      await shot(page, '10b-snapshot-cancelled');
    } finally {
      rmSync(vm3.disks[0]!.path, { force: true });
      await slow.close();
    }
    await page.close();
  });

  test('a user of two projects switches project; the page works at phone width', async () => {
    const file = join(h.home, 'identity.json');
    const data = JSON.parse(readFileSync(file, 'utf8'));
    data.users.push({ id: 'e'.repeat(32), name: 'erin', password: 'erin-pw', roles: [{ project: 'alpha', role: 'member' }, { project: 'beta', role: 'member' }] });
    writeFileSync(file, JSON.stringify(data));
    const page = await ctx.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'erin', 'erin-pw', 'alpha');
    await page.getByRole('heading', { name: 'Workloads', exact: true }).waitFor();
    await page.locator('tbody tr', { hasText: 'web tier' }).waitFor();
    assert.ok(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1'), 'no sideways scrolling of the page at 390 px');
    await shot(page, '16-phone-workloads');
    const select = page.getByLabel('Project');
    await select.selectOption({ label: 'beta' });
    await page.getByText('No workloads yet').waitFor();
    await page.getByRole('link', { name: 'VMs' }).click();
    await page.getByRole('cell', { name: /vm-b1/ }).waitFor();
    assert.equal(await page.getByRole('cell', { name: /vm-a1/ }).count(), 0);
    const s = JSON.parse(String(await page.evaluate(`sessionStorage.getItem('lifeboat.session')`)));
    assert.equal(s.projectName, 'beta');
    await shot(page, '17-phone-project-beta');
    await page.close();
  });

  test('an admin sees the admin page and switches the global job scheduler', async () => {
    const page = await ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'admin', 'admin-pw', 'admin');
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Administration', exact: true }).waitFor();
    const state = page.getByTestId('scheduler-state');
    assert.equal(await state.textContent(), 'enabled');
    await page.getByRole('button', { name: 'Disable the scheduler' }).click();
    await page.getByRole('button', { name: 'Enable the scheduler' }).waitFor();
    assert.equal(await state.textContent(), 'disabled');
    assert.equal((await h.api(h.admin, 'GET', '/global_job_scheduler')).json.global_job_scheduler, false);
    await shot(page, '11-admin');
    await page.getByRole('button', { name: 'Enable the scheduler' }).click();
    await waitFor(async () => (await h.api(h.admin, 'GET', '/global_job_scheduler')).json.global_job_scheduler === true, 10_000, 'scheduler enabled again');
    // Health: this process as a node, the job queue's counts, the projects with their usage.
    await page.getByTestId('nodes').getByRole('cell', { name: 'TVM1' }).waitFor();
    await page.getByTestId('job-totals').filter({ hasText: /[1-9]\d* done/ }).waitFor();
    await page.getByTestId('projects').getByRole('cell', { name: /alpha/ }).waitFor();
    await shot(page, '11b-admin-health');

    // Quotas: set a limit for alpha's workloads; a watermark above it is refused in the form.
    await page.getByRole('link', { name: 'Quotas and policies' }).click();
    await page.getByRole('heading', { name: 'Quotas and policies' }).waitFor();
    await page.getByLabel('Project', { exact: true }).selectOption({ label: 'alpha' });
    const row = page.getByTestId('quotas').locator('tr', { hasText: 'Workloads' });
    await row.getByLabel('Limit').fill('5');
    await row.getByLabel('Warn at').fill('9');
    await row.getByRole('button', { name: 'Save' }).click();
    await row.getByText('The warning level cannot be above the limit.').waitFor();
    await row.getByLabel('Warn at').fill('4');
    await row.getByRole('button', { name: 'Save' }).click();
    await row.getByText('5 (warn at 4)').waitFor();
    const q = (await h.api(h.admin, 'GET', `/project_allowed_quotas/${h.alice.projectId}`)).json.allowed_quotas;
    assert.deepEqual(q.map((x: { quota_type_name: string; allowed_value: number; high_watermark: number }) => [x.quota_type_name, x.allowed_value, x.high_watermark]), [['Workloads', 5, 4]]);
    await shot(page, '11c-admin-quotas');

    // E-mail settings: a bad port is refused in the form; good values are saved through the API.
    await page.getByRole('link', { name: 'E-mail settings' }).click();
    await page.getByRole('heading', { name: 'E-mail settings' }).waitFor();
    await page.getByLabel('SMTP port').fill('70000');
    await page.getByRole('button', { name: 'Save e-mail settings' }).click();
    assert.equal(await page.locator('#smtp_port-error').textContent(), 'Enter a whole number from 1 to 65535.');
    await page.getByLabel('SMTP server').fill('mail.example.org');
    await page.getByLabel('SMTP port').fill('2525');
    await page.getByLabel('Sender address').fill('lifeboat@example.org');
    await page.getByRole('button', { name: 'Save e-mail settings' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const settings = (await h.api(h.admin, 'GET', '/settings')).json.settings as { name: string; value: string }[];
    assert.equal(settings.find((x) => x.name === 'smtp_port')?.value, '2525');
    assert.equal(settings.find((x) => x.name === 'smtp_server_name')?.value, 'mail.example.org');
    await shot(page, '11d-admin-email');
    await page.close();
  });

  test('no page threw an error (uncaught, or caught by the page boundary)', () => {
    assert.deepEqual(pageErrors, []);
  });

  test('suite time', (t) => {
    t.diagnostic(`dashboard e2e suite (browser start to here): ${Date.now() - started} ms`);
  });
});
