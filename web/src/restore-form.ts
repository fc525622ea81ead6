/**
 * The restore wizard's form and the POST /snapshots/{id} body it becomes (workloadmgr's
 * restore options: one-click, selective with VMs, disks, new names and network mapping, or in
 * place). Pure functions without imports, so the node tests check them against the API's own
 * parser (test/dashboard-validation.test.ts).
 */

export type RestoreKind = 'oneclick' | 'selective' | 'inplace';

/** What the wizard needs of the snapshot: its VMs, their disks and networks. */
export interface SnapshotVm {
  id: string;
  name: string;
  disks: { device: string; volumeId?: string }[];
  networks: { id: string; name: string; subnetId?: string }[];
}

export interface RestoreVmChoice {
  id: string;
  include: boolean;
  /** New name (selective); ignored in place. */
  newName: string;
  /** Devices to restore. */
  devices: string[];
}

export interface RestoreForm {
  kind: RestoreKind;
  name: string;
  vms: RestoreVmChoice[];
  /** Snapshot network id → target network id (selective). */
  networkMap: Record<string, string>;
  /** Snapshot network id → target subnet id ('' or absent: the target network's first subnet). */
  subnetMap: Record<string, string>;
  /** In place overwrites the VMs' disks: the user must tick the confirmation. */
  confirmInPlace: boolean;
}

export type RestoreErrors = Partial<Record<string, string>>;

/** The wizard's start: every VM and disk chosen, new names "<name>-restored", networks kept. */
export function initialRestoreForm(vms: SnapshotVm[], snapshotName: string): RestoreForm {
  const networkMap: Record<string, string> = {};
  const subnetMap: Record<string, string> = {};
  for (const vm of vms)
    for (const n of vm.networks) {
      networkMap[n.id] = n.id;
      subnetMap[n.id] = n.subnetId ?? '';
    }
  return {
    kind: 'oneclick',
    name: `Restore of ${snapshotName}`.slice(0, 255),
    vms: vms.map((v) => ({ id: v.id, include: true, newName: `${v.name}-restored`, devices: v.disks.map((d) => d.device) })),
    networkMap,
    subnetMap,
    confirmInPlace: false,
  };
}

/** A network the platform offers as a restore target (GET /platform/networks). */
export interface TargetNetwork {
  id: string;
  name: string;
  subnets: { id: string }[];
}

/** The subnet a mapping sends: the chosen one when the target network has it, else its first (none on libvirt). */
export function chosenSubnet(f: RestoreForm, from: string, target: TargetNetwork | undefined): { id: string } | undefined {
  return target?.subnets.find((s) => s.id === f.subnetMap[from]) ?? target?.subnets[0];
}

/** Errors keyed by field: `name`, `vms`, `vm-<id>-name`, `vm-<id>-disks`, `net-<id>`, `subnet-<id>`, `confirm`. */
export function validateRestoreForm(f: RestoreForm, targets: TargetNetwork[]): RestoreErrors {
  const e: RestoreErrors = {};
  if (f.name.trim() === '') e.name = 'Enter a name for the restore.';
  else if (f.name.length > 255) e.name = 'Use at most 255 characters.';
  if (f.kind === 'oneclick') return e;
  const chosen = f.vms.filter((v) => v.include);
  if (chosen.length === 0) e.vms = 'Choose at least one VM.';
  for (const v of chosen) {
    if (v.devices.length === 0) e[`vm-${v.id}-disks`] = 'Choose at least one disk.';
    if (f.kind === 'selective' && v.newName.trim() === '') e[`vm-${v.id}-name`] = 'Enter a name for the new VM.';
    else if (v.newName.length > 255) e[`vm-${v.id}-name`] = 'Use at most 255 characters.';
  }
  if (f.kind === 'selective') {
    for (const [from, to] of Object.entries(f.networkMap)) {
      const t = targets.find((n) => n.id === to);
      if (!t) e[`net-${from}`] = 'Choose a network of this project.';
      else if (f.subnetMap[from] && t.subnets.length > 1 && !t.subnets.some((s) => s.id === f.subnetMap[from])) e[`subnet-${from}`] = 'Choose a subnet of this network.';
    }
  }
  if (f.kind === 'inplace' && !f.confirmInPlace) e.confirm = 'Confirm that the disks of these VMs are overwritten.';
  return e;
}

/** The restore request of a valid form (validateRestoreForm first). */
export function restoreBody(f: RestoreForm, vms: SnapshotVm[], targets: TargetNetwork[]) {
  const name = f.name.trim();
  const common = { name, description: '', type: 'openstack', restore_type: f.kind, oneclickrestore: f.kind === 'oneclick' };
  if (f.kind === 'oneclick') return { restore: { name, description: '', options: { ...common, openstack: { instances: [], zone: '' } } } };
  const instances = f.vms.map((c) => ({
    id: c.id,
    include: c.include,
    ...(f.kind === 'selective' ? { name: c.newName.trim() } : {}),
    vdisks: c.include ? c.devices.map((d) => ({ id: d })) : [],
  }));
  const networks =
    f.kind === 'selective'
      ? Object.entries(f.networkMap).map(([from, to]) => {
          const src = vms.flatMap((v) => v.networks).find((n) => n.id === from);
          const t = targets.find((n) => n.id === to);
          const subnet = chosenSubnet(f, from, t);
          return {
            snapshot_network: { id: from, ...(src?.subnetId ? { subnet: { id: src.subnetId } } : {}) },
            target_network: { id: to, name: t?.name ?? to, ...(subnet ? { subnet: { id: subnet.id } } : {}) },
          };
        })
      : [];
  return { restore: { name, description: '', options: { ...common, openstack: { instances, networks_mapping: { networks } } } } };
}
