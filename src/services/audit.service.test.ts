import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import type { RequestContext } from '../domain/context.js';
import type { StoreHandle } from '../store/db.js';
import { storeKinds } from '../store/testing.js';
import { AuditService, type AuditEvent } from './audit.service.js';

const DAY = 86_400_000;
const ctx = (user: string): RequestContext => ({ requestId: `req-${user}`, userId: `${user}-id`, userName: user, projectId: 'p1', projectName: 'alpha', roles: ['member'], isAdmin: false });
const ev = (id: string): AuditEvent => ({ objectType: 'workload', objectId: id, objectName: `w-${id}`, action: 'workload:workload_delete', method: 'DELETE', route: '/v1/:tenant_id/workloads/:id', statusCode: 202 });

for (const kind of storeKinds()) {
  describe(`audit service (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => h.close());

    test('records who, what and when; lists a window newest first; purges past the retention at most hourly', async () => {
      const clock = new ManualClock(Date.UTC(2026, 5, 1));
      const audit = new AuditService({ db: h.db, clock, log: silentLogger, retentionDays: 2 });
      const t0 = clock.now();
      await audit.record(ctx('alice'), ev('a'));
      clock.advance(DAY);
      await audit.record(ctx('bob'), ev('b'));
      clock.advance(DAY / 2);
      await audit.record(ctx('carol'), ev('c'));

      const all = await audit.list({ from: t0, to: clock.now() + 1 });
      assert.deepEqual(all.map((e) => e.user_name), ['carol', 'bob', 'alice']);
      assert.deepEqual(
        { ...all[2]!, id: undefined },
        { id: undefined, at: t0, request_id: 'req-alice', user_id: 'alice-id', user_name: 'alice', project_id: 'p1', project_name: 'alpha', object_type: 'workload', object_id: 'a', object_name: 'w-a', action: 'workload:workload_delete', method: 'DELETE', route: '/v1/:tenant_id/workloads/:id', status_code: 202 },
      );
      // The window is [from, to): an entry exactly at `to` is outside.
      assert.deepEqual((await audit.list({ from: t0 + 1, to: t0 + DAY })).map((e) => e.user_name), []);
      assert.deepEqual((await audit.list({ from: t0, to: t0 + DAY + 1 })).map((e) => e.user_name), ['bob', 'alice']);

      // At t0 + 2.5 d alice's entry is past the 2-day retention and the last purge (at carol's
      // write) is 12 h old: this write purges it.
      clock.advance(DAY);
      await audit.record(ctx('dave'), ev('d'));
      const names = async () => (await audit.list({ from: 0, to: clock.now() + 1 })).map((e) => e.user_name);
      assert.deepEqual(await names(), ['dave', 'carol', 'bob']);
      // Purges run at most hourly: at t0 + 3 d - 10 min a purge finds nothing old enough; 20 min
      // later bob's entry is past the retention but stays until a write an hour after that purge.
      clock.set(t0 + 3 * DAY - 10 * 60_000);
      await audit.record(ctx('erin'), ev('e'));
      clock.advance(20 * 60_000);
      await audit.record(ctx('fred'), ev('f'));
      assert.ok((await names()).includes('bob'));
      clock.advance(40 * 60_000);
      await audit.record(ctx('gina'), ev('g'));
      assert.deepEqual(await names(), ['gina', 'fred', 'erin', 'dave', 'carol']);
    });
  });
}
