/**
 * Page-aligned shared memory, for buffers that O_DIRECT writes from
 * (platform/disk-io/direct-io.ts: the address must be aligned, and JavaScript only sees
 * offsets).
 */
const WASM_PAGE = 65536;

// The part of the WebAssembly global used here (the project's TypeScript libs do not declare it).
declare const WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: SharedArrayBuffer } };

/**
 * Shared memory whose start is page-aligned (at least `bytes`, in 64 KiB steps): a shared
 * WebAssembly.Memory, which V8 maps in whole pages, where a plain SharedArrayBuffer comes from
 * malloc (16 bytes past a page here, and O_DIRECT refused it with EINVAL).
 */
export function alignedSharedMemory(bytes: number): SharedArrayBuffer {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    // V8 caps the address space it reserves for WebAssembly memories: plain memory still
    // works, its writes just go buffered (O_DIRECT refuses it, direct-io.ts).
    return new SharedArrayBuffer(bytes);
  }
}
