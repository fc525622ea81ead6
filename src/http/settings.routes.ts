import type { FastifyPluginAsync } from 'fastify';
import { touchesSmtpTarget, type SettingService } from '../services/setting.service.js';
import { ValidationError } from '../lib/errors.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { queryBool } from './query.js';
import { settingView } from './setting.views.js';

export interface SettingRoutesDeps {
  settings: SettingService;
  policy: PolicyEnforcer;
}

/** `{"settings": [...]}` → the list; anything else is the legacy 400. */
function settingsList(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('settings' in body)) throw new ValidationError('Incorrect request body format');
  return (body as { settings: unknown }).settings;
}

/**
 * Settings and the e-mail test (workloadmgr-api §4.8). Settings belong to the caller's
 * project. Secret values are masked in every answer.
 */
export function settingRoutes(d: SettingRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const allow = (action: string, ctx: RequestContext) => d.policy.enforce(action, ctx, { project_id: ctx.projectId });
    // Pointing the server at an SMTP host:port is an admin's right by default (no SSRF by tenants).
    const allowSmtpTarget = (ctx: RequestContext, settings: unknown) => {
      if (touchesSmtpTarget(settings)) allow('workload:settings_smtp_update', ctx);
      return settings;
    };

    app.post('/settings', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:settings_create', ctx);
      return { settings: (await d.settings.save(ctx, allowSmtpTarget(ctx, settingsList(req.body)))).map(settingView) };
    });

    app.put('/settings', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:settings_update', ctx);
      return { settings: (await d.settings.save(ctx, allowSmtpTarget(ctx, settingsList(req.body)))).map(settingView) };
    });

    app.get('/settings', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:settings_get', ctx);
      const hidden = queryBool((req.query as Record<string, unknown>).get_hidden, 'get_hidden');
      return { settings: (await d.settings.list(ctx, { hidden })).map(settingView) };
    });

    app.get<{ Params: { name: string } }>('/settings/:name', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:setting_get', ctx);
      return { setting: settingView(await d.settings.get(ctx, req.params.name)) };
    });

    // Tempest requires exactly 200 here.
    app.delete<{ Params: { name: string } }>('/settings/:name', async (req, reply) => {
      const ctx = ctxOf(req);
      allow('workload:setting_delete', ctx);
      await d.settings.delete(ctx, req.params.name);
      return reply.code(200).send();
    });

    // No body: the project's settings as a name → value map; `{"settings": {...}}`: set, then the map.
    app.post('/workloads/settings', async (req) => {
      const ctx = ctxOf(req);
      const body = req.body;
      if (body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0)) {
        allow('workload:settings_get', ctx);
        return { settings: await d.settings.map(ctx) };
      }
      allow('workload:settings_create', ctx);
      return { settings: await d.settings.saveMap(ctx, allowSmtpTarget(ctx, settingsList(body))) };
    });

    app.get('/workloads/email/test_email', async (req, reply) => {
      const ctx = ctxOf(req);
      allow('workload:settings_email_test', ctx);
      await d.settings.sendTestEmail(ctx);
      return reply.code(200).send();
    });
  };
}
