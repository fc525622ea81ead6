import { useEffect, useState } from 'preact/hooks';
import type { PlatformNetwork, SnapshotDetail, V1 } from '../api';
import { ErrorBox, Field, Page, useAction, useLoad } from '../components';
import { Link, navigate } from '../router';
import { chosenSubnet, initialRestoreForm, restoreBody, validateRestoreForm, type RestoreErrors, type RestoreForm, type RestoreKind, type SnapshotVm } from '../restore-form';

const KINDS: { kind: RestoreKind; label: string; hint: string }[] = [
  { kind: 'oneclick', label: 'One-click', hint: 'Every VM as it was: original names, disks and networks.' },
  { kind: 'selective', label: 'Selective', hint: 'New VMs: choose VMs and disks, new names and networks.' },
  { kind: 'inplace', label: 'In place', hint: 'Overwrite the disks of the existing VMs with the snapshot.' },
];

function snapshotVms(s: SnapshotDetail): SnapshotVm[] {
  return (s.instances ?? []).map((v) => ({
    id: v.id,
    name: v.name,
    disks: v.vdisks.map((d) => ({ device: d.volume_mountpoint, ...(d.volume_id ? { volumeId: d.volume_id } : {}) })),
    networks: v.nics.map((n) => ({ id: n.network.id, name: n.network.name, ...(n.network.subnet ? { subnetId: n.network.subnet.id } : {}) })),
  }));
}

function VmChoices({ f, vms, errors, set }: { f: RestoreForm; vms: SnapshotVm[]; errors: RestoreErrors; set: (f: RestoreForm) => void }) {
  const update = (id: string, change: Partial<RestoreForm['vms'][number]>) => set({ ...f, vms: f.vms.map((c) => (c.id === id ? { ...c, ...change } : c)) });
  return (
    <fieldset id="vms" tabIndex={-1}>
      <legend>VMs and disks</legend>
      {errors.vms ? <small class="field-error">{errors.vms}</small> : null}
      {vms.map((vm) => {
        const c = f.vms.find((x) => x.id === vm.id)!;
        return (
          <div key={vm.id} class="vm-choice">
            <div class="field check">
              <input type="checkbox" id={`vm-${vm.id}`} checked={c.include} onChange={(e) => update(vm.id, { include: e.currentTarget.checked })} />
              <label for={`vm-${vm.id}`}>
                Restore <strong>{vm.name}</strong>
              </label>
            </div>
            {c.include && f.kind === 'selective' ? (
              <Field id={`vm-${vm.id}-name`} label={`New name for ${vm.name}`} error={errors[`vm-${vm.id}-name`]}>
                {(a) => <input {...a} value={c.newName} onInput={(e) => update(vm.id, { newName: e.currentTarget.value })} />}
              </Field>
            ) : null}
            {c.include ? (
              <div class="disks" role="group" aria-label={`Disks of ${vm.name}`}>
                {vm.disks.map((d) => (
                  <span key={d.device} class="field check">
                    <input
                      type="checkbox"
                      id={`disk-${vm.id}-${d.device}`}
                      checked={c.devices.includes(d.device)}
                      onChange={(e) => update(vm.id, { devices: e.currentTarget.checked ? [...c.devices, d.device] : c.devices.filter((x) => x !== d.device) })}
                    />
                    <label for={`disk-${vm.id}-${d.device}`}>{d.device}</label>
                  </span>
                ))}
                {errors[`vm-${vm.id}-disks`] ? <small class="field-error">{errors[`vm-${vm.id}-disks`]}</small> : null}
              </div>
            ) : null}
          </div>
        );
      })}
    </fieldset>
  );
}

/** How a target network reads in the list: name, subnets, and whether it is shared or down. */
function networkLabel(t: PlatformNetwork): string {
  const parts = [t.name];
  if (t.subnets.length > 0) parts.push(`(${t.subnets.map((s) => s.cidr).join(', ')})`);
  if (t.shared) parts.push('· shared');
  if (!t.active) parts.push('· not active');
  return parts.join(' ');
}

