import { statSync } from 'node:fs';
import { errorMessage } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { loadIdentityFile, type IdentityDirectory } from './identity-file.js';

/**
 * The identity file, followed as it changes (the way the local inventory is): every
 * `current()` stats the file (a few microseconds) and re-reads it when dev/inode/size/mtime
 * changed, so in-place edits and replace-by-rename both take effect on the next request. A
 * removed user or role therefore loses access at once (EmbeddedIdentity re-checks every token
 * against `current()`).
 *
 * An invalid edit, an unreadable or a vanished file keeps the last good directory in force
 * and is logged once per change (failing closed would lock every user out, the admin too).
 * Users with plain-text passwords are named in a warning at every (re)load.
 */
export class IdentitySource {
  private dir: IdentityDirectory;
  /** Change key of the content last looked at (good or bad). */
  private key: string;

  constructor(
    readonly path: string,
    initial: IdentityDirectory,
    private readonly log: Logger = silentLogger,
  ) {
    this.dir = initial;
    this.key = this.statKey() ?? 'missing';
    this.warnPlainText(initial);
  }

  current(): IdentityDirectory {
    const key = this.statKey();
    if ((key ?? 'missing') === this.key) return this.dir;
    if (key === undefined) {
      this.key = 'missing';
      this.log.error({ file: this.path }, 'identity file is gone; keeping the last good identity');
      return this.dir;
    }
    this.key = key; // also for bad content: report it once, retry after the next change
    try {
      const next = loadIdentityFile(this.path);
      this.dir = next;
      this.log.info({ file: this.path, users: next.data.users.length, projects: next.data.projects.length }, 'identity file reloaded');
      this.warnPlainText(next);
    } catch (e) {
      this.log.error({ file: this.path, err: errorMessage(e) }, 'identity file is invalid; keeping the last good identity');
    }
    return this.dir;
  }

  private statKey(): string | undefined {
    try {
      const st = statSync(this.path, { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      return undefined;
    }
  }

  private warnPlainText(dir: IdentityDirectory): void {
    const plain = dir.plainTextUsers();
    if (plain.length > 0) {
      this.log.warn({ file: this.path, users: plain }, 'identity file holds plain-text passwords; replace them with hashes (lifeboat hash-password)');
    }
  }
}
