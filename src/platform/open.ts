import { ValidationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { LibvirtPlatform } from './libvirt/libvirt.platform.js';
import { LocalPlatform } from './local/local.platform.js';
import { OpenStackPlatform } from './openstack/openstack.platform.js';
import { KeystoneTrustBroker } from './openstack/trust-broker.js';
import { BarbicanKeyManager } from './openstack/key-manager.js';
import { OpenStackSession } from '../openstack/session.js';
import type { KeyManager, Platform } from './platform.js';

/** Everything any platform may need from the configuration (app/ fills it from Config). */
export interface PlatformSettings {
  /** LIFEBOAT_PLATFORM (already validated by config/). */
  kind: string;
  /** Local platform: the inventory file and where restored disks go. */
  inventoryPath: string;
  restoreDir: string;
  /** libvirt platform: LIFEBOAT_LIBVIRT_URI and LIFEBOAT_LIBVIRT_SCRATCH_DIR. */
  libvirt?: { uri: string; scratchDir: string };
  /** OpenStack platform: Lifeboat's service user in Keystone and the catalog choice. */
  openstack?: {
    keystone: { url: string; user: string; password: string; project: string; userDomain: string; projectDomain: string };
    interface: 'public' | 'internal' | 'admin';
    region: string | null;
    nodeName: string;
    /** LIFEBOAT_OS_DATA_PATH. */
    dataPath?: 'auto' | 'host' | 'api';
  };
  logger?: Logger;
}

/**
 * The one factory: LIFEBOAT_PLATFORM → a ready platform. Opening is strict (an invalid local
 * inventory stops the start with the list of problems). An unknown kind is refused here too,
 * in case a caller bypassed config validation.
 */
export async function openPlatform(s: PlatformSettings): Promise<Platform> {
  switch (s.kind) {
    case 'local':
      return LocalPlatform.open({ inventoryPath: s.inventoryPath, restoreDir: s.restoreDir, logger: s.logger });
    case 'libvirt':
      return new LibvirtPlatform({ uri: s.libvirt?.uri ?? 'qemu:///system', scratchDir: s.libvirt?.scratchDir ?? s.restoreDir, restoreDir: s.restoreDir, logger: s.logger });
    case 'openstack':
      return openOpenStack(s);
    default:
      throw new ValidationError(`Unknown platform ${JSON.stringify(s.kind)} (LIFEBOAT_PLATFORM must be local, libvirt or openstack)`);
  }
}

function openOpenStack(s: PlatformSettings): Platform {
  const o = s.openstack;
  if (!o) throw new ValidationError('LIFEBOAT_PLATFORM=openstack needs LIFEBOAT_KEYSTONE_URL and Lifeboat\'s service credentials');
  const k = o.keystone;
  const options = {
    authUrl: k.url,
    auth: { kind: 'password' as const, username: k.user, password: k.password, userDomainName: k.userDomain, projectName: k.project, projectDomainName: k.projectDomain },
    interface: o.interface,
    region: o.region,
    log: s.logger,
  };
  const session = new OpenStackSession(options);
  return new OpenStackPlatform({
    session,
    trusts: new KeystoneTrustBroker(session, options),
    nodeName: o.nodeName,
    scratchDir: s.libvirt?.scratchDir ?? s.restoreDir,
    dataPath: o.dataPath,
    libvirt: s.libvirt,
    logger: s.logger,
  });
}

/**
 * The platform's key manager alone, for the operator tools (`lifeboat repo verify|gc`), which
 * open encrypted workloads' data keys like the service does: Barbican with
 * LIFEBOAT_PLATFORM=openstack (Lifeboat's service user, as in openOpenStack), else none.
 */
export function openKeyManager(s: PlatformSettings): KeyManager | undefined {
  const o = s.openstack;
  if (s.kind !== 'openstack' || !o) return undefined;
  const k = o.keystone;
  const auth = { kind: 'password' as const, username: k.user, password: k.password, userDomainName: k.userDomain, projectName: k.project, projectDomainName: k.projectDomain };
  return new BarbicanKeyManager(new OpenStackSession({ authUrl: k.url, auth, interface: o.interface, region: o.region, log: s.logger }));
}
