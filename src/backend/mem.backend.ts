/** Moved to mem/mem.backend.ts (ARCHITECTURE §3b). Kept only so branches written against the old path still build; delete once none imports it. */
export { MemBackend } from './mem/mem.backend.js';
