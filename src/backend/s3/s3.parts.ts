/**
 * The part buffers of one S3 target's streamed writes, reused instead of allocated per part.
 * Fresh buffers of several MiB cost a page fault per 4 KiB on first touch and, freed, pile up
 * as external memory until a garbage collection (the profile of a 2 GiB backup showed ~1 s of
 * each): a fixed set of reused buffers costs neither, and bounds the memory every upload of
 * the process holds together to `count × size`, whatever the number of writers.
 */
const IDLE_MS = 5_000;

export class PartPool {
  private readonly free: Buffer[] = [];
  private made = 0;
  private readonly waiting: ((b: Buffer) => void)[] = [];
  private idle: NodeJS.Timeout | null = null;
  /** Buffers in requests under way: they come back whatever anyone else does. */
  private uploading = 0;
  private readonly watchers: (() => void)[] = [];

  constructor(
    readonly size: number,
    readonly count: number,
  ) {
    if (count < 1) throw new RangeError('a part pool needs at least one buffer');
  }

  /** A buffer now, or null when all `count` are taken. */
  tryTake(): Buffer | null {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const b = this.free.pop();
    if (b) return b;
    if (this.made >= this.count) return null;
    this.made++;
    return Buffer.allocUnsafeSlow(this.size);
  }

  /** A buffer, once one is given back when all are taken. */
  async take(): Promise<Buffer> {
    return this.tryTake() ?? new Promise<Buffer>((resolve) => this.waiting.push(resolve));
  }

  /** `n` taken buffers are now in a request under way (each is given back when it ends). */
  sending(n: number): void {
    this.uploading += n;
  }

  /** True while some buffer is in a request under way. */
  get anySending(): boolean {
    return this.uploading > 0;
  }

  /** Resolves at the next give (a writer keeping unsent buffers looks again then). */
  nextGive(): Promise<void> {
    return new Promise((resolve) => this.watchers.push(resolve));
  }

  /**
   * Gives a buffer back (to a waiting writer first); `sent`: it was in a request under way. Once every buffer has been back for
   * IDLE_MS, they are dropped: an idle service does not keep `count × size` resident (the
   * delay keeps them across the gap between one pack and the next).
   */
  give(b: Buffer, sent = false): void {
    if (sent) this.uploading--;
    for (const w of this.watchers.splice(0)) w();
    const next = this.waiting.shift();
    if (next) return next(b);
    this.free.push(b);
    if (this.free.length === this.made && !this.idle) {
      this.idle = setTimeout(() => {
        this.idle = null;
        this.made -= this.free.length;
        this.free.length = 0;
      }, IDLE_MS).unref();
    }
  }
}
