import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { OpenStackApi } from '../../openstack/api.js';
import { OpenStackError } from '../../openstack/errors.js';
import type { CinderVolume, NeutronPort, NeutronSecurityGroup, NovaFlavor, NovaServer } from '../../openstack/types.js';
import { waitUntil } from '../../openstack/wait.js';
import type { RestoreTag } from '../platform.js';
import { attach, DETACHED_KEY, unmarkDetached } from './restore-inplace.js';
import { deleteServer, imageTag, PENDING_KEY, pendingDescription, portName, STEP_TIMEOUT_MS, unmarkFlavor, unmarkGroup, unmarkVolume } from './restore-resources.js';
import { Temporaries } from './temporaries.js';
import { removeVolume } from './volume-export.js';

type MarkedVolume = CinderVolume & { metadata?: Record<string, string> };

/**
 * What a restore whose worker died left in OpenStack (called by the reconciler; idempotent):
 * the servers and volumes still marked PENDING_KEY = its id, the flavors and security groups
 * still described pendingDescription(tag) (restore-resources.ts), its ports no server uses, its
 * temporary Glance images. Runs with the service identity (admin), scoped to the restore's
 * project (flavors are the cloud's: found by the restore's own mark). Servers go first, so
 * their ports, volumes, groups and flavor are free to delete. Publishing unmarks the server
 * first (the commit point): a marked volume, group or flavor that a server still uses once the
 * marked servers are gone belongs to a published server and is unmarked, never removed. A
 * volume an in-place restore left detached is attached again at its device. Throws naming
 * what could not be removed.
 */
export async function cleanupOpenStackRestore(api: OpenStackApi, projectId: string, tag: RestoreTag, log: Logger): Promise<void> {
  const temps = new Temporaries(log);
  const pending = (m: Record<string, string> | undefined) => m?.[PENDING_KEY] === tag.restoreId;
  const servers = (await api.listServers(projectId)).filter((s: NovaServer) => s.tenant_id === projectId && pending(s.metadata));
  const q = new URLSearchParams({ all_tenants: '1', project_id: projectId });
  const volumes = (await api.session.call<{ volumes: MarkedVolume[] }>('volumev3', 'GET', `/volumes/detail?${q}`)).data.volumes.filter((v) => pending(v.metadata));
  const images = (await api.session.call<{ images: { id: string; owner: string }[] }>('image', 'GET', `/images?tag=${encodeURIComponent(imageTag(tag))}&limit=1000`)).data.images.filter((i) => i.owner === projectId);
  const groups = (await api.projectSecurityGroups(projectId)).filter((g: NeutronSecurityGroup) => g.project_id === projectId && g.description === pendingDescription(tag));
  const flavors = (await api.session.call<{ flavors: NovaFlavor[] }>('compute', 'GET', '/flavors/detail?is_public=None')).data.flavors.filter((f) => f.description === pendingDescription(tag));
  // Removal runs newest first: images, then volumes, flavors, groups (after the ports, which are read once the servers are gone); the servers before all.
  for (const g of groups) temps.add(`Neutron security group ${g.id}`, () => removeGroup(api, projectId, g.id, tag, log));
  for (const f of flavors) temps.add(`Nova flavor ${f.id}`, () => removeFlavor(api, f.id, tag, log));
  for (const v of volumes) temps.add(`Cinder volume ${v.id}`, () => removeUnlessAttached(api, v.id, log));
  for (const i of images) temps.add(`Glance image ${i.id}`, () => api.deleteImage(i.id));
  for (const s of servers) await deleteServer(api.session, api, s.id);
  const portsQ = new URLSearchParams({ project_id: projectId, name: portName(tag) });
  const ports = (await api.session.call<{ ports: NeutronPort[] }>('network', 'GET', `/ports?${portsQ}`)).data.ports.filter((p) => !p.device_id);
  for (const p of ports) temps.add(`Neutron port ${p.id}`, async () => void (await api.session.call('network', 'DELETE', `/ports/${p.id}`, { expect: [204, 404] })));
  // An in-place restore that died with a volume detached: attach it again where it was.
  for (const v of await api.session.call<{ volumes: MarkedVolume[] }>('volumev3', 'GET', `/volumes/detail?${q}`).then((r) => r.data.volumes)) {
    const [rid, serverId, device] = (v.metadata?.[DETACHED_KEY] ?? '').split(' ');
    if (rid !== tag.restoreId || !serverId || !device) continue;
    temps.add(`attachment of Cinder volume ${v.id} to server ${serverId}`, () => attach({ tenant: api.session, tenantApi: api }, serverId, v.id, device).then(() => unmarkDetached({ tenant: api.session }, v.id)));
  }
  const left = await temps.removeAll();
  log.info({ restoreId: tag.restoreId, servers: servers.length, volumes: volumes.length, ports: ports.length, images: images.length, groups: groups.length, flavors: flavors.length, left: left.length }, 'OpenStack restore leftovers removed');
  if (left.length > 0) throw new Error(`could not remove what restore ${tag.restoreId} left: ${left.join('; ')}`);
}

/** A marked volume: removed, unless a (published) server still has it attached: then unmarked. */
async function removeUnlessAttached(api: OpenStackApi, id: string, log: Logger): Promise<void> {
  // The marked servers are gone: an attachment still detaching from one of them settles first.
  const v = await waitUntil(`Cinder volume ${id}`, () => api.getVolume(id), (x) => !['creating', 'uploading', 'downloading', 'attaching', 'detaching'].includes(x.status), { timeoutMs: STEP_TIMEOUT_MS, goneIsDone: true });
  if (!v) return;
  if (v.status === 'in-use' && v.attachments.length > 0) {
    log.warn({ volume: id, server: v.attachments[0]!.server_id }, 'a marked volume is attached to a published server: unmarked, kept');
    return unmarkVolume(api.session, id);
  }
  await removeVolume(api, id);
}

/** A marked security group: removed, unless a port still uses it (409: a published server's): then unmarked. */
async function removeGroup(api: OpenStackApi, projectId: string, id: string, tag: RestoreTag, log: Logger): Promise<void> {
  try {
    await api.session.call('network', 'DELETE', `/security-groups/${id}`, { expect: [204, 404] });
  } catch (e) {
    if (!(e instanceof OpenStackError && e.status === 409)) throw e;
    const own = (await api.session.call<{ ports: NeutronPort[] }>('network', 'GET', `/ports?${new URLSearchParams({ project_id: projectId, name: portName(tag) })}`)).data.ports;
    if (own.length > 0) throw new Error(`security group ${id} is still used by a port of the restore: ${errorMessage(e)}`);
    log.warn({ group: id }, 'a marked security group is used by a published server: unmarked, kept');
    await unmarkGroup(api.session, id, tag);
  }
}

/** A marked flavor: removed, unless a server uses it (a published one, the marked are gone): then unmarked. */
async function removeFlavor(api: OpenStackApi, id: string, tag: RestoreTag, log: Logger): Promise<void> {
  const users = (await api.session.call<{ servers: { id: string }[] }>('compute', 'GET', `/servers?${new URLSearchParams({ all_tenants: '1', flavor: id })}`)).data.servers;
  if (users.length > 0) {
    log.warn({ flavor: id, servers: users.length }, 'a marked flavor is used by a published server: unmarked, kept');
    return unmarkFlavor(api.session, id, tag);
  }
  await api.session.call('compute', 'DELETE', `/flavors/${id}`, { expect: [202, 404] });
}
