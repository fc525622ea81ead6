import type { OnReadOpts, Socket } from 'node:net';
import { NbdError } from './errors.js';
import { copyBytes } from '../lib/copy-bytes.js';

/**
 * Bytes a staging read asks for. Small on purpose: staging holds headers and short replies; a
 * payload copyTo waits for is read straight into the caller's buffer, and only the part of it
 * that arrived with its header (at most about two staging reads) is copied.
 */
const STAGE_BYTES = 16 * 1024;

/** The payload copyTo waits for: the rest of `dst[at, +left)` comes straight from the socket. */
interface DirectTarget {
  dst: Buffer;
  at: number;
  left: number;
  settle: (e?: Error) => void;
}

/**
 * Pull-style reads from a stream socket with bounded buffering: the socket is paused once
 * `highWater` bytes wait unread and resumed when the consumer has taken half of them, so a slow
 * consumer slows the server down instead of growing memory. Payloads go into the caller's
 * buffer (`copyTo`), never gathered whole.
 *
 * Two ways to receive (same methods, same guarantees):
 * - `new SocketReader(socket)`: a socket that already exists (a server's accepted one); every
 *   byte arrives in a buffer Node allocates and is copied once more.
 * - `reader.onread()` passed as createConnection's `onread`, then `reader.attach(socket)`: the
 *   kernel writes a payload that copyTo waits for directly into the caller's buffer (no
 *   allocation, no copy in JavaScript); everything else lands in small staging buffers. For an
 *   NBD read stream that is most bytes (a libvirt full backup moves GBs through here).
 *
 * Once the socket ends or fails, bytes already buffered can still be read; a read that needs
 * more fails with the stored error (an NbdError `closed` unless `fail()` gave another).
 */
export class SocketReader {
  private readonly chunks: Buffer[] = [];
  private head = 0; // bytes of chunks[0] already consumed
  private buffered = 0;
  private waiter: { need: number; wake: () => void } | null = null;
  private direct: DirectTarget | null = null;
  /** The buffer the socket reads into next (onread mode), and whether it is the direct target's. */
  private issued: Buffer | null = null;
  private issuedDirect = false;
  private failure: Error | null = null;
  private paused = false;
  private socket: Socket | null = null;
  private viaOnread = false;
  private directReceived = 0;

  constructor(
    socket: Socket | null,
    private readonly highWater = 1024 * 1024,
  ) {
    if (socket) {
      socket.on('data', (b: Buffer) => this.onData(b));
      this.attach(socket);
    }
  }

  /** For net.createConnection({ ..., onread }): reads land where this reader says. Then call attach(). */
  onread(): OnReadOpts {
    this.viaOnread = true;
    return { buffer: () => this.nextBuffer(), callback: (n, buf) => this.onRead(n, buf as Buffer) };
  }

  /** Watches the socket's end and errors (and, for the constructor's socket, its data). */
  attach(socket: Socket): void {
    this.socket = socket;
    socket.on('end', () => this.fail(new NbdError('closed', 'the server closed the connection')));
    socket.on('close', () => this.fail(new NbdError('closed', 'the connection closed')));
    // The code only (ECONNREFUSED, ENOENT, …): Node's message would carry the socket path.
    socket.on('error', (e: NodeJS.ErrnoException) => this.fail(new NbdError('closed', `connection failed (${e.code ?? 'socket error'})`, { cause: e })));
  }

  /** True while reads are paused because the consumer is behind (not the server's fault). */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Bytes the socket wrote straight into copyTo targets (onread mode). */
  get directBytes(): number {
    return this.directReceived;
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
    const d = this.direct;
    if (d) {
      this.direct = null;
      d.settle(this.failure);
    }
  }

  /** Reads exactly `n` bytes (n ≤ highWater; for headers and small payloads). */
  async readExact(n: number): Promise<Buffer> {
    if (n > this.highWater) throw new RangeError(`readExact(${n}) exceeds the buffer limit`);
    await this.waitFor(n);
    const out = Buffer.allocUnsafe(n);
    this.take(out, 0, n);
    return out;
  }

  /** Copies the next `n` bytes into `dst` at `dstOffset`: what is buffered, then (onread mode) straight from the socket. */
  async copyTo(dst: Buffer, dstOffset: number, n: number): Promise<void> {
    let done = this.take(dst, dstOffset, n);
    if (done < n && this.viaOnread) {
      if (this.failure) throw this.failure;
      if (this.direct || this.waiter) throw new Error('SocketReader: concurrent reads are not supported');
      await new Promise<void>((resolve, reject) => {
        this.direct = { dst, at: dstOffset + done, left: n - done, settle: (e) => (e ? reject(e) : resolve()) };
      });
      return;
    }
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

  /** onread mode: where the socket's next read goes. Called after every read (and once at connect). */
  private nextBuffer(): Buffer {
    const d = this.direct;
    this.issuedDirect = d !== null;
    this.issued = d ? d.dst.subarray(d.at, d.at + d.left) : Buffer.allocUnsafe(STAGE_BYTES);
    return this.issued;
  }

  /** onread mode: `n` bytes arrived in `buf` (the last buffer nextBuffer gave). False pauses the socket. */
  private onRead(n: number, buf: Buffer): boolean {
    const d = this.direct;
    if (buf === this.issued && this.issuedDirect && d) {
      this.directReceived += n;
      this.advance(d, n);
      return true;
    }
    let rest = buf.subarray(0, n);
    if (d) {
      // Staged before copyTo asked: these bytes come first in its target.
      const k = Math.min(n, d.left);
      copyBytes(d.dst, d.at, rest.subarray(0, k));
      this.advance(d, k);
      rest = rest.subarray(k);
    }
    if (rest.length > 0) this.onData(rest);
    return !this.paused;
  }

  private advance(d: DirectTarget, n: number): void {
    d.at += n;
    d.left -= n;
    if (d.left > 0) return;
    this.direct = null;
    d.settle();
  }

  private onData(b: Buffer): void {
    this.chunks.push(b);
    this.buffered += b.length;
    if (this.buffered >= this.highWater && !this.paused) {
      this.paused = true;
      // onread mode pauses by the callback's return value (the handle stops reading).
      if (!this.viaOnread) this.socket?.pause();
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
      if (this.waiter || this.direct) throw new Error('SocketReader: concurrent reads are not supported');
      await new Promise<void>((wake) => (this.waiter = { need: n, wake }));
    }
  }

  /** Moves up to `max` buffered bytes into `dst` (or drops them when dst is null); returns the count. */
  private take(dst: Buffer | null, dstOffset: number, max: number): number {
    let moved = 0;
    while (moved < max && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const n = Math.min(c.length - this.head, max - moved);
      if (dst) copyBytes(dst, dstOffset + moved, c.subarray(this.head, this.head + n));
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
      this.socket?.resume();
    }
    return moved;
  }
}
