import type { FileHandle } from 'node:fs/promises';

/**
 * Starts the writeback of a file being written before its final fsync: after every `every`
 * bytes, an fdatasync in the background (one at a time), so the disk works while the writer
 * still produces data and the final fsync finds only the tail dirty.
 *
 * Contract: call `wrote(n)` after each write; before the final fsync call `settle()`, which
 * waits for the running fdatasync and throws the first error any of them had (the kernel tells
 * a writeback error to a file description only once, so the final fsync would not see it
 * again); before closing the file without committing, `idle()` (never close an fd under a
 * running fdatasync).
 */
export class EarlyWriteback {
  private unsynced = 0;
  private running: Promise<void> | null = null;
  private error: unknown = null;

  constructor(
    private readonly fh: FileHandle,
    private readonly every: number,
  ) {}

  wrote(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < this.every || this.running) return;
    this.unsynced = 0;
    this.running = this.fh
      .datasync()
      .catch((e: unknown) => {
        this.error ??= e;
      })
      .finally(() => {
        this.running = null;
      });
  }

  async settle(): Promise<void> {
    await this.running;
    if (this.error) throw this.error;
  }

  async idle(): Promise<void> {
    await this.running;
  }
}
