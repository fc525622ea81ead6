import type { FastifyPluginAsync } from 'fastify';
import type { SchedulerService } from '../services/scheduler.service.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';

export interface SchedulerRoutesDeps {
  scheduler: SchedulerService;
  policy: PolicyEnforcer;
}

/**
 * Global job scheduler (workloadmgr-api §4.5) and workload schedule pause/resume (§4.1.9).
 * Answers are JSON booleans (tempest uses truthiness); pause/resume answer 200 with no body.
 */
export function schedulerRoutes(d: SchedulerRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const allow = (action: string, ctx: RequestContext) => d.policy.enforce(action, ctx, { project_id: ctx.projectId });

    app.get('/global_job_scheduler', async (req) => {
      allow('workload:workload_get_global_job_scheduler', ctxOf(req));
      return { global_job_scheduler: await d.scheduler.globalEnabled() };
    });

    app.post('/global_job_scheduler/enable', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:workload_enable_global_job_scheduler', ctx);
      return { global_job_scheduler: await d.scheduler.setGlobal(ctx, true) };
    });

    app.post('/global_job_scheduler/disable', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:workload_disable_global_job_scheduler', ctx);
      return { global_job_scheduler: await d.scheduler.setGlobal(ctx, false) };
    });

    // No published policy names these two; unknown actions fall back to the default rule
    // (admin_or_owner), which is what a workload's owner needs.
    app.post<{ Params: { id: string } }>('/workloads/:id/pause', async (req, reply) => {
      const ctx = ctxOf(req);
      allow('workload:workload_pause', ctx);
      await d.scheduler.pause(ctx, req.params.id);
      return reply.code(200).send();
    });

    app.post<{ Params: { id: string } }>('/workloads/:id/resume', async (req, reply) => {
      const ctx = ctxOf(req);
      allow('workload:workload_resume', ctx);
      await d.scheduler.resume(ctx, req.params.id);
      return reply.code(200).send();
    });
  };
}
