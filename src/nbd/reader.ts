import type { Socket } from 'node:net';
import { NbdError } from './errors.js';

/**
 * Pull-style reads from a stream socket with bounded buffering: the socket is paused once
 * `highWater` bytes wait unread and resumed when the consumer has taken half of them, so a slow
 * consumer slows the server down instead of growing memory. Payloads are copied straight into
 * the caller's buffer (`copyTo`), never gathered whole.
 *
 * Once the socket ends or fails, bytes already buffered can still be read; a read that needs
 * more fails with the stored error (an NbdError `closed` unless `fail()` gave another).
 */
export class SocketReader {
  private readonly chunks: Buffer[] = [];
  private head = 0; // bytes of chunks[0] already consumed
  private buffered = 0;
  private waiter: { need: number; wake: () => void } | null = null;
  private failure: Error | null = null;
  private paused = false;

  constructor(
    private readonly socket: Socket,
    private readonly highWater = 1024 * 1024,
  ) {
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('end', () => this.fail(new NbdError('closed', 'the server closed the connection')));
    socket.on('close', () => this.fail(new NbdError('closed', 'the connection closed')));
    // The code only (ECONNREFUSED, ENOENT, …): Node's message would carry the socket path.
    socket.on('error', (e: NodeJS.ErrnoException) => this.fail(new NbdError('closed', `connection failed (${e.code ?? 'socket error'})`, { cause: e })));
  }

  /** True while reads are paused because the consumer is behind (not the server's fault). */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Bytes received and not yet consumed. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The first error that ended the stream, if any. */
  get error(): Error | null {
    return this.failure;
  }

  /** Ends reading: pending and later reads that need more bytes fail with `e` (first error wins). */
  fail(e: Error): void {
    if (!this.failure) this.failure = e;
    this.wakeWaiter();
  }

  /** Reads exactly `n` bytes (n ≤ highWater; for headers and small payloads). */
  async readExact(n: number): Promise<Buffer> {
    if (n > this.highWater) throw new RangeError(`readExact(${n}) exceeds the buffer limit`);
    await this.waitFor(n);
    const out = Buffer.allocUnsafe(n);
    this.take(out, 0, n);
    return out;
  }

  /** Copies the next `n` bytes into `dst` at `dstOffset`, in pieces as they arrive. */
  async copyTo(dst: Buffer, dstOffset: number, n: number): Promise<void> {
    let done = 0;
    while (done < n) {
      await this.waitFor(1);
      done += this.take(dst, dstOffset + done, n - done);
    }
  }

  /** Discards the next `n` bytes. */
  async skip(n: number): Promise<void> {
    let done = 0;
    while (done < n) {
      await this.waitFor(1);
      done += this.take(null, 0, n - done);
    }
  }

  private onData(b: Buffer): void {
    this.chunks.push(b);
    this.buffered += b.length;
    if (this.buffered >= this.highWater && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.wakeWaiter();
  }

  private wakeWaiter(): void {
    const w = this.waiter;
    if (w && (this.buffered >= w.need || this.failure)) {
      this.waiter = null;
      w.wake();
    }
  }

  private async waitFor(n: number): Promise<void> {
    while (this.buffered < n) {
      if (this.failure) throw this.failure;
      if (this.waiter) throw new Error('SocketReader: concurrent reads are not supported');
      await new Promise<void>((wake) => (this.waiter = { need: n, wake }));
    }
  }

  /** Moves up to `max` buffered bytes into `dst` (or drops them when dst is null); returns the count. */
  private take(dst: Buffer | null, dstOffset: number, max: number): number {
    let moved = 0;
    while (moved < max && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const n = Math.min(c.length - this.head, max - moved);
      if (dst) c.copy(dst, dstOffset + moved, this.head, this.head + n);
      moved += n;
      this.head += n;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.buffered -= moved;
    if (this.paused && this.buffered < this.highWater / 2 && !this.failure) {
      this.paused = false;
      this.socket.resume();
    }
    return moved;
  }
}
