import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../lib/logger.js';
import type { AuditEvent, AuditService } from '../services/audit.service.js';

/**
 * GET routes that change state (legacy verbs): cancel a snapshot or a restore, send the test
 * e-mail. Every other state change is a POST, PUT, PATCH or DELETE.
 */
export const STATE_CHANGING_GETS: readonly string[] = [
  '/v1/:tenant_id/snapshots/:sid/cancel',
  '/v1/:tenant_id/restores/:rid/cancel',
  '/v1/:tenant_id/workloads/email/test_email',
];

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function isStateChanging(req: FastifyRequest): boolean {
  if (req.is404) return false;
  if (!READ_METHODS.has(req.method)) return true;
  return req.method === 'GET' && STATE_CHANGING_GETS.includes(req.routeOptions.url ?? '');
}

type Created = { type: string; id: string; name: string | null };

/** `{"<type>": {"id": ..., "name"?: ...}}` of a 2xx answer: the object it created or changed. */
function objectOfPayload(payload: unknown): Created | null {
  if (typeof payload !== 'string' || !payload.startsWith('{')) return null;
  try {
    const body = JSON.parse(payload) as Record<string, unknown>;
    const keys = Object.keys(body);
    const inner = keys.length === 1 ? body[keys[0]!] : undefined;
    if (!inner || typeof inner !== 'object' || Array.isArray(inner)) return null;
    const { id, name } = inner as { id?: unknown; name?: unknown };
    if (typeof id !== 'string' && typeof id !== 'number') return null;
    return { type: keys[0]!, id: String(id), name: typeof name === 'string' ? name : null };
  } catch {
    return null;
  }
}

const singular = (s: string) => (s.endsWith('s') && !s.endsWith('ss') ? s.slice(0, -1) : s);

/**
 * What the request acted on, from the route template: the last `:param` (not the tenant) and
 * the static segment before it (`/workloads/:id/unlock` → workload <id>); without a param,
 * the first static segment (`/settings` → setting). The answer's object wins when there is
 * one (creates: `{"workload": {"id", "name"}}`).
 */
function objectOf(req: FastifyRequest, created: Created | null): { type: string; id: string | null; name: string | null } {
  const segs = (req.routeOptions.url ?? '').split('/').filter((s) => s !== '').slice(2); // drop v1, :tenant_id
  const params = req.params as Record<string, string | undefined>;
  let type = singular(segs[0] ?? 'unknown');
  let id: string | null = null;
  segs.forEach((s, i) => {
    if (s.startsWith(':') && i > 0) {
      type = singular(segs[i - 1]!);
      id = params[s.slice(1)] ?? null;
    }
  });
  const body = req.body as Record<string, unknown> | undefined;
  const inner = body && typeof body === 'object' && !Array.isArray(body) ? body[type] : undefined;
  const bodyName = inner && typeof inner === 'object' ? (inner as { name?: unknown }).name : undefined;
  if (created) return { type: created.type, id: created.id, name: created.name };
  return { type, id, name: typeof bodyName === 'string' ? bodyName.slice(0, 255) : null };
}

function actionOf(req: FastifyRequest): string {
  const decl = req.routeOptions.config.policy;
  if (!decl || 'unenforced' in decl) return 'unenforced';
  return typeof decl.action === 'function' ? decl.action(req) : decl.action;
}

function eventOf(req: FastifyRequest, reply: FastifyReply, created: Created | null): AuditEvent {
  const o = objectOf(req, created);
  return { objectType: o.type, objectId: o.id, objectName: o.name, action: actionOf(req), method: req.method, route: req.routeOptions.url ?? '', statusCode: reply.statusCode };
}

/**
 * Records every state-changing request of the /v1 tree that reached a route with a validated
 * token — refused ones too (the status code says how it ended); unauthenticated requests
 * reach no route. Install on the /v1 instance before its routes. The entry is written after
 * the answer has gone; a failed write is logged and never changes the answer.
 */
export function installAuditTrail(v1: FastifyInstance, audit: AuditService, log: Logger): void {
  const created = new WeakMap<FastifyRequest, Created>();
  v1.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode < 300 && isStateChanging(req)) {
      const c = objectOfPayload(payload);
      if (c) created.set(req, c);
    }
    return payload;
  });
  v1.addHook('onResponse', async (req, reply) => {
    if (!req.ctx || !isStateChanging(req)) return;
    try {
      await audit.record(req.ctx, eventOf(req, reply, created.get(req) ?? null));
    } catch (e) {
      log.error({ reqId: req.id, err: e instanceof Error ? e.message : String(e) }, 'audit log entry could not be written');
    }
  });
}
