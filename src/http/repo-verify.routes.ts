import type { FastifyPluginAsync } from 'fastify';
import type { RepoVerifyService, StartVerifyCommand } from '../services/repo-verify.service.js';
import type { RepoVerification } from '../domain/repo-verification.js';
import { ValidationError } from '../lib/errors.js';
import { TARGET_NAME_RE } from '../lib/target.js';
import { formatWireTime } from '../lib/time.js';
import { redactPathsOrNull } from '../lib/redact.js';
import { policy } from './route-policy.js';
import { ctxOf } from './server.js';
import { queryString, unwrap } from './query.js';

/** One run on the wire (times as the API prints them; no host paths in messages). */
export function repoVerificationView(v: RepoVerification): Record<string, unknown> {
  return {
    id: v.id,
    target: v.target,
    scope: v.read_data_subset === null ? 'full' : 'sample',
    read_data_subset_percent: v.read_data_subset === null ? null : Math.round(v.read_data_subset * 1000) / 10,
    mark_bad: v.mark_bad,
    source: v.source,
    user_id: v.user_id,
    status: v.status,
    progress_percent: v.progress_percent,
    created_at: formatWireTime(v.created_at),
    started_at: formatWireTime(v.started_at),
    finished_at: formatWireTime(v.finished_at),
    snapshots: v.snapshots,
    disks: v.disks,
    packs_read: v.packs_read,
    chunks_checked: v.chunks_checked,
    bytes_read: v.bytes_read,
    problem_count: v.problem_count,
    problems: v.problems.map((p) => redactPathsOrNull(p) ?? ''),
    failed_snapshots: v.failed_snapshots,
    error_msg: redactPathsOrNull(v.error_msg),
  };
}

/** `N`, `N%` or a number: the percentage of packs whose data is read, in (0, 100]. */
function subsetOf(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const m = typeof v === 'number' ? [String(v), String(v)] : typeof v === 'string' ? /^\s*(\d{1,3}(?:\.\d+)?)\s*%?\s*$/.exec(v) : null;
  const n = m ? Number(m[1]) : NaN;
  if (!(n > 0 && n <= 100)) throw new ValidationError(`read_data_subset must be a percentage in (0, 100], e.g. "10%"; got ${JSON.stringify(v).slice(0, 40)}`);
  return n === 100 ? undefined : n / 100;
}

/** `{"repo_verification": {"target"?, "read_data_subset"?, "mark_bad"?}}`; the body may be absent (default target, complete). */
export function parseStartVerify(body: unknown): StartVerifyCommand {
  const b = unwrap(body === null ? undefined : body, 'repo_verification', true);
  const cmd: StartVerifyCommand = { markBad: true };
  if (b.target !== undefined && b.target !== null) {
    if (typeof b.target !== 'string' || !TARGET_NAME_RE.test(b.target)) throw new ValidationError('target must be a backup target name (a-z 0-9 _ -)');
    cmd.target = b.target;
  }
  const subset = subsetOf(b.read_data_subset);
  if (subset !== undefined) cmd.readDataSubset = subset;
  if (b.mark_bad !== undefined && b.mark_bad !== null) {
    if (typeof b.mark_bad !== 'boolean') throw new ValidationError('mark_bad must be true or false');
    cmd.markBad = b.mark_bad;
  }
  return cmd;
}

/** `?limit=1..100` (default 20) and `?target=name`. */
export function parseVerifyList(query: unknown): { limit: number; target?: string } {
  const q = (query ?? {}) as Record<string, unknown>;
  const limitText = queryString(q.limit);
  const limit = limitText === undefined ? 20 : /^\d{1,3}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= 100)) throw new ValidationError('limit must be a whole number from 1 to 100');
  const target = queryString(q.target);
  if (target !== undefined && !TARGET_NAME_RE.test(target)) throw new ValidationError('target must be a backup target name (a-z 0-9 _ -)');
  return target === undefined ? { limit } : { limit, target };
}

/**
 * Lifeboat extension (workloadmgr has no such API): `repo verify` runs of the backup targets,
 * for operators only (`lifeboat:repo_verify_*` are admin_api by default).
 *
 *   POST /v1/{p}/repo_verifications        → 202 {"repo_verification": {...queued}} (a durable job)
 *   GET  /v1/{p}/repo_verifications         → {"repo_verifications": [...newest first], "targets": [names]}
 *   GET  /v1/{p}/repo_verifications/{id}    → {"repo_verification": {...}}
 */
export function repoVerifyRoutes(d: { verifications: RepoVerifyService }): FastifyPluginAsync {
  return async (app) => {
    app.post('/repo_verifications', policy('lifeboat:repo_verify_start'), async (req, reply) => {
      const run = await d.verifications.start(ctxOf(req), parseStartVerify(req.body));
      return reply.code(202).send({ repo_verification: repoVerificationView(run) });
    });
    app.get('/repo_verifications', policy('lifeboat:repo_verify_list'), async (req) => ({
      repo_verifications: (await d.verifications.list(parseVerifyList(req.query))).map(repoVerificationView),
      targets: d.verifications.targetNames(),
    }));
    app.get<{ Params: { id: string } }>('/repo_verifications/:id', policy('lifeboat:repo_verify_list'), async (req) => ({
      repo_verification: repoVerificationView(await d.verifications.get(req.params.id)),
    }));
  };
}
