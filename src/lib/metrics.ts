import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The service's Prometheus metrics (prom-client), one registry per running Lifeboat (tests run
 * several in one process; a global registry would refuse the second). Served at /metrics by
 * http/ops.routes.ts. Every label value is bounded: route templates (never raw URLs), backend
 * operation names, job kinds and states — never an id, a key or a project.
 *
 * Who records what:
 * - HTTP: the ops hooks (http/ops.routes.ts), one observation per answered request;
 * - backend requests: the metrics decorator innermost around the real backend
 *   (backend/metrics.backend.ts), so every try of a retried request counts and queueing for a
 *   connection slot does not;
 * - backup bytes and chunk-index lookups: the snapshot job, per backed-up disk;
 * - jobs by kind and state: read from the store at scrape time (the queue is shared by every
 *   process, so any API process reports the whole queue).
 */
export interface JobCount {
  kind: string;
  state: string;
  count: number;
}

/** What one disk backup adds to the byte and chunk counters (datamover's BackupDiskSummary, narrowed). */
export interface DiskBackupNumbers {
  bytesRead: number;
  bytesStored: number;
  /** Logical bytes referenced without storing them again (reused chunks × chunk size). */
  bytesDeduplicated: number;
  newChunks: number;
  reusedChunks: number;
}

/**
 * Who may read /metrics (LIFEBOAT_METRICS_ACCESS):
 * - `loopback` (default): callers on the loopback interface without a token (a Prometheus
 *   agent or sidecar on the same host; scrapers rarely speak Keystone), anyone else with a
 *   token the `workload:get_metrics` rule allows (admin by default);
 * - `admin`: a token the rule allows, from anywhere (use it when a reverse proxy on this host
 *   makes every client look like loopback);
 * - `open`: anyone (the port is reachable only from a monitoring network).
 * The numbers are operational (job counts per kind, route templates, latencies, byte totals):
 * no ids, names or projects, but still nothing a tenant needs, hence not open by default.
 */
export const METRICS_ACCESS = ['loopback', 'admin', 'open'] as const;
export type MetricsAccess = (typeof METRICS_ACCESS)[number];

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class LifeboatMetrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly backendDuration: Histogram<'op'>;
  private readonly backendErrors: Counter<'op' | 'kind'>;
  private readonly backupBytes: Counter<'kind'>;
  private readonly chunkLookups: Counter<'result'>;
  private jobSource: (() => Promise<JobCount[]>) | null = null;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'lifeboat_process_' });
    this.httpRequests = new Counter({ name: 'lifeboat_http_requests_total', help: 'HTTP requests answered, by method, route template and status code.', labelNames: ['method', 'route', 'status_code'], registers });
    this.httpDuration = new Histogram({ name: 'lifeboat_http_request_duration_seconds', help: 'HTTP request latency (first byte in to last byte out), by method, route template and status code.', labelNames: ['method', 'route', 'status_code'], buckets: LATENCY_BUCKETS, registers });
    this.backendDuration = new Histogram({ name: 'lifeboat_backend_request_duration_seconds', help: 'Backup target request latency per try (retries count separately), by operation.', labelNames: ['op'], buckets: LATENCY_BUCKETS, registers });
    this.backendErrors = new Counter({ name: 'lifeboat_backend_request_errors_total', help: 'Failed backup target requests per try, by operation and kind (transient: retried; not_found; permanent).', labelNames: ['op', 'kind'], registers });
    this.backupBytes = new Counter({ name: 'lifeboat_backup_bytes_total', help: 'Backup bytes by kind: read from disks, stored (new compressed chunk bytes), deduplicated (logical bytes referenced without storing again).', labelNames: ['kind'], registers });
    this.chunkLookups = new Counter({ name: 'lifeboat_chunk_cache_lookups_total', help: "Lookups of backed-up chunks in the project's chunk index (the dedup cache): hit = already stored, reused; miss = new chunk stored.", labelNames: ['result'], registers });
    const source = () => this.jobSource;
    new Gauge({
      name: 'lifeboat_jobs',
      help: 'Jobs in the shared queue, by kind and state (queued, running, done, failed).',
      labelNames: ['kind', 'state'],
      registers,
      async collect() {
        this.reset();
        const read = source();
        if (!read) return;
        for (const j of await read()) this.set({ kind: j.kind, state: j.state }, j.count);
      },
    });
  }

  /** Where the jobs gauge reads its numbers at scrape time. */
  setJobSource(read: () => Promise<JobCount[]>): void {
    this.jobSource = read;
  }

  observeHttp(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status_code: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  observeBackend(op: string, seconds: number, error: 'transient' | 'not_found' | 'permanent' | null): void {
    this.backendDuration.observe({ op }, seconds);
    if (error) this.backendErrors.inc({ op, kind: error });
  }

  recordDiskBackup(n: DiskBackupNumbers): void {
    this.backupBytes.inc({ kind: 'read' }, n.bytesRead);
    this.backupBytes.inc({ kind: 'stored' }, n.bytesStored);
    this.backupBytes.inc({ kind: 'deduplicated' }, n.bytesDeduplicated);
    this.chunkLookups.inc({ result: 'hit' }, n.reusedChunks);
    this.chunkLookups.inc({ result: 'miss' }, n.newChunks);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
