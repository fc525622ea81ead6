import type { DbOrTx } from './db.js';
import type { TokensTable } from './schema.js';

/**
 * Tokens of the embedded identity. Only the sha256 of a token is stored (`id_hash`), so a copy
 * of the database does not hand out usable tokens. Every API process reads the same table,
 * so a token issued or revoked by one process is seen by all.
 */

export interface TokenRole {
  id: string;
  name: string;
}

export interface TokenRecord {
  idHash: string;
  userId: string;
  userName: string;
  projectId: string;
  projectName: string;
  roles: TokenRole[];
  methods: string[];
  auditId: string;
  /** Epoch ms. */
  issuedAt: number;
  /** Epoch ms; the token is invalid from this instant on. */
  expiresAt: number;
  revoked: boolean;
}

function toRow(t: TokenRecord): TokensTable {
  return {
    id_hash: t.idHash,
    user_id: t.userId,
    user_name: t.userName,
    project_id: t.projectId,
    project_name: t.projectName,
    roles: JSON.stringify(t.roles),
    methods: JSON.stringify(t.methods),
    audit_id: t.auditId,
    issued_at: t.issuedAt,
    expires_at: t.expiresAt,
    revoked: t.revoked ? 1 : 0,
  };
}

function fromRow(r: TokensTable): TokenRecord {
  return {
    idHash: r.id_hash,
    userId: r.user_id,
    userName: r.user_name,
    projectId: r.project_id,
    projectName: r.project_name,
    roles: JSON.parse(r.roles) as TokenRole[],
    methods: JSON.parse(r.methods) as string[],
    auditId: r.audit_id,
    issuedAt: Number(r.issued_at),
    expiresAt: Number(r.expires_at),
    revoked: Number(r.revoked) === 1,
  };
}

export async function insertToken(db: DbOrTx, token: TokenRecord): Promise<void> {
  await db.insertInto('tokens').values(toRow(token)).execute();
}

/**
 * The stored token with this hash, whatever its state (expired and revoked ones included):
 * callers decide validity against their clock.
 */
export async function findTokenByHash(db: DbOrTx, idHash: string): Promise<TokenRecord | undefined> {
  const row = await db.selectFrom('tokens').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
  return row ? fromRow(row) : undefined;
}

/** Marks the token revoked. Returns false when no such token exists (or it was already revoked). */
export async function revokeToken(db: DbOrTx, idHash: string): Promise<boolean> {
  const r = await db.updateTable('tokens').set({ revoked: 1 }).where('id_hash', '=', idHash).where('revoked', '=', 0).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/**
 * Deletes tokens that expired before `before` (epoch ms). Revoked tokens are deleted once they
 * have expired too: until then their row is what says "revoked". Returns the number deleted.
 */
export async function purgeExpiredTokens(db: DbOrTx, before: number): Promise<number> {
  const r = await db.deleteFrom('tokens').where('expires_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}
