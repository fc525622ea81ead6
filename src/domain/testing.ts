import { defaultJobSchedule } from './jobschedule.js';
import { newSnapshotRecord, type Snapshot } from './snapshot.js';
import { DEFAULT_WORKLOAD_TYPE_ID, type Workload } from './workload.js';
import { newId } from '../lib/ids.js';

/**
 * Record builders for the tests of every layer: a complete, valid workload or snapshot with
 * plain defaults, so that a test spells out only the fields it is about, and a new column gets
 * its test default here once instead of in every test file. Not used by production code.
 */
export const TEST_T0 = Date.UTC(2026, 0, 1);

/** An idle (`available`) workload of project `p…p` with no members, created at `created_at` (TEST_T0). */
export function testWorkload(over: Partial<Workload> = {}): Workload {
  const created = over.created_at ?? TEST_T0;
  return {
    id: newId(),
    project_id: 'p'.repeat(32),
    user_id: 'u'.repeat(32),
    name: 'w',
    description: 'd',
    workload_type_id: DEFAULT_WORKLOAD_TYPE_ID,
    source_platform: 'openstack',
    status: 'available',
    error_msg: null,
    availability_zone: null,
    jobschedule: defaultJobSchedule(created),
    metadata: {},
    force_full: false,
    backup_target: null,
    created_at: created,
    updated_at: created,
    instances: [],
    ...over,
  };
}

/**
 * A snapshot of `w` (its id, project and user): by default a finished full one (`available`,
 * on host `node-a`) taken at TEST_T0; every other field as the production factory sets it.
 */
export function testSnapshot(w: Pick<Workload, 'id' | 'project_id' | 'user_id'>, over: Partial<Snapshot> = {}): Snapshot {
  const record = newSnapshotRecord({
    id: newId(),
    workload_id: w.id,
    project_id: w.project_id,
    user_id: w.user_id,
    name: 'Snapshot',
    description: '-',
    snapshot_type: 'full',
    is_scheduled: false,
    backup_target: null,
    created_at: TEST_T0,
  });
  return { ...record, status: 'available', host: 'node-a', progress_msg: null, ...over };
}
