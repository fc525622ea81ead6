import type { Instance } from '../domain/instance.js';
import type { Clock } from '../lib/clock.js';
import type { Platform } from '../platform/platform.js';
import { liveWorkerNodeNames } from '../store/node.store.js';
import type { Db } from '../store/db.js';

/**
 * Per-host routing of a snapshot (issue 12, "per-host job routing"). A platform that reads
 * some disks only on their compute host (OpenStack's libvirt path) says, per instance, which
 * host that is and whether any worker could read them instead (Platform.placement).
 *
 * An instance is pinned to its host when a live worker serves that host (node registry: a
 * worker whose LIFEBOAT_NODE_NAME is the host, heartbeating); one whose host has no live worker
 * runs anywhere if its disks can be read anywhere, else the snapshot fails naming the host.
 * Then:
 * - nothing pinned, or pinned only to this node: the snapshot runs here;
 * - pinned to one other host: the whole snapshot is handed to that host's worker (it reads the
 *   unpinned instances through the APIs too);
 * - pinned to several hosts: the snapshot is split. This job stays the parent: it reads the
 *   instances pinned to this node and the unpinned ones, and every other host gets a part (a
 *   child job only that host's worker may claim, snapshot-part.job.ts); the parent commits
 *   the one manifest once every part is done, and fails, cancels or dies as a whole.
 */
export type Route =
  | { kind: 'here' }
  | { kind: 'handover'; node: string; instances: string[] }
  | { kind: 'split'; here: Instance[]; parts: { node: string; instances: Instance[] }[] };

export interface RoutingDeps {
  db: Db;
  platform: Platform;
  clock: Clock;
  /** This worker's node name (LIFEBOAT_NODE_NAME). */
  nodeName: string;
  /** A node whose last heartbeat is older than this is not live (the runner's lease). */
  liveWindowMs: number;
}

/** The snapshot cannot run on any live worker: the message names the host(s) and what fixes it. */
export class UnroutableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnroutableError';
  }
}

const label = (i: Instance) => `${i.name} (${i.id})`;

export async function routeSnapshot(d: RoutingDeps, projectId: string, instances: Instance[]): Promise<Route> {
  if (!d.platform.placement || instances.length === 0) return { kind: 'here' };
  const placements = await d.platform.placement(projectId, instances);
  const live = await liveWorkerNodeNames(d.db, d.clock.now() - d.liveWindowMs);
  live.add(d.nodeName);
  const pinned = new Map<string, Instance[]>();
  const unpinned: Instance[] = [];
  for (const inst of instances) {
    const p = placements.get(inst.id) ?? { host: null, anywhere: true };
    if (p.host !== null && live.has(p.host)) pinned.set(p.host, [...(pinned.get(p.host) ?? []), inst]);
    else if (p.anywhere) unpinned.push(inst);
    else {
      const why = p.reason ? `: ${p.reason}` : `, and its disks cannot be read by any other worker`;
      throw new UnroutableError(
        p.host === null
          ? `Instance ${label(inst)} has no compute host whose worker could read its disks${why}`
          : `Instance ${label(inst)} sits on compute host ${p.host}, which no live Lifeboat worker serves (run a worker there with LIFEBOAT_NODE_NAME=${p.host})${why}`,
      );
    }
  }
  const elsewhere = [...pinned].filter(([host]) => host !== d.nodeName);
  if (elsewhere.length === 0) return { kind: 'here' };
  if (pinned.size === 1) return { kind: 'handover', node: elsewhere[0]![0], instances: instances.map((i) => i.id) };
  return {
    kind: 'split',
    here: [...(pinned.get(d.nodeName) ?? []), ...unpinned],
    parts: elsewhere.sort(([a], [b]) => a.localeCompare(b)).map(([node, list]) => ({ node, instances: list })),
  };
}
