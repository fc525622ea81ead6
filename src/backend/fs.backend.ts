/** Moved to fs/fs.backend.ts (ARCHITECTURE §3b). Kept only so branches written against the old path still build; delete once none imports it. */
export { FsBackend } from './fs/fs.backend.js';
