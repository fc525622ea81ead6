import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './harness.js';

/**
 * Every route of the API, hit with bad input (malformed JSON, wrong types, wrong wrapper,
 * unknown and non-UUID ids, another project's tenant): always a 4xx OpenStack fault, never a
 * 500 and never a stack trace.
 */
const ROUTES: [string, string][] = [
  ['GET', '/workloads'],
  ['GET', '/workloads/detail'],
  ['POST', '/workloads'],
  ['GET', '/workloads/{id}'],
  ['PUT', '/workloads/{id}'],
  ['DELETE', '/workloads/{id}'],
  ['POST', '/workloads/{id}'],
  ['POST', '/workloads/{id}/unlock'],
  ['POST', '/workloads/{id}/reset'],
  ['POST', '/workloads/{id}/pause'],
  ['POST', '/workloads/{id}/resume'],
  ['GET', '/workload_types/{id}'],
  ['GET', '/snapshots'],
  ['GET', '/snapshots/{id}'],
  ['DELETE', '/snapshots/{id}'],
  ['GET', '/snapshots/{id}/cancel'],
  ['POST', '/snapshots/{id}'],
  ['GET', '/workloads/{id}/snapshots/{id}'],
  ['POST', '/workloads/{id}/snapshots/{id}/restores'],
  ['GET', '/restores'],
  ['GET', '/restores/{id}'],
  ['DELETE', '/restores/{id}'],
  ['GET', '/restores/{id}/cancel'],
  ['GET', '/task/{id}'],
  ['GET', '/global_job_scheduler'],
  ['POST', '/global_job_scheduler/enable'],
  ['GET', '/workload_policy/'],
  ['POST', '/workload_policy/'],
  ['GET', '/workload_policy/{id}'],
  ['PUT', '/workload_policy/{id}'],
  ['DELETE', '/workload_policy/{id}'],
  ['POST', '/workload_policy/{id}/assign'],
  ['GET', '/workload_policy/assigned/{id}'],
  ['GET', '/project_quota_types'],
  ['GET', '/projects_quota_types/{id}'],
  ['POST', '/project_allowed_quotas/{id}'],
  ['GET', '/project_allowed_quotas/{id}'],
  ['GET', '/project_allowed_quota/{id}'],
  ['PUT', '/update_allowed_quota/{id}'],
  ['DELETE', '/project_allowed_quotas/{id}'],
  ['POST', '/settings'],
  ['PUT', '/settings'],
  ['GET', '/settings'],
  ['GET', '/settings/{id}'],
  ['DELETE', '/settings/{id}'],
  ['POST', '/workloads/settings'],
  ['GET', '/workloads/email/test_email'],
  ['GET', '/workloads/metrics/storage_usage'],
  ['GET', '/workloads/metrics/tenants_usage'],
  ['GET', '/workloads/metrics/tenants_chargeback'],
  ['GET', '/workloads/metrics/vms_protected'],
  ['GET', '/workloads/audit/auditlog'],
];

const BODIES: (string | undefined)[] = [
  undefined,
  '',
  '{',
  'null',
  '[]',
  '"x"',
  '42',
  '{"workload": "x", "snapshot": [], "restore": 5, "policy": null, "workload_policy": 1, "allowed_quotas": "q", "settings": {"a": {"b": 1}}}',
  '{"__proto__": {"polluted": true}}',
  '{"workload": {"instances": [{"instance-id": 5}], "jobschedule": "x", "metadata": []}, "snapshot": {"name": ["x"]}, "restore": {"options": []}}',
];

const IDS = ['not-a-uuid', '00000000-0000-4000-8000-000000000000', '%00', "x'); DROP TABLE workloads;--", 'a'.repeat(180)];

describe('bad input sweep over every route', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  test('member and admin: never a 5xx, always a fault envelope without a stack', async () => {
    let requests = 0;
    const seen = new Set<number>();
    for (const who of [h.alice, h.admin]) {
      for (const [method, tmpl] of ROUTES) {
        for (const id of IDS) {
          const path = tmpl.replaceAll('{id}', encodeURIComponent(id));
          for (const body of method === 'GET' || method === 'DELETE' ? [undefined] : BODIES) {
            const r = await h.api(who, method, `${path}?date_from=bad&all=maybe&limit=-1`, body);
            requests++;
            seen.add(r.status);
            assert.ok(r.status < 500, `${who.name} ${method} ${path} ${body ?? ''} → ${r.status} ${r.text}`);
            assert.ok(!/\bat .*\.js:\d+/.test(r.text), `stack trace in ${method} ${path}: ${r.text}`);
            if (r.status >= 400 && r.status !== 401) {
              const key = Object.keys(r.json ?? {})[0];
              assert.ok(key && typeof r.json[key].message === 'string' && r.json[key].code === r.status, `fault envelope for ${method} ${path}: ${r.text}`);
            }
          }
        }
      }
    }
    assert.ok(requests > 1000);
    // the sweep reached validation, lookups and policy, not just the router
    for (const code of [400, 403, 404]) assert.ok(seen.has(code), `saw ${[...seen].join(',')}`);
    // nothing was created or polluted by all that
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).json.workloads.length, 0);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("another project's tenant id in the URL: 400 Malformed request url on every route", async () => {
    for (const [method, tmpl] of ROUTES) {
      const r = await h.api(h.alice, method, `/v1/${h.bob.projectId}${tmpl.replaceAll('{id}', crypto.randomUUID())}`);
      assert.equal(r.status, 400, `${method} ${tmpl}`);
      assert.equal(r.json.badRequest.message, 'Malformed request url');
    }
  });
});
