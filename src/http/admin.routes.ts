import type { FastifyPluginAsync } from 'fastify';
import type { AuditService } from '../services/audit.service.js';
import type { UsageService } from '../services/usage.service.js';
import { auditLogView, chargebackView, protectedVmsView, storageUsageView, tenantsUsageView } from './admin.views.js';
import { parseAuditRange } from './audit.commands.js';
import { policy } from './route-policy.js';

export interface AdminRoutesDeps {
  usage: UsageService;
  audit: AuditService;
}

/**
 * The vendor's admin views (workloadmgr-api §4.11): cloud-wide, so every rule is admin_api by
 * default and a member gets the standard 403 before anything is read.
 */
export function adminRoutes(d: AdminRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/workloads/metrics/storage_usage', policy('workload:get_storage_usage'), async () => storageUsageView((await d.usage.storageUsage()).targets));

    app.get('/workloads/metrics/tenants_usage', policy('workload:get_tenants_usage'), async () => {
      const [projects, storage] = await Promise.all([d.usage.projectUsage(), d.usage.storageUsage()]);
      const caps = storage.targets.map((t) => t.target.capacity?.totalBytes ?? null);
      return tenantsUsageView(projects, caps.some((c) => c === null) ? null : caps.reduce<number>((a, c) => a + (c ?? 0), 0));
    });

    app.get('/workloads/metrics/tenants_chargeback', policy('workload:get_tenants_chargeback'), async () => chargebackView(await d.usage.projectUsage()));

    app.get('/workloads/metrics/vms_protected', policy('workload:get_protected_vms'), async () => protectedVmsView(await d.usage.protectedVms()));

    app.get('/workloads/audit/auditlog', policy('workload:get_auditlog'), async (req) => auditLogView(await d.audit.list(parseAuditRange(req.query, d.audit.now()))));
  };
}
