import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JOB_KINDS, isJobKind } from './kinds.js';
import type { AnyJobHandler } from './runner.js';
import { workloadJobHandlers } from './workload.job.js';
import { snapshotJobHandlers } from './snapshot.job.js';
import { retentionJobHandlers } from './retention.js';
import { restoreJobHandlers } from './restore.job.js';
import { fileSearchJobHandlers } from './file-search.job.js';
import { repoVerifyJobHandlers } from './repo-verify.job.js';
import type { Db } from '../store/db.js';
import type { Platform } from '../platform/platform.js';
import type { Repository } from '../repository/repository.js';
import { ManualClock } from '../lib/clock.js';

test('every job kind of the list has exactly one handler among the ones the worker registers', () => {
  // The factories only build closures; nothing below is called, so empty deps do.
  const db = {} as Db;
  const platform = {} as Platform;
  const repo = {} as Repository;
  const clock = new ManualClock();
  const handlers: AnyJobHandler[] = [
    ...workloadJobHandlers(db, platform, clock),
    ...snapshotJobHandlers({ db, platform, repo, clock, nodeName: 'n' }),
    ...retentionJobHandlers({ db, repo, clock }),
    ...restoreJobHandlers({ db, platform, repo, clock, nodeName: 'n' }),
    ...fileSearchJobHandlers({ db, repo, clock, home: '/nonexistent', forceTcg: true, tag: 't' }),
    ...repoVerifyJobHandlers({ db, repo, clock }),
  ];
  assert.deepEqual(handlers.map((h) => h.kind).sort(), [...JOB_KINDS].sort());
  assert.equal(JOB_KINDS.length, 10);
});

test('isJobKind accepts the listed kinds only', () => {
  assert.equal(isJobKind('snapshot.take'), true);
  assert.equal(isJobKind('snapshot.nope'), false);
  assert.equal(isJobKind('toString'), false, 'inherited object keys are not kinds');
});
