import { backendConformance } from '../backend.conformance.js';
import { MemBackend } from './mem.backend.js';

backendConformance('mem', async () => ({ backend: new MemBackend() }));
