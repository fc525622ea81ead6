import type { ChunkIdKey } from '../repository/chunk-codec.js';

/**
 * Messages between the chunk pool and its worker threads (chunk.worker.ts).
 *
 * Bulk data never travels in messages: each backup/restore allocates SharedArrayBuffers once
 * (its batch slots) and messages only name regions of them, so the steady state allocates
 * nothing per chunk or per batch on either side (no transfers, no GC pressure from external
 * memory). A slot is reused only after the worker answered for it.
 */
export type WorkerRequest =
  /**
   * For each chunk index k in `which` (chunk k = data[dataOff + k*chunkSize, +chunkSize) cut at
   * `length`): when `hash`, write its id to ids[idsOff + k*32]; when `level` is not null,
   * compress it and write meta (u32 elements; metaOff counts elements) [metaOff + 2j] = stored
   * length, [metaOff + 2j + 1] = flags. Compressed chunks (flags 1) lie back to back at
   * out[outOff...]; a chunk zstd does not shrink (flags 0) is stored raw and NOT copied to out:
   * its stored bytes are the chunk in `data`.
   */
  | {
      op: 'chunks';
      task: number;
      data: SharedArrayBuffer;
      dataOff: number;
      length: number;
      chunkSize: number;
      which: Uint32Array;
      key: ChunkIdKey;
      hash: boolean;
      ids: SharedArrayBuffer;
      idsOff: number;
      level: number | null;
      out: SharedArrayBuffer;
      outOff: number;
      meta: SharedArrayBuffer;
      metaOff: number;
    }
  /**
   * Decode and verify consecutive stored chunks: items = [offset, storedLength, rawLength,
   * flags] per chunk, offsets relative to storedOff; ids = 32 bytes per chunk. Raw bytes go
   * back to back to out[outOff...].
   */
  | {
      op: 'decode';
      task: number;
      stored: SharedArrayBuffer;
      storedOff: number;
      items: Uint32Array;
      ids: Uint8Array;
      key: ChunkIdKey;
      out: SharedArrayBuffer;
      outOff: number;
    };

export type WorkerResponse =
  | { op: 'chunks'; task: number }
  /** errors: null when every chunk verified, else [chunk number within the request, message]. */
  | { op: 'decode'; task: number; error: [number, string] | null }
  | { op: 'error'; task: number; message: string };
