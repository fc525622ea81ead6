import type { FastifyPluginAsync } from 'fastify';
import type { SchedulerService } from '../services/scheduler.service.js';
import type { WorkloadService } from '../services/workload.service.js';
import { ctxOf } from './server.js';
import { param, policy } from './route-policy.js';

export interface SchedulerRoutesDeps {
  scheduler: SchedulerService;
  /** Finds the workload paused or resumed, the policy target of those routes. */
  workloads: WorkloadService;
}

/**
 * Global job scheduler (workloadmgr-api §4.5) and workload schedule pause/resume (§4.1.9).
 * Answers are JSON booleans (tempest uses truthiness); pause/resume answer 200 with no body.
 */
export function schedulerRoutes(d: SchedulerRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const onWorkload = (action: string) => policy(action, { target: (req, ctx) => d.workloads.get(ctx, param(req, 'id')) });

    app.get('/global_job_scheduler', policy('workload:workload_get_global_job_scheduler'), async () => {
      return { global_job_scheduler: await d.scheduler.globalEnabled() };
    });

    app.post('/global_job_scheduler/enable', policy('workload:workload_enable_global_job_scheduler'), async (req) => {
      const ctx = ctxOf(req);
      return { global_job_scheduler: await d.scheduler.setGlobal(ctx, true) };
    });

    app.post('/global_job_scheduler/disable', policy('workload:workload_disable_global_job_scheduler'), async (req) => {
      const ctx = ctxOf(req);
      return { global_job_scheduler: await d.scheduler.setGlobal(ctx, false) };
    });

    // No published policy names these two; unknown actions fall back to the default rule
    // (admin_or_owner), which is what a workload's owner needs.
    app.post<{ Params: { id: string } }>('/workloads/:id/pause', onWorkload('workload:workload_pause'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.scheduler.pause(ctx, req.params.id);
      return reply.code(200).send();
    });

    app.post<{ Params: { id: string } }>('/workloads/:id/resume', onWorkload('workload:workload_resume'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.scheduler.resume(ctx, req.params.id);
      return reply.code(200).send();
    });
  };
}
