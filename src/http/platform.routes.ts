import type { FastifyPluginAsync } from 'fastify';
import type { PlatformInventoryService } from '../services/platform-inventory.service.js';
import { ctxOf } from './server.js';
import { policy } from './route-policy.js';

export interface PlatformRoutesDeps {
  inventory: PlatformInventoryService;
}

/**
 * Lifeboat extension (not in workloadmgr, whose Horizon plugin asks Nova and Neutron itself):
 * the caller's project as the platform sees it, for clients that speak only this API (the
 * dashboard's VM picker and restore network mapping).
 *
 *   GET /v1/{project}/platform/instances → {"instances": [{id, name, status, availability_zone,
 *       flavor, networks, disks, unprotectable_reason}]}
 *   GET /v1/{project}/platform/networks  → {"networks": [{id, name, subnets}]}
 */
export function platformRoutes(d: PlatformRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/platform/instances', policy('lifeboat:platform_list'), async (req) => ({ instances: await d.inventory.instances(ctxOf(req)) }));
    app.get('/platform/networks', policy('lifeboat:platform_list'), async (req) => ({ networks: await d.inventory.networks(ctxOf(req)) }));
  };
}
