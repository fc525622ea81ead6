import type { Db } from '../store/db.js';
import { committedSnapshotIds, committedSnapshotIdsOn } from '../store/snapshot.store.js';
import type { Repository } from '../repository/repository.js';
import type { GcReport } from '../repository/gc.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';

/**
 * Runs repository GC after snapshot deletes, debounced and one at a time per process. GC never
 * blocks snapshots (repository leases); it is told which snapshots the DB knows, so it refuses
 * to sweep if any of them has lost its manifest.
 */
export class GcScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<GcReport | null> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly repo: Repository,
    private readonly log: Logger,
    private readonly delayMs = 2000,
    /** The target `repo` is (several targets): GC is told only the snapshots recorded on it. */
    private readonly target?: { name: string; isDefault: boolean },
  ) {}

  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runNow(), this.delayMs);
    this.timer.unref();
  }

  async runNow(): Promise<GcReport | null> {
    if (this.running) return this.running;
    this.timer = null;
    this.running = (async () => {
      try {
        // An empty listing is trusted only when the DB agrees nothing is committed (restic #4612).
        const known = this.target ? await committedSnapshotIdsOn(this.db, this.target) : await committedSnapshotIds(this.db);
        const report = await this.repo.gc({ knownSnapshotIds: known, allowEmpty: known.length === 0 });
        this.log.info({ target: this.target?.name, gc: { ...report, missingChunks: report.missingChunks.length } }, report.swept ? 'gc finished' : 'gc refused to sweep');
        return report;
      } catch (e) {
        this.log.warn({ err: errorMessage(e) }, 'gc failed; nothing was deleted by this run');
        return null;
      } finally {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.request();
        }
      }
    })();
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
