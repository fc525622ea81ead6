/**
 * Where the time of one libvirt snapshot went, end to end through the service (issue 11,
 * "instrument where the time goes"): from the service's info log — the snapshot job's step
 * marks ('snapshot available': claimed, opened, copied, manifest, ended, available; clock ms)
 * and the libvirt session's timings ('libvirt backup timings': every virsh call, the NBD
 * block-status time and read span) — and the bench's own clock (POST sent, response, status
 * seen by polling).
 */
import { readFileSync } from 'node:fs';
import type { BackupTimings as Timings } from '../src/platform/libvirt/stats.js';

export interface ClientTimes {
  /** Date.now() when the POST was sent, when its response arrived, when the poll saw `available`. */
  posted: number;
  answered: number;
  seen: number;
}

interface Marks {
  claimed: number;
  opened?: number;
  copied?: number;
  manifest?: number;
  ended?: number;
  available?: number;
}

/** The JSON log lines of the service (pino), newest last; lines that are not JSON are skipped. */
function logLines(logPath: string): Record<string, unknown>[] {
  return readFileSync(logPath, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

/** One line: the steps in ms, then the libvirt detail; null when the log lacks the lines. */
export function libvirtBreakdown(logPath: string, snapshotId: string, c: ClientTimes): string | null {
  const lines = logLines(logPath);
  const at = lines.findIndex((l) => l.msg === 'snapshot available' && l.snapshotId === snapshotId);
  if (at < 0) return null;
  const m = lines[at]!.marks as Marks | undefined;
  const t = lines
    .slice(0, at)
    .reverse()
    .find((l) => l.msg === 'libvirt backup timings')?.timings as Timings | undefined;
  if (!m || !t) return null;
  const d = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '?' : `${Math.round(b - a)}`);
  const calls = Object.entries(t.virsh)
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([op, v]) => `${op}${v.n > 1 ? `×${v.n}` : ''} ${v.ms}`)
    .join(', ');
  const n = Object.values(t.virsh).reduce((a, v) => a + v.n, 0);
  return [
    `POST ${d(c.posted, c.answered)} → claim ${d(c.posted, m.claimed)} → open ${d(m.claimed, m.opened)} (libvirt begin ${t.beginMs})`,
    `→ copy ${d(m.opened, m.copied)} (block status ${t.blockStatusMs}, ${t.reads} reads over ${t.readSpanMs}) → manifest ${d(m.copied, m.manifest)}`,
    `→ end ${d(m.manifest, m.ended)} (libvirt end ${t.endMs}) → db ${d(m.ended, m.available)} → seen ${d(m.available, c.seen)} ms`,
    `| ${n} virsh calls: ${calls} ms`,
  ].join(' ');
}
