import { formatWireTime, toSecond } from '../lib/time.js';
import type { AuditEntry } from '../services/audit.service.js';
import type { ProjectUsage, ProtectedVm, StorageUsage } from '../services/usage.service.js';

/** Wire shapes of the admin views (workloadmgr-api §4.11). Sizes are bytes. */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** `1536` → `1.50 KB` (binary multiples, the vendor's unit names). */
export function humanBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${UNITS[u]}`;
}

/**
 * A directory target (local disk or an NFS mount) is `nfs` in the vendor's vocabulary; its
 * capacity is the file system's. An S3 target reports no capacity: `unknown` where the vendor
 * prints a humanized number, null where it prints bytes.
 */
function storageEntry(s: StorageUsage) {
  const cap = s.target.capacity;
  const stored = s.full.bytes + s.incremental.bytes;
  const used = cap ? cap.usedBytes : stored;
  return {
    storage_type: s.target.kind === 'file' ? 'nfs' : s.target.kind,
    'nfs_share(s)': [{ nfsshare: s.target.description, status: s.target.online ? 'Online' : 'Offline', capacity: cap?.totalBytes ?? null, utilization: used }],
    total: stored,
    full: s.full.bytes,
    incremental: s.incremental.bytes,
    total_capacity: cap?.totalBytes ?? null,
    total_utilization: used,
    total_capacity_humanized: cap ? humanBytes(cap.totalBytes) : 'unknown',
    total_utilization_humanized: humanBytes(used),
    available_capacity_humanized: cap ? humanBytes(Math.max(0, cap.totalBytes - cap.usedBytes)) : 'unknown',
    total_utilization_percent: cap && cap.totalBytes > 0 ? Math.round((cap.usedBytes / cap.totalBytes) * 10_000) / 100 : null,
  };
}

export function storageUsageView(targets: StorageUsage[]) {
  const count = (k: 'full' | 'incremental') => targets.reduce((a, t) => a + t[k].count, 0);
  return {
    storage_usage: targets.map(storageEntry),
    count_dict: { full: count('full'), incremental: count('incremental'), total: count('full') + count('incremental') },
  };
}

function projectTotals(p: ProjectUsage) {
  return { tenant_name: p.projectName, vms_protected: p.vmsProtected, total_vms: p.totalVms, used_capacity: p.usedBytes, passively_protected: p.passivelyProtected };
}

export function tenantsUsageView(projects: ProjectUsage[], totalCapacity: number | null) {
  const add = (f: (p: ProjectUsage) => number) => projects.reduce((a, p) => a + f(p), 0);
  return {
    global_usage: { total_capacity: totalCapacity, total_usage: add((p) => p.usedBytes), total_vms: add((p) => p.totalVms), vms_protected: add((p) => p.vmsProtected) },
    tenants_usage: Object.fromEntries(projects.map((p) => [p.projectId, projectTotals(p)])),
  };
}

export function chargebackView(projects: ProjectUsage[]) {
  return Object.fromEntries(
    projects.map((p) => [
      p.projectId,
      {
        ...projectTotals(p),
        no_of_workloads: p.workloads.length,
        workloads: Object.fromEntries(
          p.workloads.map((w) => [
            w.id,
            {
              name: w.name,
              size: w.bytes,
              protected_vms: Object.fromEntries(w.vms.map((v) => [v.id, { name: v.name }])),
              snapshots: Object.fromEntries(w.snapshots.map((s) => [s.id, { name: s.name, size: s.bytes, created_at: formatWireTime(toSecond(s.createdAt)) }])),
            },
          ]),
        ),
      },
    ]),
  );
}

export function protectedVmsView(vms: ProtectedVm[]) {
  return { protected_vms: vms.map((v) => ({ id: v.id, name: v.name, project_id: v.projectId, workload_id: v.workloadId })) };
}

/** `Details` says what was asked and how it ended: `DELETE /workloads/:id (workload:workload_delete) → 202`. */
export function auditLogView(entries: AuditEntry[]) {
  return {
    auditlog: entries.map((e) => ({
      Timestamp: formatWireTime(e.at),
      UserName: e.user_name,
      UserId: e.user_id,
      ObjectName: e.object_name ?? e.object_type,
      ObjectId: e.object_id,
      ObjectType: e.object_type,
      Details: `${e.method} ${e.route.replace(/^\/v1\/:tenant_id/, '')} (${e.action}) → ${e.status_code}`,
      ProjectName: e.project_name,
      ProjectId: e.project_id,
    })),
  };
}
