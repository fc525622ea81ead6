import type { FastifyPluginAsync } from 'fastify';
import { ValidationError } from '../lib/errors.js';
import type { SettingRow } from '../services/setting.service.js';
import type { TrustService } from '../services/trust.service.js';
import { ctxOf } from './server.js';
import { policy } from './route-policy.js';
import { settingView } from './setting.views.js';

/**
 * /trusts (workloadmgr-api §4.9, tempest F22). The envelope key is `trust` for the list and
 * the create (a list) as for the show (an object); metadata is a list of {key, value}.
 */
export function trustRoutes(d: { trusts: TrustService }): FastifyPluginAsync {
  return async (app) => {
    app.post('/trusts', policy('workload:trust_create'), async (req) => {
      const ctx = ctxOf(req);
      const body = req.body as { trusts?: { role_name?: unknown; is_cloud_trust?: unknown } } | undefined;
      const role = body?.trusts?.role_name;
      if (typeof role !== 'string' || role === '') throw new ValidationError('trusts.role_name must be a role name, e.g. {"trusts": {"role_name": "member"}}');
      if (body?.trusts?.is_cloud_trust === true || body?.trusts?.is_cloud_trust === 'True') throw new ValidationError('Cloud-wide trusts (is_cloud_trust) are not supported; create a trust per project');
      const token = req.headers['x-auth-token'];
      if (typeof token !== 'string') throw new ValidationError('Creating a trust needs your Keystone token in X-Auth-Token');
      return { trust: [trustView(await d.trusts.create(ctx, token, role))] };
    });

    app.get('/trusts', policy('workload:trust_list'), async (req) => ({ trust: (await d.trusts.list(ctxOf(req))).map(trustView) }));

    // Show is checked as a list (admin_or_owner): `workload:trust_get` is the vendor's admin-only
    // action, yet tempest F22 runs trust-show as the trust's owner.
    app.get<{ Params: { name: string } }>('/trusts/:name', policy('workload:trust_list'), async (req) => ({ trust: trustView(await d.trusts.get(ctxOf(req), req.params.name)) }));

    app.delete<{ Params: { name: string } }>('/trusts/:name', policy('workload:trust_delete'), async (req, reply) => {
      await d.trusts.delete(ctxOf(req), req.params.name);
      return reply.code(200).send();
    });
  };
}

/** A setting view (setting.views.ts) with the metadata as the vendor's list of {key, value}. */
function trustView(r: SettingRow) {
  const meta = JSON.parse(r.metadata) as Record<string, unknown>;
  return { ...settingView({ row: r, value: r.value }), metadata: Object.entries(meta).map(([key, value]) => ({ key, value })) };
}
