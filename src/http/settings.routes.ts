import type { FastifyPluginAsync } from 'fastify';
import { touchesSmtpTarget, type SettingInput, type SettingService } from '../services/setting.service.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { queryBool } from './query.js';
import { demand, policy } from './route-policy.js';
import { settingView } from './setting.views.js';
import { parseSettingsList, parseSettingsMap } from './setting.commands.js';

export interface SettingRoutesDeps {
  settings: SettingService;
  /** For the check that depends on the body (SMTP host and port). */
  policy: PolicyEnforcer;
}

/**
 * Settings and the e-mail test (workloadmgr-api §4.8). Settings belong to the caller's
 * project. Secret values are masked in every answer.
 */
export function settingRoutes(d: SettingRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    // Pointing the server at an SMTP host:port is an admin's right by default (no SSRF by tenants).
    const allowSmtpTarget = (ctx: RequestContext, settings: SettingInput[]) => {
      if (touchesSmtpTarget(settings)) demand(d.policy, 'workload:settings_smtp_update', ctx);
      return settings;
    };

    app.post('/settings', policy('workload:settings_create'), async (req) => {
      const ctx = ctxOf(req);
      return { settings: (await d.settings.save(ctx, allowSmtpTarget(ctx, parseSettingsList(req.body)))).map(settingView) };
    });

    app.put('/settings', policy('workload:settings_update'), async (req) => {
      const ctx = ctxOf(req);
      return { settings: (await d.settings.save(ctx, allowSmtpTarget(ctx, parseSettingsList(req.body)))).map(settingView) };
    });

    app.get('/settings', policy('workload:settings_get'), async (req) => {
      const ctx = ctxOf(req);
      const hidden = queryBool((req.query as Record<string, unknown>).get_hidden, 'get_hidden');
      return { settings: (await d.settings.list(ctx, { hidden })).map(settingView) };
    });

    app.get<{ Params: { name: string } }>('/settings/:name', policy('workload:setting_get'), async (req) => {
      const ctx = ctxOf(req);
      return { setting: settingView(await d.settings.get(ctx, req.params.name)) };
    });

    // Tempest requires exactly 200 here.
    app.delete<{ Params: { name: string } }>('/settings/:name', policy('workload:setting_delete'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.settings.delete(ctx, req.params.name);
      return reply.code(200).send();
    });

    // No body: the project's settings as a name → value map; `{"settings": {...}}`: set, then the map.
    const readsOnly = (body: unknown) => body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0);
    app.post('/workloads/settings', policy((req) => (readsOnly(req.body) ? 'workload:settings_get' : 'workload:settings_create')), async (req) => {
      const ctx = ctxOf(req);
      if (readsOnly(req.body)) return { settings: await d.settings.map(ctx) };
      return { settings: await d.settings.saveMap(ctx, allowSmtpTarget(ctx, parseSettingsMap(req.body))) };
    });

    app.get('/workloads/email/test_email', policy('workload:settings_email_test'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.settings.sendTestEmail(ctx);
      return reply.code(200).send();
    });
  };
}
