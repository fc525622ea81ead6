import { IntegrityError, MissingObjectError } from '../../lib/errors.js';
import { assertValidKey, assertValidPrefix, type Backend, type ListedObject, type ObjectWriter } from '../backend.js';

/**
 * In-memory backend for tests and demos. Stores copies, so callers may reuse their buffers.
 * `objects` is exposed on purpose: fault tests flip bytes or drop objects directly.
 */
export class MemBackend implements Backend {
  readonly objects = new Map<string, Buffer>();

  async put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    assertValidKey(key);
    const buf = data instanceof Uint8Array ? Buffer.from(data) : Buffer.concat(data as Uint8Array[]);
    this.objects.set(key, buf);
  }

  async openWriter(key: string): Promise<ObjectWriter> {
    assertValidKey(key);
    const parts: Buffer[] = [];
    let state: 'open' | 'committed' | 'aborted' = 'open';
    return {
      write: async (data) => {
        if (state !== 'open') throw new Error(`write to a ${state} object writer (${key})`);
        for (const p of data) parts.push(Buffer.from(p)); // copies: callers reuse their buffers
      },
      commit: async () => {
        if (state !== 'open') throw new Error(`commit of a ${state} object writer (${key})`);
        state = 'committed';
        this.objects.set(key, Buffer.concat(parts));
      },
      abort: async () => {
        if (state === 'open') state = 'aborted';
      },
    };
  }

  async getRangeInto(key: string, offset: number, length: number, dst: Uint8Array): Promise<void> {
    assertValidKey(key);
    const b = this.objects.get(key);
    if (!b) throw new MissingObjectError(`object ${key} not found`);
    if (offset < 0 || length < 0 || offset + length > b.length) {
      throw new IntegrityError(`object ${key} is shorter than ${offset + length} bytes`);
    }
    dst.set(b.subarray(offset, offset + length));
  }

  async get(key: string): Promise<Buffer> {
    assertValidKey(key);
    const b = this.objects.get(key);
    if (!b) throw new MissingObjectError(`object ${key} not found`);
    return Buffer.from(b);
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    assertValidKey(key);
    const b = this.objects.get(key);
    if (!b) throw new MissingObjectError(`object ${key} not found`);
    if (offset < 0 || length < 0 || offset + length > b.length) {
      throw new IntegrityError(`object ${key} is shorter than ${offset + length} bytes`);
    }
    return Buffer.from(b.subarray(offset, offset + length));
  }

  async stat(key: string): Promise<number | null> {
    assertValidKey(key);
    return this.objects.get(key)?.length ?? null;
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const o of this.listSizes(prefix)) yield o.key;
  }

  async *listSizes(prefix: string): AsyncIterable<ListedObject> {
    assertValidPrefix(prefix);
    // Snapshot the objects first: callers may delete while iterating.
    const listed = [...this.objects].filter(([k]) => k.startsWith(prefix)).map(([key, data]) => ({ key, size: data.length }));
    for (const o of listed) yield o;
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.objects.delete(key);
  }
}
