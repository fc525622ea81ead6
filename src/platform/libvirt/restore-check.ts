import type { Instance } from '../../domain/instance.js';
import type { RestorePlan, RestorePlanInstance } from '../../domain/restore.js';
import type { Snapshot, SnapshotInstance } from '../../domain/snapshot.js';
import { InvalidStateError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { resolveNetwork } from './networks.js';
import { RESTORE_FORMATS, isRestoreFormat } from './restore-disks.js';
import type { Virsh } from './virsh.js';

export interface RestoreCheckDeps {
  virsh: Virsh;
  /** A domain of the restore's project; null when missing or foreign. */
  getInstance: (uuid: string) => Promise<Instance | null>;
}

/**
 * What the libvirt platform checks before a restore is accepted (4xx, nothing changed):
 * * one-click: the originals must be gone (the vendor's one-click restores in place of them);
 * * in place: the domain exists in the project and has every disk named;
 * * new domains: each volume type asked is `raw` or `qcow2`, and each NIC's network (mapped or
 *   as in the snapshot) exists on this host.
 */
export async function checkLibvirtRestore(deps: RestoreCheckDeps, plan: RestorePlan, snap: Snapshot): Promise<void> {
  for (const p of plan.instances) {
    const si = snap.instances.find((i) => i.id === p.id);
    if (!si) throw new ValidationError(`Invalid restore options: instance ${p.id} is not in snapshot ${snap.id}`);
    if (plan.kind === 'inplace') {
      await checkInPlace(deps, p, si);
      continue;
    }
    if (plan.kind === 'oneclick' && (await deps.getInstance(p.id))) {
      throw new InvalidStateError(`One-click restore recreates the workload's instances in place of the originals, and instance ${si.name} (${p.id}) still exists: delete it first, or use a selective or in-place restore`);
    }
    for (const [device, type] of Object.entries(p.volumeTypes ?? {})) {
      if (!isRestoreFormat(type)) throw new ValidationError(`Invalid restore options: new_volume_type ${JSON.stringify(type)} of disk ${device}: the libvirt platform writes ${RESTORE_FORMATS.join(' or ')} disks`);
    }
    await checkNetworks(deps, p, si);
  }
}

async function checkInPlace(deps: RestoreCheckDeps, p: RestorePlanInstance, si: SnapshotInstance): Promise<void> {
  const inst = await deps.getInstance(p.id);
  if (!inst) throw NotFoundError.of('Instance', p.id);
  for (const device of p.devices) {
    if (!inst.disks.some((d) => d.device === device)) throw new ValidationError(`Invalid restore options: instance ${si.name} (${p.id}) has no disk ${device} any more`);
  }
}

async function checkNetworks(deps: RestoreCheckDeps, p: RestorePlanInstance, si: SnapshotInstance): Promise<void> {
  for (const nic of si.nics) {
    const mapped = p.networkMap[nic.network.id];
    if (await resolveNetwork(deps.virsh, mapped?.id ?? nic.network.id)) continue;
    throw new ValidationError(
      mapped
        ? `Invalid restore options: target network ${JSON.stringify(mapped.id)} does not exist on this libvirt host`
        : `Invalid restore options: network ${JSON.stringify(nic.network.name || nic.network.id)} of instance ${si.name} does not exist on this libvirt host; map it to an existing one with networks_mapping`,
    );
  }
}