/** Each network of the snapshot's VMs → one of the platform's networks (and a subnet when it has several). */
function NetworkMapping({ f, vms, targets, errors, set }: { f: RestoreForm; vms: SnapshotVm[]; targets: PlatformNetwork[]; errors: RestoreErrors; set: (f: RestoreForm) => void }) {
  const sources = [...new Map(vms.flatMap((v) => v.networks).map((n) => [n.id, n])).values()];
  if (sources.length === 0) return null;
  return (
    <fieldset>
      <legend>Networks</legend>
      {targets.length === 0 ? <p class="muted">The platform offers no network to restore onto.</p> : null}
      {sources.map((n) => {
        const target = targets.find((t) => t.id === f.networkMap[n.id]);
        return (
          <div key={n.id}>
            <Field id={`net-${n.id}`} label={`VMs on ${n.name} join`} error={errors[`net-${n.id}`]}>
              {(a) => (
                <select {...a} value={f.networkMap[n.id] ?? ''} onChange={(e) => set({ ...f, networkMap: { ...f.networkMap, [n.id]: e.currentTarget.value }, subnetMap: { ...f.subnetMap, [n.id]: '' } })}>
                  {target ? null : <option value="">Choose a network</option>}
                  {targets.map((t) => (
                    <option key={t.id} value={t.id}>
                      {networkLabel(t)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            {target && target.subnets.length > 1 ? (
              <Field id={`subnet-${n.id}`} label={`Subnet on ${target.name}`} error={errors[`subnet-${n.id}`]}>
                {(a) => (
                  <select {...a} value={chosenSubnet(f, n.id, target)?.id ?? ''} onChange={(e) => set({ ...f, subnetMap: { ...f.subnetMap, [n.id]: e.currentTarget.value } })}>
                    {target.subnets.map((s) => (
                      <option key={s.id} value={s.id}>
                        {s.name || s.id} ({s.cidr})
                      </option>
                    ))}
                  </select>
                )}
              </Field>
            ) : null}
          </div>
        );
      })}
    </fieldset>
  );
}

/** The restore wizard: kind, then VMs/disks/names/networks (selective) or a confirmation (in place). */
export function RestoreWizard({ api, id }: { api: V1; id: string }) {
  const { data, error } = useLoad(async () => {
    const [snapshot, networks] = await Promise.all([api.snapshot(id), api.networks()]);
    return { snapshot, networks, vms: snapshotVms(snapshot) };
  }, [id]);
  const [f, setF] = useState<RestoreForm | null>(null);
  const [errors, setErrors] = useState<RestoreErrors>({});
  const [tried, setTried] = useState(false);
  const action = useAction();
  useEffect(() => {
    if (data) setF(initialRestoreForm(data.vms, data.snapshot.name));
  }, [data]);
  // After a first submit, errors follow the form as it is corrected.
  useEffect(() => {
    if (tried && f && data) setErrors(validateRestoreForm(f, data.networks));
  }, [f]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!f || !data) return;
    const errs = validateRestoreForm(f, data.networks);
    setErrors(errs);
    setTried(true);
    if (Object.keys(errs).length > 0) {
      document.getElementById(Object.keys(errs)[0] ?? '')?.focus();
      return;
    }
    await action.run(async () => {
      const r = await api.startRestore(id, restoreBody(f, data.vms, data.networks));
      navigate(`/restores/${r.id}`);
    });
  };
  return (
    <Page title={data ? `Restore snapshot ${data.snapshot.name}` : 'Restore'}>
      <ErrorBox error={error} />
      {data && data.snapshot.status !== 'available' ? <p class="error-text">Only an available snapshot can be restored (this one is {data.snapshot.status}).</p> : null}
      {f && data ? (
        <form onSubmit={submit} noValidate aria-label="Restore">
          <fieldset>
            <legend>Kind of restore</legend>
            {KINDS.map((k) => (
              <div key={k.kind} class="field check">
                <input type="radio" name="kind" id={`kind-${k.kind}`} checked={f.kind === k.kind} onChange={() => setF({ ...f, kind: k.kind })} aria-describedby={`kind-${k.kind}-hint`} />
                <label for={`kind-${k.kind}`}>
                  {k.label} <small id={`kind-${k.kind}-hint`} class="muted">{k.hint}</small>
                </label>
              </div>
            ))}
          </fieldset>
          <Field id="name" label="Name of the restore" error={errors.name}>
            {(a) => <input {...a} value={f.name} onInput={(e) => setF({ ...f, name: e.currentTarget.value })} />}
          </Field>
          {f.kind !== 'oneclick' ? <VmChoices f={f} vms={data.vms} errors={errors} set={setF} /> : null}
          {f.kind === 'selective' ? <NetworkMapping f={f} vms={data.vms} targets={data.networks} errors={errors} set={setF} /> : null}
          {f.kind === 'inplace' ? (
            <div class="warning-box">
              <div class="field check">
                <input type="checkbox" id="confirm" checked={f.confirmInPlace} onChange={(e) => setF({ ...f, confirmInPlace: e.currentTarget.checked })} aria-describedby={errors.confirm ? 'confirm-error' : undefined} />
                <label for="confirm">I understand that the chosen disks of the existing VMs are overwritten with the snapshot and their current data is lost.</label>
              </div>
              {errors.confirm ? (
                <small id="confirm-error" class="field-error">
                  {errors.confirm}
                </small>
              ) : null}
            </div>
          ) : null}
          <ErrorBox error={action.error} />
          <div class="actions">
            <button type="submit" class={f.kind === 'inplace' ? 'danger' : ''} disabled={action.busy || data.snapshot.status !== 'available'}>
              {action.busy ? 'Starting…' : 'Start restore'}
            </button>
            <Link href={`/snapshots/${id}`}>Cancel</Link>
          </div>
        </form>
      ) : null}
    </Page>
  );
}
