import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import type { StoreHandle } from '../store/db.js';
import { transitionRepoVerification } from '../store/repo-verification.store.js';
import { InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { ManualClock } from '../lib/clock.js';
import { TargetCatalog } from '../lib/target.js';
import type { RequestContext } from '../domain/context.js';
import { RepoVerifyService } from './repo-verify.service.js';

const ctx: RequestContext = { requestId: 'r', userId: 'u1', userName: 'admin', projectId: 'p1', projectName: 'admin', roles: ['admin'], isAdmin: true };

for (const kind of storeKinds()) {
  describe(`repo verify service (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let svc: RepoVerifyService;
    before(async () => {
      h = await kind.open();
      svc = new RepoVerifyService({ db: h.db, clock: new ManualClock(1_700_000_000_000), targets: new TargetCatalog([{ name: 'default', description: 'd' }, { name: 'offsite', description: 'o' }], 'default') });
    });
    after(async () => h?.close());

    test('a run is queued with its job; a second on the same target waits for it; other targets are independent', async () => {
      const a = await svc.start(ctx, { markBad: true });
      assert.deepEqual([a.target, a.status, a.source, a.user_id, a.read_data_subset], ['default', 'queued', 'api', 'u1', null]);
      const jobs = await h.db.selectFrom('jobs').selectAll().where('resource_id', '=', a.id).execute();
      assert.deepEqual(jobs.map((j) => j.kind), ['repo.verify']);
      await assert.rejects(svc.start(ctx, { markBad: true }), (e) => e instanceof InvalidStateError && /already running/.test(e.message));
      const b = await svc.start(ctx, { target: 'offsite', readDataSubset: 0.1, markBad: false });
      assert.deepEqual([b.target, b.read_data_subset, b.mark_bad], ['offsite', 0.1, false]);
      await transitionRepoVerification(h.db, a.id, ['queued'], 'error', { error_msg: 'x' });
      assert.equal((await svc.start(ctx, { markBad: true })).status, 'queued', 'once finished, a new run may start');
      await assert.rejects(svc.start(ctx, { target: 'nowhere', markBad: true }), ValidationError);
      await assert.rejects(svc.get('not-a-uuid'), NotFoundError);
      assert.equal((await svc.get(a.id.toUpperCase())).id, a.id);
      assert.equal((await svc.list({ limit: 10, target: 'offsite' })).length, 1);
    });
  });
}
