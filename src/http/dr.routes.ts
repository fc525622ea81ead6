import type { FastifyPluginAsync } from 'fastify';
import type { WorkloadService } from '../services/workload.service.js';
import type { ImportService } from '../services/import.service.js';
import type { OrphanService } from '../services/orphan.service.js';
import type { ReassignService } from '../services/reassign.service.js';
import type { Workload } from '../domain/workload.js';
import { ctxOf } from './server.js';
import { queryString } from './query.js';
import { policy } from './route-policy.js';
import { parseImportWorkloads, parseReassignWorkloads } from './dr.commands.js';
import { workloadDetail, workloadSummary } from './workload.views.js';

export interface DrRoutesDeps {
  workloads: WorkloadService;
  imports: ImportService;
  orphans: OrphanService;
  reassign: ReassignService;
  publicUrl: string;
}

/** Disaster recovery (workloadmgr-api §4.12, admin only): import from the target, orphans, reassign. */
export function drRoutes(d: DrRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const details = async (list: Workload[], isAdmin: boolean) =>
      Promise.all(list.map(async (w) => workloadDetail(d.publicUrl, w, { ...(await d.workloads.detailOf(w)), isAdmin })));

    app.get('/workloads/get_list/import_workloads', policy('workload:get_import_workloads_list'), async (req) => {
      const projectId = queryString((req.query as Record<string, unknown>).project_id);
      const list = await d.imports.listImportable(projectId || undefined);
      return { workloads: list.map((w) => workloadSummary(d.publicUrl, w)) };
    });

    app.post('/workloads/import_workloads', policy('workload:import_workloads'), async (req) => {
      const r = await d.imports.importWorkloads(parseImportWorkloads(req.body));
      return {
        workloads: {
          imported_workloads: await details(r.imported, ctxOf(req).isAdmin),
          failed_workloads: r.failed,
          skipped_snapshots: r.skippedSnapshots,
        },
      };
    });

    const orphans = async () => {
      const list = await d.orphans.list();
      return { workloads: list.map((o) => ({ ...workloadSummary(d.publicUrl, o.workload), in_database: o.inDatabase, orphan_reason: o.reason })) };
    };
    app.get('/workloads/orphan_workloads', policy('workload:get_orphaned_workloads_list'), orphans);

    app.post('/workloads/reasign_workloads', policy('workload:workloads_reassign'), async (req) => {
      const r = await d.reassign.reassign(parseReassignWorkloads(req.body));
      return { workloads: { reassigned_workloads: await details(r.reassigned, ctxOf(req).isAdmin), failed_workloads: r.failed } };
    });
  };
}
