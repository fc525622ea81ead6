import { NotFoundError } from '../../lib/errors.js';
import { assignmentXml, LIFEBOAT_XMLNS, LIFEBOAT_XMLNS_KEY, parseDomainXml } from './domain-xml.js';
import { isNoDomain, Virsh } from './virsh.js';

/**
 * `lifeboat libvirt-assign`: gives a domain to a project (or takes it away) by writing
 * Lifeboat's element into the domain's <metadata>, in the running domain and in its persistent
 * definition alike. Talks to libvirt directly: no running service is needed.
 * Returns the domain's UUID and name. Given a URI it opens its own connection and closes it
 * (no virsh shell outlives the call); given a `Virsh` it uses that one (the service's).
 */
export async function assignDomain(connection: string | Virsh, domain: string, projectId: string | null): Promise<{ uuid: string; name: string }> {
  if (connection instanceof Virsh) return assignWith(connection, domain, projectId);
  const virsh = new Virsh(connection);
  try {
    return await assignWith(virsh, domain, projectId);
  } finally {
    await virsh.close();
  }
}

async function assignWith(virsh: Virsh, domain: string, projectId: string | null): Promise<{ uuid: string; name: string }> {
  let info;
  try {
    info = parseDomainXml(await virsh.run(['dumpxml', domain]));
  } catch (e) {
    if (isNoDomain(e)) throw new NotFoundError(`Domain ${JSON.stringify(domain)} could not be found in libvirt.`);
    throw e;
  }
  const dominfo = await virsh.run(['dominfo', info.uuid]);
  const persistent = /^Persistent:\s+yes/m.test(dominfo);
  const active = !/^State:\s+shut off/m.test(dominfo);
  const scope = [...(persistent ? ['--config'] : []), ...(active ? ['--live'] : [])];
  const change = projectId === null ? ['--remove'] : ['--key', LIFEBOAT_XMLNS_KEY, '--set', assignmentXml(projectId)];
  await virsh.run(['metadata', info.uuid, '--uri', LIFEBOAT_XMLNS, ...change, ...scope]);
  return { uuid: info.uuid, name: info.name };
}

