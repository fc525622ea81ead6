import { loadavg } from 'node:os';
import type { Db } from '../store/db.js';
import { heartbeatNode, insertNode, listNodes, pruneNodes, type NodeRow, type NodeStatus } from '../store/node.store.js';
import { sealedSecretKeyIds } from '../store/setting.store.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';

/** Rows of processes gone this long are removed at the next registration. */
const KEEP_GONE_MS = 24 * 3600_000;

/**
 * This host's settings key is not the one the other hosts (or the stored secrets) use. Stops
 * the start: a host that cannot open sealed settings would silently skip notifications, and
 * one that seals new ones would make them unreadable everywhere else.
 */
export class SettingsKeyMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsKeyMismatchError';
  }
}

export interface NodeRegistryDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  /** Unique per process (the job runner's lease owner when there is one). */
  id: string;
  nodeName: string;
  role: string;
  version: string;
  settingsKeyId: string;
  /** Where the key came from, for the mismatch message (a path or variable name, no secret). */
  settingsKeySource: string;
  /** Jobs this process may run at once (0: no worker). */
  concurrency: number;
  /** Jobs it runs right now. */
  running: () => number;
  heartbeatMs: number;
}

/**
 * One row per running process in `nodes`, renewed every `heartbeatMs` with its load (running
 * jobs, load average) and status (`up`, `draining` once shutdown began, `stopped` at the end).
 * The admin's `metrics/nodes` reads the rows through `listNodeInfo`; a process killed without
 * a goodbye shows `down` once its heartbeat is older than the liveness window.
 */
export class NodeRegistry {
  private timer: NodeJS.Timeout | null = null;
  private status: NodeStatus = 'up';
  private beat: Promise<unknown> | null = null;

  constructor(private readonly d: NodeRegistryDeps) {}

  /** Checks the settings key against live nodes and stored secrets, then registers and starts heartbeating. */
  async register(liveWindowMs: number): Promise<void> {
    const now = this.d.clock.now();
    await assertSettingsKeyAgrees(this.d.db, this.d.settingsKeyId, this.d.settingsKeySource, now - liveWindowMs);
    await pruneNodes(this.d.db, now - KEEP_GONE_MS);
    await insertNode(this.d.db, {
      id: this.d.id,
      node_name: this.d.nodeName,
      role: this.d.role,
      pid: process.pid,
      version: this.d.version,
      settings_key_id: this.d.settingsKeyId,
      status: 'up',
      running_jobs: 0,
      concurrency: this.d.concurrency,
      loadavg: loadavg()[0] ?? 0,
      started_at: now,
      heartbeat_at: now,
    });
    this.timer = setInterval(() => void this.heartbeat(), this.d.heartbeatMs);
    this.timer.unref();
  }

  private heartbeat(): Promise<unknown> {
    if (this.beat) return this.beat;
    this.beat = heartbeatNode(this.d.db, this.d.id, { status: this.status, running_jobs: this.d.running(), loadavg: loadavg()[0] ?? 0, heartbeat_at: this.d.clock.now() })
      .catch((e: unknown) => this.d.log.warn({ err: errorMessage(e) }, 'node heartbeat failed'))
      .finally(() => (this.beat = null));
    return this.beat;
  }

  /** Shutdown began: the node list shows it draining at once. */
  async draining(): Promise<void> {
    this.status = 'draining';
    await this.beat;
    await this.heartbeat();
  }

  /** Last heartbeat, status `stopped`; call before the store closes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.status = 'stopped';
    await this.beat;
    await this.heartbeat();
  }
}

/**
 * Refuses a settings key other than the one live nodes use or stored secrets were sealed
 * with; the message names both key ids and the nodes, never a key.
 */
export async function assertSettingsKeyAgrees(db: Db, keyId: string, source: string, liveSince: number): Promise<void> {
  const others = (await listNodes(db)).filter((n) => n.status !== 'stopped' && n.heartbeat_at >= liveSince && n.settings_key_id !== keyId);
  const sealed = (await sealedSecretKeyIds(db)).filter((id) => id !== keyId);
  if (others.length === 0 && sealed.length === 0) return;
  const theirs = others.length > 0 ? `running node(s) ${others.map((n) => `${n.node_name} (pid ${n.pid}, key id ${n.settings_key_id})`).join(', ')}` : `stored secret settings (sealed with key id ${sealed.join(', ')})`;
  throw new SettingsKeyMismatchError(
    `the settings key of this host (${source}, key id ${keyId}) differs from the one of ${theirs}: every host must read the same key (LIFEBOAT_SETTINGS_KEY_FILE)`,
  );
}

/** A registered process as the admin's node list shows it. */
export interface NodeInfo {
  row: NodeRow;
  /** `down`: no heartbeat within the liveness window though it never said it stopped. */
  state: 'up' | 'draining' | 'stopped' | 'down';
}

export async function listNodeInfo(db: Db, now: number, liveWindowMs: number): Promise<NodeInfo[]> {
  return (await listNodes(db)).map((row) => ({
    row,
    state: row.status === 'stopped' ? 'stopped' : row.heartbeat_at < now - liveWindowMs ? 'down' : (row.status as 'up' | 'draining'),
  }));
}
