import { ValidationError } from '../../lib/errors.js';
import { readSecretPayload } from '../../openstack/barbican.js';
import { OpenStackError } from '../../openstack/errors.js';
import type { OpenStackSession } from '../../openstack/session.js';
import type { KeyManager } from '../platform.js';

/** A key-encryption key is an AES-256 key: 32 bytes. */
const KEY_BYTES = 32;

/**
 * Barbican secrets as key-encryption keys of encrypted workloads (`secret_uuid`), read with
 * Lifeboat's own service identity — never a tenant's token or trust. The KEK is needed where no
 * tenant is present: scheduled snapshots, restores, `repo verify`, GC and a disaster-recovery
 * import on a fresh install; a tenant's token expires and a trust belongs to one user, while the
 * service identity stays. So the tenant decides, per secret, that Lifeboat may read it: it adds
 * Lifeboat's service user to the secret's read ACL (`openstack acl user add --user <id>
 * --operation-type read <secret href>`), and revokes that (or deletes the secret) to stop
 * Lifeboat from opening the workload's backups.
 */
export class BarbicanKeyManager implements KeyManager {
  readonly kind = 'barbican';

  constructor(private readonly session: OpenStackSession) {}

  /** The secret's 32 bytes; ValidationError naming the secret when it is missing, not readable by Lifeboat or not a 256-bit key. */
  async readKey(secretUuid: string): Promise<Buffer> {
    let payload: Buffer;
    try {
      payload = await readSecretPayload(this.session, secretUuid);
    } catch (e) {
      if (!(e instanceof OpenStackError) || (e.status !== 404 && e.status !== 403)) throw e;
      if (e.status === 404) throw new ValidationError(`Barbican secret ${secretUuid} does not exist (or holds no payload)`);
      const user = (await this.session.tokenInfo()).userId;
      throw new ValidationError(`Barbican secret ${secretUuid} is not readable by Lifeboat's service user ${user}: add it to the secret's read ACL (openstack acl user add --user ${user} --operation-type read <secret href>)`);
    }
    if (payload.length !== KEY_BYTES) throw new ValidationError(`Barbican secret ${secretUuid} is not a 256-bit symmetric key (its payload has ${payload.length} bytes)`);
    return payload;
  }
}
