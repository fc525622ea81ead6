import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** `npm run lint` enforces the layer table: an import that breaks it fails dependency-cruiser. */
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');

function cruise(files: Record<string, string>): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-layers-'));
  try {
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } }));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const r = spawnSync(DEPCRUISE, ['src', '--config', CONFIG], { cwd: dir, encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('store/ importing http/ fails the layer check', () => {
  const r = cruise({ 'src/http/server.ts': 'export const x = 1;\n', 'src/store/bad.ts': "import { x } from '../http/server.js';\nexport const y = x;\n" });
  assert.notEqual(r.status, 0, r.out);
  assert.match(r.out, /layer-store/);
});

test('services/ may use jobs/kinds.ts and jobs/queue.ts but not a job handler', () => {
  const ok = cruise({
    'src/jobs/kinds.ts': 'export const K = 1;\n',
    'src/jobs/queue.ts': 'export const Q = 1;\n',
    'src/services/a.ts': "import { K } from '../jobs/kinds.js';\nimport { Q } from '../jobs/queue.js';\nexport const a = K + Q;\n",
  });
  assert.equal(ok.status, 0, ok.out);
  const bad = cruise({ 'src/jobs/runner.ts': 'export const R = 1;\n', 'src/services/a.ts': "import { R } from '../jobs/runner.js';\nexport const a = R;\n" });
  assert.notEqual(bad.status, 0, bad.out);
});

test('datamover/ may not reach the backends directly; allowed imports pass', () => {
  const bad = cruise({ 'src/backend/fs.ts': 'export const B = 1;\n', 'src/datamover/d.ts': "import { B } from '../backend/fs.js';\nexport const d = B;\n" });
  assert.notEqual(bad.status, 0, bad.out);
  const ok = cruise({ 'src/lib/l.ts': 'export const L = 1;\n', 'src/domain/d.ts': "import { L } from '../lib/l.js';\nexport const d = L;\n" });
  assert.equal(ok.status, 0, ok.out);
});

test('jobs/ may reach services/ only from the scheduler, and only the snapshot-start use case', () => {
  const start = { 'src/services/snapshot-start.service.ts': 'export const S = 1;\n', 'src/services/other.service.ts': 'export const O = 1;\n' };
  const ok = cruise({ ...start, 'src/jobs/scheduler.ts': "import { S } from '../services/snapshot-start.service.js';\nexport const s = S;\n" });
  assert.equal(ok.status, 0, ok.out);
  const otherService = cruise({ ...start, 'src/jobs/scheduler.ts': "import { O } from '../services/other.service.js';\nexport const s = O;\n" });
  assert.notEqual(otherService.status, 0, otherService.out);
  assert.match(otherService.out, /jobs-scheduler-snapshot-start-only/);
  const otherJob = cruise({ ...start, 'src/jobs/x.job.ts': "import { S } from '../services/snapshot-start.service.js';\nexport const s = S;\n" });
  assert.notEqual(otherJob.status, 0, otherJob.out);
  assert.match(otherJob.out, /jobs-services-snapshot-start-only/);
});

test('datamover/ may import the disk seam types of platform/platform.ts, nothing else of platform/', () => {
  const seam = { 'src/platform/platform.ts': 'export interface DiskSource { size: number }\nexport const P = 1;\n', 'src/platform/local/x.ts': 'export const X = 1;\n' };
  const ok = cruise({ ...seam, 'src/datamover/d.ts': "import type { DiskSource } from '../platform/platform.js';\nexport const d = (s: DiskSource) => s.size;\n" });
  assert.equal(ok.status, 0, ok.out);
  const value = cruise({ ...seam, 'src/datamover/d.ts': "import { P } from '../platform/platform.js';\nexport const d = P;\n" });
  assert.notEqual(value.status, 0, value.out);
  assert.match(value.out, /datamover-platform-types-only/);
  const impl = cruise({ ...seam, 'src/datamover/d.ts': "import { X } from '../platform/local/x.js';\nexport const d = X;\n" });
  assert.notEqual(impl.status, 0, impl.out);
  assert.match(impl.out, /datamover-platform-seam-types-only/);
});
