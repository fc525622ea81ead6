import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';

/**
 * OpenStack resources Lifeboat made for one operation (a snapshot's temporary volumes, a
 * restore's images): each registered with the call that removes it. `removeAll()` runs the
 * removals newest first, continues past failures, and returns what could not be removed, so
 * a temporary is removed on success, failure and cancel alike and a leftover is named.
 */
export class Temporaries {
  private readonly undo: { what: string; remove: () => Promise<void> }[] = [];

  constructor(private readonly log: Logger) {}

  add(what: string, remove: () => Promise<void>): void {
    this.undo.push({ what, remove });
  }

  /** Forgets a temporary that is no longer Lifeboat's to remove (e.g. published). */
  keep(what: string): void {
    const i = this.undo.findIndex((u) => u.what === what);
    if (i >= 0) this.undo.splice(i, 1);
  }

  /** Forgets every temporary `keepIt` selects (e.g. all but the images once a restore is published). */
  keepWhere(keepIt: (what: string) => boolean): void {
    for (let i = this.undo.length - 1; i >= 0; i--) if (keepIt(this.undo[i]!.what)) this.undo.splice(i, 1);
  }

  /** Removes one temporary now (e.g. a server to boot again) and forgets it; a failure is thrown. */
  async removeNow(what: string): Promise<void> {
    const i = this.undo.findIndex((u) => u.what === what);
    if (i < 0) return;
    await this.undo[i]!.remove();
    this.undo.splice(i, 1);
  }

  get size(): number {
    return this.undo.length;
  }

  async removeAll(): Promise<string[]> {
    const failed: string[] = [];
    while (this.undo.length > 0) {
      const u = this.undo.pop()!;
      try {
        await u.remove();
      } catch (e) {
        this.log.error({ what: u.what, err: errorMessage(e) }, 'could not remove an OpenStack temporary');
        failed.push(`${u.what}: ${errorMessage(e)}`);
      }
    }
    return failed;
  }
}
