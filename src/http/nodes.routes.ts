import type { FastifyPluginAsync } from 'fastify';
import type { NodeInfo } from '../services/node.service.js';
import { formatWireTime } from '../lib/time.js';
import { policy } from './route-policy.js';

export interface NodeRoutesDeps {
  /** The registered processes (services/node.service.ts listNodeInfo). */
  nodes: () => Promise<NodeInfo[]>;
  /** Jobs of the shared queue by kind and state (the numbers of /metrics' lifeboat_jobs gauge). */
  jobs: () => Promise<{ kind: string; state: string; count: number }[]>;
}

const STATUS: Record<NodeInfo['state'], string> = { up: 'Up', draining: 'Draining', stopped: 'Stopped', down: 'Down' };

/** One process as workloadmgr's `metrics/nodes` lists a node (`node` is its name), plus its load. */
export function nodeView(n: NodeInfo) {
  const r = n.row;
  return {
    node: r.node_name,
    id: r.id,
    role: r.role,
    status: STATUS[n.state],
    is_controller: r.role !== 'worker',
    version: r.version,
    pid: r.pid,
    started_at: formatWireTime(r.started_at),
    last_heartbeat_at: formatWireTime(r.heartbeat_at),
    settings_key_id: r.settings_key_id,
    load: { running_jobs: r.running_jobs, concurrency: r.concurrency, loadavg_1m: r.loadavg },
  };
}

/** `{"jobs": [{kind, state, count}], "totals": {state: count}}`, sorted by kind then state. */
export function jobsView(rows: { kind: string; state: string; count: number }[]) {
  const jobs = [...rows].sort((a, b) => a.kind.localeCompare(b.kind) || a.state.localeCompare(b.state));
  const totals: Record<string, number> = {};
  for (const r of jobs) totals[r.state] = (totals[r.state] ?? 0) + r.count;
  return { jobs, totals };
}

/** `GET /workloads/metrics/nodes` (admin, `workload:get_nodes`): every registered process. */
export function nodeRoutes(d: NodeRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/workloads/metrics/nodes', policy('workload:get_nodes'), async () => ({ nodes: (await d.nodes()).map(nodeView) }));
    // Lifeboat extension: the job queue's health for operators without a Prometheus.
    app.get('/workloads/metrics/jobs', policy('workload:get_metrics'), async () => jobsView(await d.jobs()));
  };
}
