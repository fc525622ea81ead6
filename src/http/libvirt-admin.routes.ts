import type { FastifyPluginAsync } from 'fastify';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import { param, policy } from './route-policy.js';

/** Gives a domain (by UUID) to a project, or takes it away (null); NotFound for an unknown domain. */
export type AssignDomain = (domainUuid: string, projectId: string | null) => Promise<{ uuid: string; name: string }>;

const PROJECT_RE = /^[0-9a-f]{32}$/;

/**
 * Lifeboat extension, libvirt platform only (not part of the workloadmgr API, hence the
 * `lifeboat-ext` prefix): the admin API of `lifeboat libvirt-assign`.
 *
 *   PUT    /v1/{tenant}/lifeboat-ext/libvirt/domains/{uuid}/assignment  {"assignment": {"project_id": "<32 hex>"}}
 *   DELETE /v1/{tenant}/lifeboat-ext/libvirt/domains/{uuid}/assignment
 *
 * Both answer `{"assignment": {"domain_id", "name", "project_id"}}` (project_id null after a
 * DELETE). Guarded by `lifeboat:libvirt_assign` (default `rule:admin_api`): a member gets 403
 * before anything is looked up. Domains are named by UUID only; anything else, or a UUID libvirt
 * does not know, is 404.
 */
export function libvirtAdminRoutes(d: { assign: AssignDomain }): FastifyPluginAsync {
  return async (app) => {
    const path = '/lifeboat-ext/libvirt/domains/:domain_id/assignment';
    const domainOf = (id: string): string => {
      if (!isUuid(id)) throw NotFoundError.of('Domain', id);
      return id.toLowerCase();
    };
    const view = (r: { uuid: string; name: string }, projectId: string | null) => ({ assignment: { domain_id: r.uuid, name: r.name, project_id: projectId } });

    app.put(path, policy('lifeboat:libvirt_assign'), async (req) => {
      const domain = domainOf(param(req, 'domain_id'));
      const body = req.body as { assignment?: { project_id?: unknown } } | undefined;
      const projectId = body?.assignment?.project_id;
      if (typeof projectId !== 'string' || !PROJECT_RE.test(projectId)) throw new ValidationError('assignment.project_id must be a project id (32 lowercase hex characters)');
      return view(await d.assign(domain, projectId), projectId);
    });

    app.delete(path, policy('lifeboat:libvirt_assign'), async (req) => {
      return view(await d.assign(domainOf(param(req, 'domain_id')), null), null);
    });
  };
}
