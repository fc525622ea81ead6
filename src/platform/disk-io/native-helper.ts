import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * A loader for one of the optional native helpers `npm ci` builds with node-gyp (binding.gyp:
 * `sparse_extents`, `page_cache`). It loads the helper on first call and remembers the outcome:
 * the helper, or null when it was not built or cannot load here (each caller has a slower path).
 */
export function nativeHelper<T>(name: string): () => T | null {
  let loaded: T | null | undefined;
  return () => {
    if (loaded !== undefined) return loaded;
    try {
      // dist/src/platform/disk-io/ → <package>/build/Release/
      const path = fileURLToPath(new URL(`../../../../build/Release/${name}.node`, import.meta.url));
      loaded = createRequire(import.meta.url)(path) as T;
    } catch {
      loaded = null;
    }
    return loaded;
  };
}
