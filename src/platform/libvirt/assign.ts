import { NotFoundError } from '../../lib/errors.js';
import { assignmentXml, LIFEBOAT_XMLNS, LIFEBOAT_XMLNS_KEY, parseDomainXml } from './domain-xml.js';
import { isNoDomain, Virsh } from './virsh.js';

/**
 * `lifeboat libvirt-assign`: gives a domain to a project (or takes it away) by writing
 * Lifeboat's element into the domain's <metadata>, in the running domain and in its persistent
 * definition alike. Talks to libvirt directly: no running service is needed.
 * Returns the domain's UUID and name.
 */
export async function assignDomain(uri: string, domain: string, projectId: string | null): Promise<{ uuid: string; name: string }> {
  const virsh = new Virsh(uri);
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

