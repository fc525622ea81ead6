/**
 * Worker thread of the chunk pool: the CPU-heavy steps (zero check, keyed hash, zstd encode,
 * decode + verify). Buffers arrive transferred and go back transferred; a batch buffer stays
 * here between `hash` and `encode`/`release`, so it crosses the thread boundary only twice.
 */
import { parentPort } from 'node:worker_threads';
import { ChunkCodec, chunkId, compressBound, ID_LEN } from '../repository/chunk-codec.js';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.js';

const codec = new ChunkCodec();
const held = new Map<number, ArrayBuffer>();
let zero = Buffer.alloc(0);
let scratch = Buffer.alloc(0);

function zeros(n: number): Buffer {
  if (zero.length < n) zero = Buffer.alloc(n);
  return zero.subarray(0, n);
}

function reply(msg: WorkerResponse, transfer: ArrayBuffer[]): void {
  parentPort!.postMessage(msg, transfer);
}

function handle(req: WorkerRequest): void {
  switch (req.op) {
    case 'hash': {
      const buf = Buffer.from(req.buf, 0, req.length);
      const count = Math.ceil(req.length / req.chunkSize);
      const idsAb = new ArrayBuffer(count * ID_LEN);
      const ids = Buffer.from(idsAb); // zero id = hole
      for (let i = 0; i < count; i++) {
        const start = i * req.chunkSize;
        const chunk = buf.subarray(start, Math.min(start + req.chunkSize, req.length));
        if (chunk.equals(zeros(chunk.length))) continue;
        chunkId(req.key, chunk).copy(ids, i * ID_LEN);
      }
      held.set(req.task, req.buf);
      reply({ op: 'hash', task: req.task, ids: idsAb, count }, [idsAb]);
      return;
    }
    case 'encode': {
      const ab = held.get(req.task)!;
      held.delete(req.task);
      const buf = Buffer.from(ab, 0, req.length);
      const need = compressBound(req.chunkSize);
      if (scratch.length < need * req.which.length) scratch = Buffer.allocUnsafe(need * req.which.length);
      const meta = new Uint32Array(req.which.length * 2);
      let total = 0;
      req.which.forEach((i, k) => {
        const start = i * req.chunkSize;
        const raw = buf.subarray(start, Math.min(start + req.chunkSize, req.length));
        const r = codec.encode(raw, scratch.subarray(total, total + need), req.level);
        meta[k * 2] = r.length;
        meta[k * 2 + 1] = r.flags;
        total += r.length;
      });
      const out = new ArrayBuffer(total);
      new Uint8Array(out).set(scratch.subarray(0, total));
      reply({ op: 'encode', task: req.task, out, meta, buf: ab }, [out, ab]);
      return;
    }
    case 'release': {
      const ab = held.get(req.task);
      held.delete(req.task);
      reply({ op: 'release', task: req.task, buf: ab ?? null }, ab ? [ab] : []);
      return;
    }
    case 'decode': {
      const stored = Buffer.from(req.stored);
      const out = new ArrayBuffer(req.rawTotal);
      const errors: (string | null)[] = [];
      let rawAt = 0;
      for (let k = 0; k < req.items.length / 4; k++) {
        const off = req.items[k * 4]!;
        const len = req.items[k * 4 + 1]!;
        const rawLen = req.items[k * 4 + 2]!;
        const flags = req.items[k * 4 + 3]!;
        const dst = new Uint8Array(out, rawAt, rawLen);
        const id = new Uint8Array(req.ids, k * ID_LEN, ID_LEN);
        errors.push(codec.decodeVerify(stored.subarray(off, off + len), flags, dst, req.key, id));
        rawAt += rawLen;
      }
      reply({ op: 'decode', task: req.task, out, errors }, [out]);
      return;
    }
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  try {
    handle(req);
  } catch (e) {
    reply({ op: 'error', task: req.task, message: e instanceof Error ? e.message : String(e) }, []);
  }
});
