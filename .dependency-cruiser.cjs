/**
 * The layer table of ../shared/ARCHITECTURE.md §2, enforced: each layer may import only the
 * layers listed for it. `npm run lint` fails on any other import between src/ folders.
 */
const LAYERS = ['lib', 'nbd', 'domain', 'config', 'backend', 'repository', 'datamover', 'recovery', 'platform', 'store', 'jobs', 'services', 'identity', 'http', 'cli', 'app'];

// from -> the src/ folders it may import (besides itself)
const ALLOWED = {
  lib: [],
  domain: ['lib'],
  config: ['lib'],
  backend: ['lib'],
  repository: ['lib', 'backend'],
  datamover: ['lib', 'repository', 'platform'], // platform: seam types only, see below
  nbd: ['lib'], // the NBD protocol, self-contained (ARCHITECTURE.md §3b)
  platform: ['lib', 'domain', 'nbd'],
  // file-level recovery: snapshot disks served over NBD from the repository, read by libguestfs
  recovery: ['lib', 'domain', 'nbd', 'repository', 'datamover'],
  store: ['lib', 'domain'],
  identity: ['lib', 'domain', 'store'],
  // services: the scheduler starts snapshots through the one snapshot-start use case (rule below).
  jobs: ['lib', 'domain', 'repository', 'datamover', 'platform', 'store', 'services', 'recovery'],
  // recovery: mount/browse/download use cases read the mounted file system (services/file-recovery)
  services: ['lib', 'domain', 'platform', 'store', 'jobs', 'recovery'],
  http: ['lib', 'domain', 'services', 'identity'],
  cli: ['lib'],
  app: LAYERS.filter((l) => l !== 'app'),
};

// openstack/: the REST client of Keystone/Nova/Cinder/Glance/Neutron (catalog, microversions,
// token renewal, retries), self-contained like nbd/; the OpenStack platform (platform/openstack/)
// drives the clouds through it. (Added here, apart from the table, to keep merges easy.)
LAYERS.splice(LAYERS.indexOf('platform'), 0, 'openstack');
ALLOWED.openstack = ['lib'];
ALLOWED.platform.push('openstack');
ALLOWED.app.push('openstack');

const forbidden = [];
for (const from of Object.keys(ALLOWED)) {
  const denied = LAYERS.filter((l) => l !== from && !ALLOWED[from].includes(l));
  if (denied.length === 0) continue;
  forbidden.push({
    name: `layer-${from}`,
    comment: `${from}/ may import only: ${ALLOWED[from].join(', ') || 'nothing else in src'} (ARCHITECTURE.md §2)`,
    severity: 'error',
    from: { path: `^src/${from}/` },
    to: { path: `^src/(${denied.join('|')})/` },
  });
}
// Only main.ts may import app/.
forbidden.push({
  name: 'app-only-from-main',
  severity: 'error',
  from: { path: '^src/', pathNot: '^src/(main\\.ts|app/)' },
  to: { path: '^src/app/' },
});
// services may use jobs/ only to enqueue: the job kind list and the typed enqueue, never
// handlers or the runner.
forbidden.push({
  name: 'services-jobs-enqueue-only',
  comment: 'services/ may import jobs/kinds.ts and jobs/queue.ts only (enqueue), not handlers or the runner',
  severity: 'error',
  from: { path: '^src/services/' },
  to: { path: '^src/jobs/', pathNot: '^src/jobs/(kinds|queue)\\.ts$' },
});
// jobs/ may use services/ only where a job-side driver starts a use case the API also starts:
// the scheduler fires scheduled snapshots through services/snapshot-start.service.ts, the same
// code path as POST /workloads/{id}. No other jobs/ file imports services/.
forbidden.push({
  name: 'jobs-services-snapshot-start-only',
  comment: 'only jobs/scheduler.ts may import services/, and only services/snapshot-start.service.ts',
  severity: 'error',
  from: { path: '^src/jobs/', pathNot: '^src/jobs/scheduler\\.ts$' },
  to: { path: '^src/services/' },
});
forbidden.push({
  name: 'jobs-scheduler-snapshot-start-only',
  comment: 'jobs/scheduler.ts may import services/snapshot-start.service.ts only',
  severity: 'error',
  from: { path: '^src/jobs/scheduler\\.ts$' },
  to: { path: '^src/services/', pathNot: '^src/services/snapshot-start\\.service\\.ts$' },
});
// datamover may use platform/platform.ts for the disk source/sink seam types only: it consumes
// what platforms hand out and never learns where a disk lives (ARCHITECTURE.md §3a).
forbidden.push({
  name: 'datamover-platform-seam-types-only',
  comment: 'datamover/ may import only types from platform/platform.ts (the disk seam), nothing else of platform/',
  severity: 'error',
  from: { path: '^src/datamover/' },
  to: { path: '^src/platform/', pathNot: '^src/platform/platform\\.ts$' },
});
forbidden.push({
  name: 'datamover-platform-types-only',
  comment: 'datamover/ may import platform/platform.ts with `import type` only',
  severity: 'error',
  from: { path: '^src/datamover/' },
  to: { path: '^src/platform/platform\\.ts$', dependencyTypesNot: ['type-only'] },
});
// No import cycles anywhere.
// (type-only edges do not run, so a cycle through them is harmless)
forbidden.push({ name: 'no-circular', severity: 'error', from: {}, to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } } });

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
