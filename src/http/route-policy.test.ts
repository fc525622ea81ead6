import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyPluginAsync } from 'fastify';
import type { RequestContext } from '../domain/context.js';
import { NotFoundError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { Policy } from '../identity/policy.js';
import { buildHttpServer } from './server.js';
import { param, policy, unenforced } from './route-policy.js';
import type { PolicyEnforcer, PolicyTarget } from './types.js';

const P1 = '1'.repeat(32);
const P2 = '2'.repeat(32);
const ctxs: Record<string, RequestContext> = {
  alice: { requestId: '', userId: 'a'.repeat(32), userName: 'alice', projectId: P1, projectName: 'p1', roles: ['member'], isAdmin: false },
  carol: { requestId: '', userId: 'c'.repeat(32), userName: 'carol', projectId: P1, projectName: 'p1', roles: ['member'], isAdmin: false },
  reader: { requestId: '', userId: 'r'.repeat(32), userName: 'reader', projectId: P1, projectName: 'p1', roles: ['reader'], isAdmin: false },
};

/** Objects by id: one of alice's in P1, one in another project. */
const OBJECTS: Record<string, PolicyTarget> = {
  mine: { project_id: P1, user_id: ctxs.alice!.userId },
  foreign: { project_id: P2, user_id: 'b'.repeat(32) },
};

async function serve(routes: FastifyPluginAsync, enforcer: PolicyEnforcer) {
  const app = await buildHttpServer({
    log: silentLogger,
    publicUrl: 'http://lb.test',
    validator: { validate: async (token) => ({ ...ctxs[token]! }) },
    policy: enforcer,
    keystoneUri: 'http://keystone.test',
    v1Routes: [routes],
  });
  const call = async (user: string, method: 'GET' | 'POST', path: string) => {
    const r = await app.inject({ method, url: `/v1/${P1}${path}`, headers: { 'x-auth-token': user } });
    return { status: r.statusCode, json: r.body ? JSON.parse(r.body) : undefined };
  };
  return { app, call };
}

describe('route policy: one hook enforces what each route declares', () => {
  const rules = Policy.fromRules({
    owner: 'project_id:%(project_id)s and user_id:%(user_id)s',
    'thing:show': 'rule:owner',
    'thing:create': 'role:member',
    'thing:hidden': 'rule:admin_or_owner',
  });
  let lookups = 0;
  // A lookup that, like the services, answers 404 for unknown ids.
  const find = async (id: string): Promise<PolicyTarget> => {
    lookups++;
    const o = OBJECTS[id];
    if (!o) throw NotFoundError.of('Thing', id);
    return o;
  };
  const routes: FastifyPluginAsync = async (app) => {
    app.get('/things/:id', policy('thing:show', { target: (req) => find(param(req, 'id')) }), async () => ({ ok: true }));
    app.post('/things', policy('thing:create'), async () => ({ ok: true }));
    app.get('/any/:id', policy('thing:hidden', { target: (req) => find(param(req, 'id')), hiddenAs: (req) => NotFoundError.of('Thing', param(req, 'id')) }), async () => ({ ok: true }));
    app.get('/open', unenforced('test route'), async () => ({ ok: true }));
  };

  it('checks the object: the owner passes, another member of the project gets the oslo 403', async () => {
    const { app, call } = await serve(routes, rules);
    try {
      assert.deepEqual(await call('alice', 'GET', '/things/mine'), { status: 200, json: { ok: true } });
      assert.deepEqual(await call('carol', 'GET', '/things/mine'), { status: 403, json: { forbidden: { code: 403, message: "Policy doesn't allow thing:show to be performed." } } });
      assert.equal((await call('alice', 'GET', '/things/missing')).status, 404);
    } finally {
      await app.close();
    }
  });

  it('a caller the rule denies on their own project gets 403 before any lookup', async () => {
    const { app, call } = await serve(routes, rules);
    try {
      lookups = 0;
      assert.equal((await call('reader', 'POST', '/things')).status, 403);
      assert.equal((await call('alice', 'POST', '/things')).status, 200);
      const denyAll = Policy.fromRules({ 'thing:show': 'role:nobody' });
      const second = await serve(routes, denyAll);
      try {
        assert.equal((await second.call('alice', 'GET', '/things/missing')).status, 403, 'no 404 reveals which ids exist');
      } finally {
        await second.app.close();
      }
      assert.equal(lookups, 0);
    } finally {
      await app.close();
    }
  });

  it('hiddenAs: denied on another project object answers like a missing one', async () => {
    const { app, call } = await serve(routes, rules);
    try {
      const foreign = await call('alice', 'GET', '/any/foreign');
      assert.deepEqual(foreign, { status: 404, json: { itemNotFound: { code: 404, message: 'Thing foreign could not be found.' } } });
      assert.equal((await call('alice', 'GET', '/any/mine')).status, 200);
      assert.equal((await call('alice', 'GET', '/open')).status, 200);
    } finally {
      await app.close();
    }
  });

  it('a /v1 route that declares no policy stops the server from starting', async () => {
    const undeclared: FastifyPluginAsync = async (app) => {
      app.get('/forgotten', async () => ({ ok: true }));
    };
    await assert.rejects(serve(undeclared, rules), /GET \/v1\/:tenant_id\/forgotten declares no policy/);
  });
});
