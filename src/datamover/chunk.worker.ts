/**
 * Worker thread of the chunk pool: the CPU-heavy steps (keyed hash, zstd encode, decode +
 * verify). Requests name regions of SharedArrayBuffers owned by the caller (worker-protocol.ts);
 * the worker reads and writes them in place and answers with a tiny message.
 */
import { parentPort } from 'node:worker_threads';
import { ChunkCodec, compressBound, FLAG_COMPRESSED, ID_LEN, newChunkHasher, type ChunkHasher, type ChunkIdKey } from '../repository/chunk-codec.js';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.js';
import { copyBytes } from '../lib/copy-bytes.js';

const codec = new ChunkCodec();
let scratch = new Uint8Array(0);
let hasher: ChunkHasher | null = null;
let hasherKey: ChunkIdKey = { hash: 'hmac-sha256', key: Buffer.alloc(0) };

function hasherFor(k: ChunkIdKey): ChunkHasher {
  // An encrypted scope's backup posts its id key alone (hashing), its restore with the data key: both count.
  if (!hasher || hasherKey.hash !== k.hash || !Buffer.from(hasherKey.key).equals(k.key) || (k.dek !== undefined) !== (hasher.dek !== undefined)) {
    hasher = newChunkHasher(k);
    hasherKey = { hash: k.hash, key: Buffer.from(k.key) };
  }
  return hasher;
}

function reply(msg: WorkerResponse): void {
  parentPort!.postMessage(msg);
}

function handle(req: WorkerRequest): void {
  switch (req.op) {
    case 'chunks': {
      const { chunkSize, length, which } = req;
      const data = new Uint8Array(req.data, req.dataOff, length);
      const h = req.hash ? hasherFor(req.key) : null;
      const ids = h ? new Uint8Array(req.ids, req.idsOff, Math.ceil(length / chunkSize) * ID_LEN) : null;
      const encode = req.level !== null;
      const meta = encode ? new Uint32Array(req.meta, req.metaOff * 4, which.length * 2) : null;
      const out = encode ? new Uint8Array(req.out, req.outOff, length) : null;
      const bound = compressBound(chunkSize);
      if (encode && scratch.length < bound) scratch = new Uint8Array(bound);
      let at = 0;
      for (let j = 0; j < which.length; j++) {
        const k = which[j]!;
        const start = k * chunkSize;
        const raw = data.subarray(start, Math.min(start + chunkSize, length));
        if (h) h.idInto(raw, ids!, k * ID_LEN);
        if (encode) {
          // Compressed chunks go straight to out when the worst case fits there (all but the
          // last few of a batch), else through scratch. A raw chunk is not copied at all: the
          // caller stores it from the data slot (protocol: flags 0 = not in out).
          const direct = out!.length - at >= bound;
          const n = codec.compressInto(raw, direct ? out!.subarray(at) : scratch, req.level!);
          if (n > 0 && !direct) copyBytes(out!, at, scratch.subarray(0, n));
          meta![j * 2] = n > 0 ? n : raw.length;
          meta![j * 2 + 1] = n > 0 ? FLAG_COMPRESSED : 0;
          at += n;
        }
      }
      reply({ op: 'chunks', task: req.task });
      return;
    }
    case 'decode': {
      const h = hasherFor(req.key);
      const stored = new Uint8Array(req.stored, req.storedOff);
      const n = req.items.length / 4;
      let rawAt = req.outOff;
      for (let k = 0; k < n; k++) {
        const off = req.items[k * 4]!;
        const len = req.items[k * 4 + 1]!;
        const rawLen = req.items[k * 4 + 2]!;
        const flags = req.items[k * 4 + 3]!;
        const dst = new Uint8Array(req.out, rawAt, rawLen);
        const err = codec.decodeVerify(stored.subarray(off, off + len), flags, dst, h, req.ids.subarray(k * ID_LEN, k * ID_LEN + ID_LEN));
        if (err) {
          reply({ op: 'decode', task: req.task, error: [k, err] });
          return;
        }
        rawAt += rawLen;
      }
      reply({ op: 'decode', task: req.task, error: null });
      return;
    }
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  try {
    handle(req);
  } catch (e) {
    reply({ op: 'error', task: req.task, message: e instanceof Error ? e.message : String(e) });
  }
});
