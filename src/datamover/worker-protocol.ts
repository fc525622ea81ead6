/** Messages between the chunk pool and its worker threads (chunk.worker.ts). */
export type WorkerRequest =
  /** Zero-check and hash every chunk of buf[0, length); the worker keeps buf for the next step. */
  | { op: 'hash'; task: number; buf: ArrayBuffer; length: number; chunkSize: number; key: Uint8Array }
  /** Encode chunks `which` (indexes into the held batch); returns the batch buffer too. */
  | { op: 'encode'; task: number; which: Uint32Array; chunkSize: number; length: number; level: number }
  /** Nothing to encode: hand the held batch buffer back. */
  | { op: 'release'; task: number }
  /**
   * Decode and verify consecutive stored chunks: items = [offset, storedLength, rawLength,
   * flags] per chunk in `stored`; ids = 32 bytes per chunk. Output: raw bytes back to back.
   */
  | { op: 'decode'; task: number; stored: ArrayBuffer; items: Uint32Array; ids: ArrayBuffer; key: Uint8Array; rawTotal: number };

export type WorkerResponse =
  | { op: 'hash'; task: number; ids: ArrayBuffer; count: number }
  | { op: 'encode'; task: number; out: ArrayBuffer; meta: Uint32Array; buf: ArrayBuffer }
  | { op: 'release'; task: number; buf: ArrayBuffer | null }
  | { op: 'decode'; task: number; out: ArrayBuffer; errors: (string | null)[] }
  | { op: 'error'; task: number; message: string };
