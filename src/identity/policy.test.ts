import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestContext } from '../domain/context.js';
import { ForbiddenError } from '../lib/errors.js';
import { DEFAULT_RULES, Policy, PolicyFileError } from './policy.js';

const P1 = '1'.repeat(32);
const P2 = '2'.repeat(32);

function ctx(roles: string[], projectId = P1, over: Partial<RequestContext> = {}): RequestContext {
  return { requestId: 'r', userId: 'u'.repeat(32), userName: 'u', projectId, projectName: 'p', roles, isAdmin: roles.includes('admin'), ...over };
}
const member = ctx(['member']);
const admin = ctx(['admin'], P2);
const own = { project_id: P1 };
const foreign = { project_id: P2 };

/** Temporary directories of tmpFile, removed when this file's tests are done. */
const tempDirs: string[] = [];
after(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function tmpFile(name: string, text: string): string {
  const d = mkdtempSync(join(tmpdir(), 'lb-policy-'));
  tempDirs.push(d);
  const p = join(d, name);
  writeFileSync(p, text);
  return p;
}

describe('policy: defaults', () => {
  const p = Policy.load(undefined);

  it('lists every documented workload/snapshot/restore action', () => {
    for (const a of [
      'workload:workload_create',
      'workload:workload_snapshot',
      'workload:get_storage_usage',
      'workload:workload_get_all_by_admin',
      'workload:policy_create',
      'workload:policy_field_create',
      'workload:settings_create',
      'workload:setting_delete',
      'workload:trust_get',
      'workload:create_allowed_quotas',
      'snapshot:snapshot_restore',
      'snapshot:mounted_list',
      'restore:restore_cancel',
      'filesearch:search',
    ]) {
      assert.ok(a in DEFAULT_RULES, a);
    }
  });

  it('admin_or_owner: owner and admin pass, member of another project does not', () => {
    assert.equal(p.check('workload:workload_create', member, own), true);
    assert.equal(p.check('workload:workload_create', member, foreign), false);
    assert.equal(p.check('workload:workload_create', admin, own), true, 'admin anywhere is admin everywhere');
    assert.equal(p.check('snapshot:snapshot_show', member, {}), false, 'missing target key → false');
  });

  it('admin_api denies a member with the exact legacy message', () => {
    assert.throws(
      () => p.enforce('workload:get_storage_usage', member, own),
      (e: unknown) => e instanceof ForbiddenError && e.message === "Policy doesn't allow workload:get_storage_usage to be performed.",
    );
    p.enforce('workload:get_storage_usage', admin, own);
    assert.equal(p.isAdmin(admin), true);
    assert.equal(p.isAdmin(member), false);
  });

  it('an unknown action falls back to default (admin_or_owner)', () => {
    assert.equal(p.check('workload:brand_new', member, own), true);
    assert.equal(p.check('workload:brand_new', member, foreign), false);
  });

  it('roles compare case-insensitively', () => {
    assert.equal(p.check('workload:get_nodes', ctx(['Admin'], P1, { isAdmin: false }), own), true);
  });
});

describe('policy: the target is the object (its project and owner)', () => {
  const ownerOnly = Policy.fromRules({ owner: 'user_id:%(user_id)s', 'workload:workload_show': 'rule:owner or rule:admin_api' });
  const alice = ctx(['member'], P1, { userId: 'a'.repeat(32) });
  const carol = ctx(['member'], P1, { userId: 'c'.repeat(32) });
  const alicesWorkload = { project_id: P1, user_id: alice.userId };

  it('an owner-only rule allows the owner and denies another member of the same project', () => {
    assert.equal(ownerOnly.check('workload:workload_show', alice, alicesWorkload), true);
    assert.equal(ownerOnly.check('workload:workload_show', carol, alicesWorkload), false);
    assert.equal(ownerOnly.check('workload:workload_show', admin, alicesWorkload), true, 'admin_api still grants');
  });

  it('an object without an owner never matches an owner rule', () => {
    assert.equal(ownerOnly.check('workload:workload_show', alice, { project_id: P1, user_id: null }), false);
    assert.equal(ownerOnly.check('workload:workload_show', alice, { project_id: P1 }), false);
  });

  it('the default admin_or_owner compares the object project, not the caller project', () => {
    const p = Policy.load(undefined);
    assert.equal(p.check('workload:workload_show', carol, alicesWorkload), true, 'same project: allowed by default');
    assert.equal(p.check('workload:workload_show', carol, { project_id: P2, user_id: carol.userId }), false);
  });

  it('tenant_id in a rule is the target project', () => {
    const p = Policy.fromRules({ 'workload:workload_show': 'tenant_id:%(tenant_id)s' });
    assert.equal(p.check('workload:workload_show', alice, alicesWorkload), true);
    assert.equal(p.check('workload:workload_show', alice, { project_id: P2 }), false);
  });
});

describe('policy: syntax', () => {
  const check = (rule: unknown, c: RequestContext, target: Record<string, unknown> = own) => Policy.fromRules({ 'x:act': rule }).check('x:act', c, target);

  it('@, !, empty string and empty list', () => {
    assert.equal(check('@', member, foreign), true);
    assert.equal(check('!', admin), false);
    assert.equal(check('', member, foreign), true);
    assert.equal(check([], member, foreign), true);
  });

  it('not binds tighter than and, and tighter than or; parentheses override', () => {
    const rb = ctx(['reader', 'backup']);
    // role:a or role:reader and role:x  ==  role:a or (role:reader and role:x)  → false
    assert.equal(check('role:a or role:reader and role:x', rb), false);
    assert.equal(check('(role:a or role:reader) and role:backup', rb), true);
    assert.equal(check('(role:a or role:reader) and role:x', rb), false);
    assert.equal(check('not role:x and role:backup', rb), true);
    assert.equal(check('not (role:reader and role:backup)', rb), false);
    assert.equal(check('not not role:reader', rb), true);
    assert.equal(check('((role:reader))', rb), true);
    assert.equal(check('(role:reader AND project_id:%(project_id)s)', rb, foreign), false);
    assert.equal(check('(role:reader AND project_id:%(project_id)s)', rb, own), true);
  });

  it('generic checks substitute from the target; literals compare as strings', () => {
    assert.equal(check('user_id:%(user_id)s', member, { user_id: 'u'.repeat(32) }), true);
    assert.equal(check('user_id:%(user_id)s', member, { user_id: 'v' }), false);
    assert.equal(check('is_admin:True', admin), true);
    assert.equal(check('is_admin:True', member), false);
    assert.equal(check('is_admin:False', member), true);
    assert.equal(check('project_name:p', member), true);
    assert.equal(check("'fixed':%(kind)s", member, { kind: 'fixed' }), true);
    assert.equal(check('role:%(needed)s', member, { needed: 'MEMBER' }), true);
    assert.equal(check('nosuchcred:x', member), false);
  });

  it('legacy list of lists: outer or, inner and', () => {
    const rule = [['role:backup', 'project_id:%(project_id)s'], ['role:admin']];
    assert.equal(check(rule, ctx(['backup']), own), true);
    assert.equal(check(rule, ctx(['backup']), foreign), false);
    assert.equal(check(rule, admin, foreign), true);
    assert.equal(check(rule, member, own), false);
  });

  it('nested rule references, and an unknown referenced rule denies', () => {
    const p = Policy.fromRules({ backup_api: 'rule:backup_role and rule:owner', backup_role: 'role:backup', owner: 'project_id:%(project_id)s', 'x:a': 'rule:backup_api', 'x:b': 'rule:nope or !', 'x:c': 'not rule:nope' });
    assert.equal(p.check('x:a', ctx(['backup']), own), true);
    assert.equal(p.check('x:a', ctx(['backup']), foreign), false);
    assert.equal(p.check('x:b', admin, own), false);
    assert.equal(p.check('x:c', member, own), true, 'not of an unknown rule: the unknown check itself is false');
  });

  it('rejects bad syntax, non-rule values and cycles, naming the rule', () => {
    const bad = (rules: Record<string, unknown>, re: RegExp) => assert.throws(() => Policy.fromRules(rules), (e: unknown) => e instanceof PolicyFileError && re.test(e.message));
    bad({ 'x:a': 'role:a or' }, /rule "x:a": unexpected end/);
    bad({ 'x:a': '(role:a' }, /rule "x:a": missing "\)"/);
    bad({ 'x:a': 'role:a role:b' }, /rule "x:a": unexpected "check"/);
    bad({ 'x:a': 'admin' }, /rule "x:a": "admin" is not a check/);
    bad({ 'x:a': 5 }, /rule "x:a": must be a string or a list/);
    bad({ 'x:a': [[1]] }, /rule "x:a": item 0\.0 must be a string/);
    bad({ 'x:a': 'http://example.com' }, /http checks are not supported/);
    bad({ a: 'rule:b', b: 'rule:a' }, /cycle: a -> b -> a/);
  });
});

describe('policy: file', () => {
  it('a custom file maps workload:workload_create to role:backup (Trilio tempest scenario)', () => {
    const path = tmpFile('policy.yaml', 'backup_api:\n- - role:backup\n"workload:workload_create": rule:backup_api\n');
    const p = Policy.load(path);
    p.enforce('workload:workload_create', ctx(['backup']), own);
    assert.throws(() => p.enforce('workload:workload_create', member, own), /Policy doesn't allow workload:workload_create to be performed\./);
    // Untouched actions keep their defaults.
    assert.equal(p.check('workload:workload_delete', member, own), true);
  });

  it('JSON files work too', () => {
    const p = Policy.load(tmpFile('policy.json', '{"workload:get_nodes": "role:ops"}'));
    assert.equal(p.check('workload:get_nodes', ctx(['ops']), own), true);
    assert.equal(p.check('workload:get_nodes', admin, own), false);
  });

  it('changing context_is_admin changes what is_admin means', () => {
    const p = Policy.load(tmpFile('policy.yaml', 'context_is_admin: role:cloud_admin\n'));
    assert.equal(p.check('workload:get_nodes', admin, own), false);
    assert.equal(p.check('workload:get_nodes', ctx(['cloud_admin']), own), true);
  });

  it('reloads when the file changes (mtime), including an atomic replace', () => {
    const path = tmpFile('policy.yaml', '"workload:get_nodes": role:ops\n');
    const p = Policy.load(path);
    assert.equal(p.check('workload:get_nodes', ctx(['ops']), own), true);
    writeFileSync(path, '"workload:get_nodes": role:sre\n');
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    assert.equal(p.check('workload:get_nodes', ctx(['ops']), own), false);
    assert.equal(p.check('workload:get_nodes', ctx(['sre']), own), true);
    const tmp = `${path}.new`;
    writeFileSync(tmp, '"workload:get_nodes": role:ops\n');
    renameSync(tmp, path);
    assert.equal(p.check('workload:get_nodes', ctx(['ops']), own), true);
  });

  it('an invalid edit after load keeps the previous rules (and logs)', () => {
    const path = tmpFile('policy.yaml', '"workload:get_nodes": role:ops\n');
    const logged: string[] = [];
    const log = { info() {}, warn() {}, debug() {}, error(_o: object | string, m?: string) { logged.push(String(m)); }, child() { return log; } };
    const p = Policy.load(path, { log });
    writeFileSync(path, '"workload:get_nodes": "role:ops or"\n');
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    assert.equal(p.check('workload:get_nodes', ctx(['ops']), own), true);
    assert.ok(logged.some((m) => /invalid/.test(m)));
  });

  it('a bad file fails at load with a clear message', () => {
    assert.throws(() => Policy.load('/nonexistent/policy.yaml'), /cannot read policy file \/nonexistent\/policy\.yaml/);
    assert.throws(() => Policy.load(tmpFile('policy.yaml', 'a: [unclosed\n')), /policy file .*policy\.yaml is not valid YAML/);
    assert.throws(() => Policy.load(tmpFile('policy.yaml', '- a\n- b\n')), /top level must be a mapping/);
    assert.throws(() => Policy.load(tmpFile('policy.yaml', '"workload:get_nodes": "role:ops and and"\n')), /policy file .*: rule "workload:get_nodes": unexpected "and"/);
    assert.throws(() => Policy.load(tmpFile('policy.json', '{"a": ')), /is not valid JSON/);
    // An empty file is just the defaults.
    assert.equal(Policy.load(tmpFile('policy.yaml', '')).check('workload:get_nodes', admin, own), true);
  });
});
