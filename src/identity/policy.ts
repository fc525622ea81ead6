import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { RequestContext } from '../domain/context.js';
import { ForbiddenError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';

/**
 * oslo.policy-style RBAC for the workloadmgr actions.
 *
 * Rules come from built-in defaults (Trilio's helm `defaultPolicy`) with an optional operator
 * file (LIFEBOAT_POLICY, YAML or JSON) merged over them rule by rule. Rule syntax:
 *   string form: `rule:<name>`, `role:<name>`, `<cred>:<match>` (e.g. `is_admin:True`,
 *     `project_id:%(project_id)s`, `user_id:%(user_id)s`), `@` (always), `!` (never), `""`
 *     (always), combined with `not` > `and` > `or` and parentheses;
 *   legacy list form: `[["a", "b"], ["c"]]` = (a and b) or c; `[]` = always.
 * `%(key)s` is taken from the target; a missing key makes that check false.
 *
 * Decisions: an action without a rule uses `default`; a `rule:` naming an unknown rule is
 * false (deny), as in oslo.policy; role names compare case-insensitively. Credentials seen
 * by `<cred>:` checks: user_id, user_name, project_id, tenant_id (= project_id),
 * project_name, roles, is_admin. `is_admin` is the `context_is_admin` rule evaluated on the
 * token's roles (workloadmgr's context does the same); by default that is `role:admin`, the
 * legacy "admin on any project is admin everywhere" rule.
 *
 * The file is re-read when its mtime/size/inode change (checked on every decision, a stat).
 * At load an invalid file throws PolicyFileError; an invalid file at a later reload is
 * logged and the previous rules stay in force (failing closed would deny every request).
 */

/** Trilio's default policy (helm `trilio.workloadmgr.defaultPolicy`), plus quota actions. */
export const DEFAULT_RULES: Readonly<Record<string, string>> = Object.freeze({
  admin_api: 'is_admin:True',
  admin_or_owner: 'is_admin:True or project_id:%(project_id)s',
  context_is_admin: 'role:admin',
  default: 'rule:admin_or_owner',

  'filesearch:search': 'rule:admin_or_owner',

  'restore:restore_cancel': 'rule:admin_or_owner',
  'restore:restore_delete': 'rule:admin_or_owner',
  'restore:restore_get_all': 'rule:admin_or_owner',
  'restore:restore_show': 'rule:admin_or_owner',

  'snapshot:mounted_list': 'rule:admin_or_owner',
  'snapshot:snapshot_cancel': 'rule:admin_or_owner',
  'snapshot:snapshot_delete': 'rule:admin_or_owner',
  'snapshot:snapshot_dismount': 'rule:admin_or_owner',
  'snapshot:snapshot_get_all': 'rule:admin_or_owner',
  'snapshot:snapshot_mount': 'rule:admin_or_owner',
  'snapshot:snapshot_restore': 'rule:admin_or_owner',
  'snapshot:snapshot_show': 'rule:admin_or_owner',

  'workload:add_node': 'rule:admin_api',
  // The configured backup targets with capacity and usage (5.x backup_targets; name ours).
  'workload:backup_target_list': 'rule:admin_api',
  'workload:config_backup': 'rule:admin_api',
  'workload:config_backup_delete': 'rule:admin_api',
  'workload:config_workload': 'rule:admin_api',
  'workload:get_auditlog': 'rule:admin_api',
  'workload:get_config_backups': 'rule:admin_api',
  'workload:get_config_workload': 'rule:admin_api',
  'workload:get_contego_status': 'rule:admin_api',
  'workload:get_import_workloads_list': 'rule:admin_api',
  // Lifeboat: /metrics (Prometheus) for a token-bearing scraper; see http/ops.routes.ts.
  'workload:get_metrics': 'rule:admin_api',
  'workload:get_nodes': 'rule:admin_api',
  'workload:get_orphaned_workloads_list': 'rule:admin_api',
  'workload:get_setting': 'rule:admin_or_owner',
  'workload:get_storage_usage': 'rule:admin_api',
  'workload:get_tenants_usage': 'rule:admin_api',
  // Chargeback and protected-VM views: admin like tenants usage (names inferred, §4.11).
  'workload:get_tenants_chargeback': 'rule:admin_api',
  'workload:get_protected_vms': 'rule:admin_api',
  'workload:import_workloads': 'rule:admin_api',
  'workload:license_check': 'rule:admin_api',
  'workload:license_create': 'rule:admin_api',
  'workload:license_list': 'rule:admin_api',
  'workload:policy_apply': 'rule:admin_api',
  'workload:policy_create': 'rule:admin_api',
  'workload:policy_delete': 'rule:admin_api',
  'workload:policy_field_create': 'rule:admin_api',
  'workload:policy_remove': 'rule:admin_api',
  'workload:policy_update': 'rule:admin_api',
  'workload:remove_node': 'rule:admin_api',
  'workload:setting_delete': 'rule:admin_or_owner',
  'workload:setting_get': 'rule:admin_or_owner',
  'workload:settings_create': 'rule:admin_or_owner',
  'workload:settings_get': 'rule:admin_or_owner',
  'workload:settings_update': 'rule:admin_or_owner',
  // Where the server opens SMTP connections (server name, port) and the test e-mail that
  // opens one: operator-only, so no tenant can aim the server at an arbitrary host:port.
  'workload:settings_smtp_update': 'rule:admin_api',
  'workload:settings_email_test': 'rule:admin_api',
  'workload:trust_create': 'rule:admin_or_owner',
  'workload:trust_delete': 'rule:admin_or_owner',
  'workload:trust_get': 'rule:admin_api',
  'workload:trust_list': 'rule:admin_or_owner',
  'workload:workload_create': 'rule:admin_or_owner',
  'workload:workload_delete': 'rule:admin_or_owner',
  'workload:workload_disable_global_job_scheduler': 'rule:admin_api',
  'workload:workload_enable_global_job_scheduler': 'rule:admin_api',
  'workload:workload_ensure_global_job_scheduler': 'rule:admin_or_owner',
  'workload:workload_get_all': 'rule:admin_or_owner',
  'workload:workload_get_all_by_admin': 'rule:admin_api',
  'workload:workload_get_global_job_scheduler': 'rule:admin_or_owner',
  'workload:workload_modify': 'rule:admin_or_owner',
  'workload:workload_reset': 'rule:admin_or_owner',
  'workload:workload_show': 'rule:admin_or_owner',
  'workload:workload_snapshot': 'rule:admin_or_owner',
  'workload:workload_type_get_all': 'rule:admin_or_owner',
  'workload:workload_type_show': 'rule:admin_or_owner',
  'workload:workload_unlock': 'rule:admin_or_owner',
  'workload:workloads_reassign': 'rule:admin_api',
  // Workload policies (read side; the write side is admin_api above).
  'workload:policy_get': 'rule:admin_or_owner',
  'workload:policy_list': 'rule:admin_or_owner',
  // Project quotas. Action names inferred (no published Trilio policy names them): reading
  // types and a project's own quotas is tenant-level, changing quotas is operator-only.
  'workload:get_quota_types': 'rule:admin_or_owner',
  'workload:get_quota_type': 'rule:admin_or_owner',
  'workload:get_allowed_quotas': 'rule:admin_or_owner',
  'workload:get_allowed_quota': 'rule:admin_or_owner',
  'workload:create_allowed_quotas': 'rule:admin_api',
  'workload:update_allowed_quota': 'rule:admin_api',
  'workload:delete_allowed_quota': 'rule:admin_api',
  // Lifeboat extension (libvirt platform): which project a domain belongs to is operator business.
  'lifeboat:libvirt_assign': 'rule:admin_api',
  // Lifeboat extension: the caller's own project's instances and networks (VM picker, restore mapping).
  'lifeboat:platform_list': 'rule:admin_or_owner',
  // Lifeboat extension: `repo verify` of the backup targets (whole-service data) is operator business.
  'lifeboat:repo_verify_start': 'rule:admin_api',
  'lifeboat:repo_verify_list': 'rule:admin_api',
});

export class PolicyFileError extends Error {
  override name = 'PolicyFileError';
}

/**
 * The object a rule is checked against; `%(key)s` substitutions read it. Callers pass the
 * object's project and owning user (`project_id`, `user_id`) — the caller's own for lists and
 * creates — so `project_id:%(project_id)s` and `user_id:%(user_id)s` compare the caller with
 * the object. `%(tenant_id)s` is the project, as in workloadmgr. A null or missing key makes
 * every check that reads it false (an object without an owner never matches an owner rule).
 */
export type PolicyTarget = { project_id?: string; user_id?: string | null } & Record<string, unknown>;

/** The target with workloadmgr's `tenant_id` alias of `project_id`. */
function withAliases(target: PolicyTarget): Record<string, unknown> {
  return target.project_id !== undefined && !('tenant_id' in target) ? { ...target, tenant_id: target.project_id } : target;
}

type Check =
  | { k: 'true' }
  | { k: 'false' }
  | { k: 'rule'; name: string }
  | { k: 'role'; match: string }
  | { k: 'generic'; field: string; literal: boolean; match: string }
  | { k: 'and'; items: Check[] }
  | { k: 'or'; items: Check[] }
  | { k: 'not'; item: Check };

type Token = { t: '(' | ')' | 'and' | 'or' | 'not' } | { t: 'check'; check: Check };

function parseCheck(text: string): Check {
  if (text === '@') return { k: 'true' };
  if (text === '!') return { k: 'false' };
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) throw new Error(`"${text}" is not a check (expected kind:value, "@" or "!")`);
  const kind = text.slice(0, i);
  const match = text.slice(i + 1);
  if (kind === 'rule') return { k: 'rule', name: match };
  if (kind === 'role') return { k: 'role', match };
  if (kind === 'http' || kind === 'https') throw new Error(`"${text}": http checks are not supported`);
  const quoted = /^(['"])(.*)\1$/.exec(kind);
  if (quoted) return { k: 'generic', field: quoted[2] ?? '', literal: true, match };
  return { k: 'generic', field: kind, literal: false, match };
}

/** oslo.policy's tokenizer: whitespace-separated words, leading "(" and trailing ")" split off. */
function tokenize(rule: string): Token[] {
  const out: Token[] = [];
  for (const word of rule.split(/\s+/)) {
    if (word === '') continue;
    let w = word;
    while (w.startsWith('(')) {
      out.push({ t: '(' });
      w = w.slice(1);
    }
    if (w === '') continue;
    let trail = 0;
    while (w.endsWith(')')) {
      w = w.slice(0, -1);
      trail++;
    }
    const lower = w.toLowerCase();
    if (lower === 'and' || lower === 'or' || lower === 'not') out.push({ t: lower });
    else if (w !== '') out.push({ t: 'check', check: parseCheck(w) });
    for (let i = 0; i < trail; i++) out.push({ t: ')' });
  }
  return out;
}

/** Recursive descent: or := and ("or" and)* ; and := not ("and" not)* ; not := "not" not | atom. */
function parseRuleString(rule: string): Check {
  const toks = tokenize(rule);
  if (toks.length === 0) return { k: 'true' };
  let pos = 0;
  const peek = () => toks[pos];
  const parseOr = (): Check => {
    const items = [parseAnd()];
    while (peek()?.t === 'or') {
      pos++;
      items.push(parseAnd());
    }
    return items.length === 1 ? items[0]! : { k: 'or', items };
  };
  const parseAnd = (): Check => {
    const items = [parseNot()];
    while (peek()?.t === 'and') {
      pos++;
      items.push(parseNot());
    }
    return items.length === 1 ? items[0]! : { k: 'and', items };
  };
  const parseNot = (): Check => {
    const tok = peek();
    if (tok?.t === 'not') {
      pos++;
      return { k: 'not', item: parseNot() };
    }
    if (tok?.t === '(') {
      pos++;
      const inner = parseOr();
      if (peek()?.t !== ')') throw new Error('missing ")"');
      pos++;
      return inner;
    }
    if (tok?.t === 'check') {
      pos++;
      return tok.check;
    }
    throw new Error(tok ? `unexpected "${tok.t}"` : 'unexpected end of rule');
  };
  const c = parseOr();
  if (pos !== toks.length) throw new Error(`unexpected "${toks[pos]!.t === 'check' ? 'check' : toks[pos]!.t}" after a complete rule`);
  return c;
}

/** Parses one rule value: a string, or the legacy list of lists. */
export function parseRule(value: unknown): Check {
  if (typeof value === 'string') return parseRuleString(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return { k: 'true' };
    const alts = value.map((inner, i): Check => {
      if (typeof inner === 'string') return parseRuleString(inner);
      if (!Array.isArray(inner)) throw new Error(`item ${i} must be a list of strings`);
      if (inner.length === 0) throw new Error(`item ${i} is an empty list`);
      const all = inner.map((s, j) => {
        if (typeof s !== 'string') throw new Error(`item ${i}.${j} must be a string`);
        return parseRuleString(s);
      });
      return all.length === 1 ? all[0]! : { k: 'and', items: all };
    });
    return alts.length === 1 ? alts[0]! : { k: 'or', items: alts };
  }
  throw new Error('must be a string or a list of lists of strings');
}

function referencedRules(c: Check, out: string[] = []): string[] {
  switch (c.k) {
    case 'rule':
      out.push(c.name);
      break;
    case 'and':
    case 'or':
      for (const i of c.items) referencedRules(i, out);
      break;
    case 'not':
      referencedRules(c.item, out);
      break;
    default:
      break;
  }
  return out;
}

/** Compiles a rule map; throws with the offending rule named. Rejects reference cycles. */
function compile(rules: Record<string, unknown>, source: string): Map<string, Check> {
  const out = new Map<string, Check>();
  for (const [name, value] of Object.entries(rules)) {
    try {
      out.set(name, parseRule(value));
    } catch (e) {
      throw new PolicyFileError(`${source}: rule "${name}": ${(e as Error).message}`);
    }
  }
  const state = new Map<string, 1 | 2>(); // 1 = on the DFS path, 2 = done
  const visit = (name: string, path: string[]): void => {
    const s = state.get(name);
    if (s === 2) return;
    if (s === 1) throw new PolicyFileError(`${source}: rules reference each other in a cycle: ${[...path, name].join(' -> ')}`);
    const c = out.get(name);
    if (!c) return;
    state.set(name, 1);
    for (const ref of referencedRules(c)) visit(ref, [...path, name]);
    state.set(name, 2);
  };
  for (const name of out.keys()) visit(name, []);
  return out;
}

function readPolicyFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PolicyFileError(`cannot read policy file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new PolicyFileError(`policy file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`, { cause: e });
  }
  if (doc === null || doc === undefined) return {}; // empty file: defaults only
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new PolicyFileError(`policy file ${path}: top level must be a mapping of rule name to rule`);
  return doc as Record<string, unknown>;
}

interface Creds {
  user_id: string;
  user_name: string;
  project_id: string;
  tenant_id: string;
  project_name: string;
  roles: string[];
  is_admin: boolean;
}

type Ctx = Omit<RequestContext, 'requestId'> & Partial<Pick<RequestContext, 'requestId'>>;

function lookup(obj: Record<string, unknown>, key: string): unknown {
  if (key in obj) return obj[key];
  let cur: unknown = obj;
  for (const seg of key.split('.')) {
    if (typeof cur !== 'object' || cur === null || !(seg in cur)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/** `%(key)s` substitution from the target; undefined when a key is missing (→ check false). */
function substitute(match: string, target: Record<string, unknown>): string | undefined {
  let missing = false;
  const out = match.replace(/%\(([^()]+)\)s/g, (_m, key: string) => {
    const v = lookup(target, key);
    if (v === undefined || v === null) {
      missing = true;
      return '';
    }
    return typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v);
  });
  return missing ? undefined : out;
}

function credString(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return String(v);
}

export interface PolicyOptions {
  log?: Logger;
}

export class Policy {
  private rules: Map<string, Check>;
  private fileSig: string | undefined;
  private readonly log: Logger;

  private constructor(
    private readonly path: string | undefined,
    rules: Map<string, Check>,
    log: Logger,
    sig?: string,
  ) {
    this.rules = rules;
    this.log = log;
    this.fileSig = sig;
  }

  /** Defaults merged with `overrides` (tests, embedding). Throws PolicyFileError when a rule is invalid. */
  static fromRules(overrides: Record<string, unknown> = {}, opts: PolicyOptions = {}): Policy {
    return new Policy(undefined, compile({ ...DEFAULT_RULES, ...overrides }, 'policy'), opts.log ?? silentLogger);
  }

  /**
   * Defaults merged with the policy file at `path` (no path: defaults only). Throws
   * PolicyFileError naming the file and rule when the file is missing or invalid.
   */
  static load(path: string | undefined, opts: PolicyOptions = {}): Policy {
    const log = opts.log ?? silentLogger;
    if (!path) return new Policy(undefined, compile({ ...DEFAULT_RULES }, 'policy'), log);
    const sig = Policy.signature(path);
    const rules = compile({ ...DEFAULT_RULES, ...readPolicyFile(path) }, `policy file ${path}`);
    const p = new Policy(path, rules, log, sig);
    p.warnUnknownReferences();
    return p;
  }

  private static signature(path: string): string | undefined {
    try {
      const s = statSync(path, { bigint: true });
      return `${s.mtimeNs}:${s.size}:${s.ino}`;
    } catch {
      return undefined;
    }
  }

  private warnUnknownReferences(): void {
    const unknown = new Set<string>();
    for (const c of this.rules.values()) for (const r of referencedRules(c)) if (!this.rules.has(r)) unknown.add(r);
    if (unknown.size > 0) this.log.warn({ rules: [...unknown] }, 'policy references unknown rules; checks on them deny');
  }

  /** Re-reads the file when it changed since the last (attempted) load. */
  private maybeReload(): void {
    if (!this.path) return;
    const sig = Policy.signature(this.path);
    if (sig === this.fileSig) return;
    this.fileSig = sig;
    if (sig === undefined) {
      this.log.error({ path: this.path }, 'policy file disappeared; keeping the rules last loaded');
      return;
    }
    try {
      this.rules = compile({ ...DEFAULT_RULES, ...readPolicyFile(this.path) }, `policy file ${this.path}`);
      this.log.info({ path: this.path }, 'policy file reloaded');
      this.warnUnknownReferences();
    } catch (e) {
      this.log.error({ path: this.path, err: (e as Error).message }, 'policy file invalid; keeping the rules last loaded');
    }
  }

  /** True when `action` is allowed for `ctx` on `target`. */
  check(action: string, ctx: Ctx, target: PolicyTarget): boolean {
    this.maybeReload();
    const rule = this.rules.get(action) ?? this.rules.get('default');
    if (!rule) return false;
    return this.evaluate(rule, this.creds(ctx), withAliases(target), 0);
  }

  /** Throws ForbiddenError("Policy doesn't allow <action> to be performed.") when denied. */
  enforce(action: string, ctx: Ctx, target: PolicyTarget): void {
    if (!this.check(action, ctx, target)) throw new ForbiddenError(`Policy doesn't allow ${action} to be performed.`);
  }

  /** The `context_is_admin` rule for this context: what services should treat as "admin". */
  isAdmin(ctx: Ctx): boolean {
    this.maybeReload();
    return this.creds(ctx).is_admin;
  }

  private creds(ctx: Ctx): Creds {
    const base: Creds = {
      user_id: ctx.userId,
      user_name: ctx.userName,
      project_id: ctx.projectId,
      tenant_id: ctx.projectId,
      project_name: ctx.projectName,
      roles: ctx.roles.map((r) => r.toLowerCase()),
      is_admin: ctx.isAdmin,
    };
    const rule = this.rules.get('context_is_admin');
    // Evaluated with is_admin = the token's own admin flag, so a context_is_admin rule that
    // mentions is_admin cannot recurse.
    base.is_admin = rule ? this.evaluate(rule, base, {}, 0) : ctx.isAdmin;
    return base;
  }

  private evaluate(c: Check, creds: Creds, target: Record<string, unknown>, depth: number): boolean {
    if (depth > 50) return false; // cycles are rejected at load; this is a second fence
    switch (c.k) {
      case 'true':
        return true;
      case 'false':
        return false;
      case 'and':
        return c.items.every((i) => this.evaluate(i, creds, target, depth + 1));
      case 'or':
        return c.items.some((i) => this.evaluate(i, creds, target, depth + 1));
      case 'not':
        return !this.evaluate(c.item, creds, target, depth + 1);
      case 'rule': {
        const r = this.rules.get(c.name);
        return r ? this.evaluate(r, creds, target, depth + 1) : false;
      }
      case 'role': {
        const m = substitute(c.match, target);
        return m !== undefined && creds.roles.includes(m.toLowerCase());
      }
      case 'generic': {
        const m = substitute(c.match, target);
        if (m === undefined) return false;
        if (c.literal) return m === c.field;
        const v = lookup(creds as unknown as Record<string, unknown>, c.field);
        if (Array.isArray(v)) return v.map(String).includes(m);
        const s = credString(v);
        return s !== undefined && s === m;
      }
    }
  }
}
