import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { createWorkloadAndWait, startHarness, takeSnapshotAndWait, type Harness } from './harness.js';
import { chromiumSkip, launchBrowser, logIn, shot, type Browser } from './dashboard-browser.js';

/**
 * The dashboard's admin pages and restore network mapping in headless Chromium against a real
 * Lifeboat (a file apart from dashboard.e2e so the two can change independently): repo verify
 * results with a start button. Screenshots go to test-results/dashboard/ (2x-*), each checked
 * with axe.
 */
describe('dashboard admin pages in headless Chromium', { skip: chromiumSkip }, () => {
  let h: Harness;
  let b: Browser;
  let workloadId = '';
  let snapshotId = '';

  before(async () => {
    h = await startHarness();
    b = await launchBrowser();
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    workloadId = await createWorkloadAndWait(h, h.alice, [vm.id], 'admin-e2e');
    snapshotId = (await takeSnapshotAndWait(h, h.alice, workloadId, true)).id as string;
  });
  after(async () => {
    await b?.close();
    await h?.close();
  });

  async function adminPage(path: string): Promise<Page> {
    const page = await b.ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'admin', 'admin-pw', 'admin');
    await page.getByRole('link', { name: 'Admin' }).waitFor();
    await page.goto(`${h.url}/dashboard${path}`);
    return page;
  }

  test('repo verify: the results are listed; a verify started from the page runs to ok', async () => {
    const page = await adminPage('/admin');
    const section = page.getByRole('region', { name: 'Repository verification' });
    await section.getByText('No verify has run yet.').waitFor();
    await section.getByLabel(/Read the data of/).fill('0');
    await section.getByRole('button', { name: 'Verify now' }).click();
    assert.equal(await page.locator('#verify-percent-error').textContent(), 'Enter a percentage greater than 0 and at most 100.');
    assert.equal((await h.api(h.admin, 'GET', '/repo_verifications')).json.repo_verifications.length, 0, 'nothing started');
    await section.getByLabel(/Read the data of/).fill('100');
    await section.getByRole('button', { name: 'Verify now' }).click();
    const row = page.getByTestId('verifications').locator('tbody tr').first();
    await row.locator('.status-available').waitFor({ timeout: 60_000 });
    const run = (await h.api(h.admin, 'GET', '/repo_verifications')).json.repo_verifications[0];
    assert.equal(run.status, 'ok');
    assert.equal(run.snapshots, 1);
    const text = (await row.textContent()) ?? '';
    assert.match(text, /default/);
    assert.match(text, /1 snapshots, 1 disks/);
    assert.match(text, /No problems/);
    await shot(page, '20-admin-repo-verify');
    await page.close();
  });

  test('policies: create (validation first), edit, assign to a project, delete — each reaching the API', async () => {
    const page = await adminPage('/admin/quotas');
    const section = page.getByRole('region', { name: 'Workload policies' });
    await section.getByText('No policies defined yet.').waitFor();
    await section.getByRole('button', { name: 'New policy' }).click();
    await page.getByLabel('Full snapshot after this many incrementals').fill('1000');
    await page.getByRole('button', { name: 'Create policy' }).click();
    assert.equal(await page.locator('#policy-name-error').textContent(), 'Enter a name.');
    assert.equal(await page.locator('#policy-fullBackupInterval-error').textContent(), 'Enter a whole number from -1 to 999.');
    assert.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'policy-name');
    assert.deepEqual((await h.api(h.admin, 'GET', '/workload_policy')).json.policy_list, [], 'nothing created');
    await page.getByLabel('Policy name').fill('gold');
    await page.getByLabel('Policy description').fill('twice a day');
    await page.getByLabel('Snapshot every').fill('12');
    await page.getByLabel('Keep (snapshots or days)').fill('14');
    await page.getByLabel('Full snapshot after this many incrementals').fill('6');
    await page.getByRole('button', { name: 'Create policy' }).click();
    await section.getByRole('status').filter({ hasText: 'Policy created.' }).waitFor();
    const list = (await h.api(h.admin, 'GET', '/workload_policy')).json.policy_list;
    assert.equal(list.length, 1);
    const id = list[0].id as string;
    const values = async () => Object.fromEntries((await h.api(h.admin, 'GET', `/workload_policy/${id}`)).json.policy.field_values.map((f: { policy_field_name: string; value: string }) => [f.policy_field_name, f.value]));
    assert.deepEqual(await values(), { interval: '12 hr', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '14', fullbackup_interval: '6' });

    await section.getByRole('button', { name: 'Edit gold' }).click();
    assert.equal(await page.getByLabel('Keep (snapshots or days)').inputValue(), '14');
    await page.getByLabel('Keep (snapshots or days)').fill('30');
    await page.getByLabel('Policy retention').selectOption('Number of days to retain Snapshots');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await section.getByRole('status').filter({ hasText: 'Policy gold saved.' }).waitFor();
    assert.deepEqual(await values(), { interval: '12 hr', retention_policy_type: 'Number of days to retain Snapshots', retention_policy_value: '30', fullbackup_interval: '6' });

    await section.getByRole('button', { name: 'Projects of gold' }).click();
    await page.getByRole('group', { name: 'Projects of policy gold' }).getByLabel('alpha').check();
    await shot(page, '22-admin-policy-projects');
    await page.getByRole('button', { name: 'Save projects' }).click();
    await section.getByRole('status').filter({ hasText: 'Projects of policy gold saved.' }).waitFor();
    const assigned = (await h.api(h.admin, 'GET', `/workload_policy/assigned/${h.alice.projectId}`)).json.policies;
    assert.deepEqual(assigned.map((a: { policy_id: string }) => a.policy_id), [id]);
    // The status shows once the assign call answered; the table reloads after it, so wait for the row.
    await page.getByTestId('policies').filter({ hasText: /gold.*twice a day.*12 hr.*30 \(Number of days to retain Snapshots\).*6.*alpha/ }).waitFor();
    await shot(page, '23-admin-policies');

    await section.getByRole('button', { name: 'Delete gold' }).click();
    await page.getByRole('button', { name: 'Keep it' }).click();
    assert.equal((await h.api(h.admin, 'GET', '/workload_policy')).json.policy_list.length, 1, 'kept');
    await section.getByRole('button', { name: 'Delete gold' }).click();
    await page.getByRole('button', { name: 'Delete policy gold' }).click();
    await section.getByRole('status').filter({ hasText: 'Policy gold deleted.' }).waitFor();
    assert.deepEqual((await h.api(h.admin, 'GET', '/workload_policy')).json.policy_list, []);
    await section.getByText('No policies defined yet.').waitFor();
    await page.close();
  });

  test("restore wizard: the network list is the platform's networks; the chosen network and subnet reach the new VM", async () => {
    // Networks the platform offers besides the VMs' own: declared in the local inventory (one shared with two subnets, one alpha's own, one beta's).
    const file = join(h.home, 'inventory.json');
    const inv = JSON.parse(readFileSync(file, 'utf8'));
    const sub = (n: number, cidr: string) => ({ id: `0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c1${n}`, name: `dmz-${n}`, cidr, ip_version: 4, gateway_ip: null });
    const dmz = { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c01', name: 'dmz', subnets: [sub(1, '192.0.2.0/24'), sub(2, '198.51.100.0/24')] };
    inv.networks = [dmz, { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c02', name: 'alpha-backend', project_id: h.alice.projectId }, { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c03', name: 'beta-backend', project_id: h.bob.projectId }];
    writeFileSync(file, JSON.stringify(inv, null, 2));

    const page = await b.ctx.newPage();
    await page.goto(`${h.url}/dashboard/`);
    await logIn(page, 'alice', 'alice-pw', 'alpha');
    await page.getByRole('heading', { name: 'Workloads', exact: true }).waitFor();
    await page.goto(`${h.url}/dashboard/snapshots/${snapshotId}/restore`);
    await page.getByRole('heading', { name: /^Restore snapshot/ }).waitFor();
    await page.getByLabel(/^Selective/).check();
    const net = page.getByLabel('VMs on private join');
    assert.deepEqual(await net.locator('option').allTextContents(), ['alpha-backend', 'dmz (192.0.2.0/24, 198.51.100.0/24) · shared', 'private (10.0.0.0/24)']);
    assert.equal(await page.getByLabel('Subnet on private').count(), 0, 'one subnet: nothing to choose');
    await net.selectOption({ label: 'dmz (192.0.2.0/24, 198.51.100.0/24) · shared' });
    const subnet = page.getByLabel('Subnet on dmz');
    assert.deepEqual(await subnet.locator('option').allTextContents(), ['dmz-1 (192.0.2.0/24)', 'dmz-2 (198.51.100.0/24)']);
    await subnet.selectOption({ label: 'dmz-2 (198.51.100.0/24)' });
    await page.getByLabel('New name for vm-a3').fill('a3-dmz');
    await shot(page, '21-restore-wizard-networks');
    await page.getByRole('button', { name: 'Start restore' }).click();
    await page.getByRole('heading', { name: /^Restore of / }).waitFor();
    await page.locator('.summary .status-available').waitFor({ timeout: 60_000 });
    const restore = (await h.api(h.alice, 'GET', `/restores/${page.url().split('/').pop()}`)).json.restore;
    assert.deepEqual(restore.instances.map((i: { name: string }) => i.name), ['a3-dmz']);
    const made = JSON.parse(readFileSync(file, 'utf8')).instances.find((i: { id: string }) => i.id === restore.instances[0].id);
    assert.deepEqual(made.nics.map((n: { network: { id: string; name: string; subnet?: { id: string; cidr: string } } }) => [n.network.id, n.network.name, n.network.subnet?.id, n.network.subnet?.cidr]), [[dmz.id, 'dmz', sub(2, '').id, '198.51.100.0/24']]);
    await page.close();
  });

  test('no uncaught page errors', () => {
    assert.deepEqual(b.pageErrors, []);
  });
});
