import { ValidationError } from '../lib/errors.js';
import { DEFAULT_SNAPSHOT_NAME, type SnapshotType } from '../domain/snapshot.js';
import { DEFAULT_DESCRIPTION } from '../domain/workload.js';
import { parseBool } from '../domain/jobschedule.js';
import type { TakeSnapshotCommand } from '../services/snapshot.service.js';
import { textOrDefault } from './fields.js';
import { queryBool, unwrap } from './query.js';

/**
 * POST /workloads/{id}[?full=1] with an optional `{"snapshot": {...}}` body → the take command.
 * `full` in the body is ignored (tempest always sends "True"); `snapshot_type` overrides the query.
 */
export function parseTakeSnapshot(query: Record<string, unknown>, body: unknown): TakeSnapshotCommand {
  const b = unwrap(body, 'snapshot', true);
  let type: SnapshotType = queryBool(query.full, 'full') ? 'full' : 'incremental';
  if (b.snapshot_type !== undefined && b.snapshot_type !== null) {
    if (b.snapshot_type !== 'full' && b.snapshot_type !== 'incremental') throw new ValidationError('Invalid snapshot_type: expected "full" or "incremental"');
    type = b.snapshot_type;
  }
  return {
    name: textOrDefault(b.name, 'name', DEFAULT_SNAPSHOT_NAME),
    description: textOrDefault(b.description, 'description', DEFAULT_DESCRIPTION),
    type,
    isScheduled: b.is_scheduled === undefined || b.is_scheduled === null ? false : parseBool(b.is_scheduled, 'is_scheduled'),
  };
}
