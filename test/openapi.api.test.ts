import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { registeredRoutes } from '../src/http/openapi.js';
import { createWorkloadAndWait, startHarness, type Harness } from './harness.js';

type Doc = { openapi: string; paths: Record<string, Record<string, { tags?: string[]; security?: unknown[]; parameters?: { in: string; name: string }[]; requestBody?: { content: Record<string, { schema: { required?: string[]; properties: Record<string, unknown> } }> } }>> };

/** `/v1/:tenant_id/workloads/:id` → `/v1/{tenant_id}/workloads/{id}` (OpenAPI path templates). */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\/\*$/, '/{*}');

describe('OpenAPI document at /openapi.json, generated from the route schemas', () => {
  let h: Harness;
  let doc: Doc;
  before(async () => {
    h = await startHarness();
    const r = await fetch(`${h.url}/openapi.json`);
    assert.equal(r.status, 200);
    doc = (await r.json()) as Doc;
  });
  after(async () => h.close());

  test('every registered route is in the document (HEAD twins of GET routes through their GET)', () => {
    const routes = registeredRoutes(h.lb.http!);
    assert.ok(routes.length > 70, `only ${routes.length} routes seen`);
    const missing = routes
      .filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS')
      .filter((r) => !doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()])
      .map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(missing, []);
    assert.equal(doc.openapi, '3.0.3');
  });

  test('v1 operations carry the token requirement, path parameters and the request bodies the server validates', async () => {
    const create = doc.paths['/v1/{tenant_id}/workloads']!.post!;
    assert.deepEqual(create.security, [{ keystoneToken: [] }]);
    assert.deepEqual(create.tags, ['workloads']);
    const body = create.requestBody!.content['application/json']!.schema;
    assert.deepEqual(body.required, ['workload']);
    assert.ok('instances' in (body.properties.workload as { properties: object }).properties);
    const show = doc.paths['/v1/{tenant_id}/workloads/{id}']!.get!;
    assert.deepEqual(show.parameters!.filter((p) => p.in === 'path').map((p) => p.name).sort(), ['id', 'tenant_id']);
    const audit = doc.paths['/v1/{tenant_id}/workloads/audit/auditlog']!.get!;
    assert.deepEqual(audit.parameters!.filter((p) => p.in === 'query').map((p) => p.name).sort(), ['end_range', 'start_range', 'time_in_minutes']);
    assert.equal(doc.paths['/healthz']!.get!.security, undefined);

    // The same schema is what the server checks: the required envelope, a field of the wrong type.
    const missingEnvelope = await h.api(h.alice, 'POST', '/workloads', { workloads: {} });
    assert.deepEqual(missingEnvelope.json, { badRequest: { code: 400, message: 'Incorrect request body format' } });
    const wrongType = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'w', instances: [{ 'instance-id': h.vms[0]!.id }], jobschedule: 'daily' } });
    assert.deepEqual(wrongType.json, { badRequest: { code: 400, message: 'Invalid workload.jobschedule: must be object' } });
    // null is "not given" for every optional field, as the parsers take it.
    const nulls = await h.api(h.alice, 'POST', '/workloads', { workload: { name: null, description: null, workload_type_id: null, source_platform: null, metadata: null, jobschedule: null, instances: [{ 'instance-id': h.vms[1]!.id }] } });
    assert.equal(nulls.status, 202, nulls.text);
    // Checked after the policy and the object lookup: a bad body on an unknown workload is a 404.
    assert.equal((await h.api(h.alice, 'POST', `/workloads/${crypto.randomUUID()}`, { snapshot: { name: 5 } })).status, 404);
    // An optional body is checked when present, and changes nothing when refused.
    const wid = await createWorkloadAndWait(h, h.alice, [h.vms[2]!.id]);
    const badSnap = await h.api(h.alice, 'POST', `/workloads/${wid}`, { snapshot: { name: 5 } });
    assert.deepEqual(badSnap.json, { badRequest: { code: 400, message: 'Invalid snapshot.name: must be string' } });
    assert.deepEqual((await h.api(h.alice, 'GET', `/workloads/${wid}/snapshots`)).json.snapshots, []);
  });
});
