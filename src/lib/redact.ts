/**
 * What a tenant may read of server-side messages (faults, error_msg/progress_msg/warning_msg
 * fields, notification e-mails).
 *
 * Absolute file paths (`/var/lib/...`, `file:///...`) in a message are replaced by `[path]`:
 * a fault never tells a tenant where the server keeps its files. Only a run of at least two
 * path segments counts, so `MM/DD/YYYY` or `a/b` stay readable; guest device names
 * (`/dev/vda`) are the tenant's own vocabulary and stay too.
 */
export function redactPaths(message: string): string {
  return message.replace(/(^|[\s'"(=:,])(\/{1,3}[^\s'"/,)]+(?:\/[^\s'"/,)]*)+)/g, (all, pre: string, path: string) =>
    /^\/dev\/[A-Za-z0-9]+$/.test(path) ? all : `${pre}[path]`,
  );
}

/** redactPaths for nullable message fields. */
export function redactPathsOrNull(message: string | null | undefined): string | null {
  return message === null || message === undefined ? null : redactPaths(message);
}
