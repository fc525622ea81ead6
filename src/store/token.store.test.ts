import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from './testing.js';
import type { StoreHandle } from './db.js';
import { findTokenByHash, insertToken, purgeExpiredTokens, revokeToken, type TokenRecord } from './token.store.js';

function record(idHash: string, expiresAt: number, over: Partial<TokenRecord> = {}): TokenRecord {
  return {
    idHash,
    userId: 'a'.repeat(32),
    userName: 'alice',
    projectId: 'b'.repeat(32),
    projectName: 'demo',
    roles: [{ id: 'c'.repeat(32), name: 'member' }],
    methods: ['password'],
    auditId: 'audit-1',
    issuedAt: 1_700_000_000_000,
    expiresAt,
    revoked: false,
    ...over,
  };
}

for (const kind of storeKinds()) {
  describe(`token.store (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });

    it('round-trips a token record, JSON fields and epoch ms included', async () => {
      const t = record('h1', 1_700_000_360_000);
      await insertToken(h.db, t);
      assert.deepEqual(await findTokenByHash(h.db, 'h1'), t);
      assert.equal(await findTokenByHash(h.db, 'nope'), undefined);
    });

    it('rejects a duplicate hash (primary key)', async () => {
      await insertToken(h.db, record('dup', 1));
      await assert.rejects(insertToken(h.db, record('dup', 2)));
    });

    it('revokes once; a second revoke or an unknown hash reports false', async () => {
      await insertToken(h.db, record('r1', 1_700_000_360_000));
      assert.equal(await revokeToken(h.db, 'r1'), true);
      assert.equal((await findTokenByHash(h.db, 'r1'))?.revoked, true);
      assert.equal(await revokeToken(h.db, 'r1'), false);
      assert.equal(await revokeToken(h.db, 'unknown'), false);
    });

    it('purges only tokens expired before the cut-off, revoked or not', async () => {
      await insertToken(h.db, record('p-old', 1000));
      await insertToken(h.db, record('p-old-revoked', 1500, { revoked: true }));
      await insertToken(h.db, record('p-edge', 2000));
      await insertToken(h.db, record('p-new', 3000));
      const n = await purgeExpiredTokens(h.db, 2000);
      // 'dup' (expires 1) from the earlier test also goes.
      assert.equal(n, 3);
      assert.equal(await findTokenByHash(h.db, 'p-old'), undefined);
      assert.equal(await findTokenByHash(h.db, 'p-old-revoked'), undefined);
      assert.ok(await findTokenByHash(h.db, 'p-edge'));
      assert.ok(await findTokenByHash(h.db, 'p-new'));
    });
  });
}
