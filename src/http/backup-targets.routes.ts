import type { FastifyPluginAsync } from 'fastify';
import type { BackupTargetService } from '../services/backup-target.service.js';
import { policy } from './route-policy.js';
import { backupTargetTypeView, backupTargetView } from './backup-target.views.js';

export interface BackupTargetRoutesDeps {
  targets: BackupTargetService;
}

/**
 * The configured backup targets (workloadmgr 5.x, admin only). Read-only: targets come from
 * configuration (LIFEBOAT_TARGETS), so POST/DELETE are not served (405 from the router).
 * A workload picks one at create time by `backup_target_types` (one of the names listed).
 */
export function backupTargetRoutes(d: BackupTargetRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/backup_targets', policy('workload:backup_target_list'), async () => {
      return { backup_targets: (await d.targets.list()).map(backupTargetView) };
    });
    app.get('/backup_target_types', policy('workload:backup_target_list'), async () => {
      return { backup_target_types: (await d.targets.list()).map(backupTargetTypeView) };
    });
  };
}
