import type { Instance } from '../domain/instance.js';
import type { Clock } from '../lib/clock.js';
import type { Placement, Platform } from '../platform/platform.js';
import { liveWorkerNodeNames } from '../store/node.store.js';
import type { Db } from '../store/db.js';

/**
 * Per-host routing of a snapshot (issue 12, "per-host job routing"). A platform that reads
 * some disks only on their compute host (OpenStack's libvirt path) says, per instance, which
 * host that is and whether any worker could read them instead (Platform.placement). The
 * snapshot then runs on exactly one worker: the one of the host every pinned instance sits
 * on, or this one when nothing is pinned elsewhere.
 *
 * An instance is pinned to its host when a live worker serves that host (node registry: a
 * worker whose LIFEBOAT_NODE_NAME is the host, heartbeating); one whose host has no live worker
 * runs anywhere if its disks can be read anywhere, else the snapshot fails naming the host.
 * Instances on two or more served hosts: one snapshot has one repository writer and one worker
 * (per-host child tasks are not built). When the instances of all hosts but one can be read
 * anywhere (through the APIs), the snapshot runs on that one host's worker — the host with an
 * instance readable only there, else the one with the most instances (this node first on a
 * tie, then by name: every node picks the same) — and the others are read through the APIs
 * there. Only instances readable only on two different hosts are refused, naming the hosts.
 */
export type Route = { kind: 'here' } | { kind: 'handover'; node: string; instances: string[] };

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
  for (const inst of instances) {
    const p = placements.get(inst.id) ?? { host: null, anywhere: true };
    if (p.host !== null && live.has(p.host)) pinned.set(p.host, [...(pinned.get(p.host) ?? []), inst]);
    else if (!p.anywhere) {
      const why = p.reason ? `: ${p.reason}` : `, and its disks cannot be read by any other worker`;
      throw new UnroutableError(
        p.host === null
          ? `Instance ${label(inst)} has no compute host whose worker could read its disks${why}`
          : `Instance ${label(inst)} sits on compute host ${p.host}, which no live Lifeboat worker serves (run a worker there with LIFEBOAT_NODE_NAME=${p.host})${why}`,
      );
    }
  }
  const only = pinned.size > 1 ? oneHostFor(pinned, placements, d.nodeName) : [...pinned][0];
  if (!only || only[0] === d.nodeName) return { kind: 'here' };
  return { kind: 'handover', node: only[0], instances: only[1].map((i) => i.id) };
}

/** The one host a snapshot of instances on several served hosts runs on (see the module doc), or an UnroutableError. */
function oneHostFor(pinned: Map<string, Instance[]>, placements: Map<string, Placement>, nodeName: string): [string, Instance[]] {
  const onlyThere = [...pinned].filter(([, list]) => list.some((i) => placements.get(i.id)?.anywhere === false));
  if (onlyThere.length > 1) {
    const hosts = onlyThere.map(([h, list]) => `${h} (${list.map(label).join(', ')})`).join('; ');
    throw new UnroutableError(`The workload's instances sit on several compute hosts whose disks only their own Lifeboat workers can read: ${hosts}. One snapshot is read by one worker, so they must sit on one host`);
  }
  if (onlyThere.length === 1) return onlyThere[0]!;
  const rank = ([h, list]: [string, Instance[]]) => [-list.length, h === nodeName ? 0 : 1, h] as const;
  return [...pinned].sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2].localeCompare(y[2]);
  })[0]!;
}
