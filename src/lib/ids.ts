import { randomBytes, randomUUID } from 'node:crypto';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX32_RE = /^[0-9a-f]{32}$/;

/** Lowercase v4 UUID with dashes: ids of workloads, snapshots, restores, tasks. */
export function newId(): string {
  return randomUUID();
}

/** 32 lowercase hex chars: Keystone-style ids of projects, users, roles. */
export function newHexId(): string {
  return randomBytes(16).toString('hex');
}

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_RE.test(s.toLowerCase());
}

export function isHexId(s: unknown): s is string {
  return typeof s === 'string' && HEX32_RE.test(s);
}

/** `req-<uuid4>` as oslo.middleware and workloadmgr emit. */
export function newRequestId(): string {
  return `req-${randomUUID()}`;
}
