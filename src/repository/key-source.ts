import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { EncryptionKeyError } from '../lib/errors.js';
import { KEY_BYTES, keyFingerprint } from './crypto.js';

/**
 * Where key-encryption keys (KEKs) come from: the pluggable half of envelope encryption
 * (README.md "Encrypted workloads"). A source hands out the 32-byte KEK that wraps every
 * encrypted workload's data key; the wrapped data keys live on the backup target
 * (data-keys.ts), the KEK never does.
 */
export interface Kek {
  /** Public fingerprint (crypto.ts keyFingerprint), recorded beside each wrapped data key. */
  id: string;
  key: Buffer;
}

export interface KeySource {
  /** Recorded with each wrapped data key: 'file' or 'barbican'. */
  readonly kind: string;
  /** The key manager's reference of the KEK, recorded with each wrapped data key (Barbican: the secret's UUID); absent for the key file. */
  readonly ref?: string;
  /** How messages name the KEK ("the key file (LIFEBOAT_ENCRYPTION_KEY_FILE)", "Barbican secret <uuid>"). */
  readonly label: string;
  /**
   * The KEK. `create`: a new data key is about to be wrapped, so a source that makes its key on
   * first use may make it now; otherwise a missing key is an EncryptionKeyError.
   */
  kek(opts: { create: boolean }): Promise<Kek>;
}

/**
 * The default source: a key file under LIFEBOAT_HOME (LIFEBOAT_ENCRYPTION_KEY_FILE), 32 random bytes as
 * base64, created 0600 the first time an encrypted workload is snapshotted (default path only). Losing it loses
 * every encrypted backup (README: back it up, apart from the target).
 */
export class FileKeySource implements KeySource {
  readonly kind = 'file';
  readonly label = 'the key file (LIFEBOAT_ENCRYPTION_KEY_FILE)';
  private cached: Kek | null = null;

  /** `mayCreate`: false when the operator named the file (it must exist: every node needs the same key). */
  constructor(
    readonly path: string,
    private readonly mayCreate = true,
  ) {}

  async kek(opts: { create: boolean }): Promise<Kek> {
    if (this.cached) return this.cached;
    let text: string | null = this.read();
    if (text === null) {
      if (!opts.create || !this.mayCreate) throw new EncryptionKeyError('the key-encryption key file (LIFEBOAT_ENCRYPTION_KEY_FILE) is missing on this node');
      text = this.create();
    }
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== KEY_BYTES || key.toString('base64') !== text.trim()) {
      throw new EncryptionKeyError('the key-encryption key file (LIFEBOAT_ENCRYPTION_KEY_FILE) is not a Lifeboat key (32 bytes, base64)');
    }
    this.cached = { id: keyFingerprint(key), key };
    return this.cached;
  }

  /** The file's mode when group or others may read it (the start-up warning); null otherwise or when absent. */
  looseMode(): number | null {
    try {
      const mode = statSync(this.path).mode & 0o777;
      return mode & 0o077 ? mode : null;
    } catch {
      return null;
    }
  }

  private read(): string | null {
    try {
      return readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new EncryptionKeyError(`the key-encryption key file (LIFEBOAT_ENCRYPTION_KEY_FILE) cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }

  /** Creates the file exclusively (0600, fsync); when another process won the race, reads theirs. */
  private create(): string {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const text = `${randomBytes(KEY_BYTES).toString('base64')}\n`;
    let fd: number;
    try {
      fd = openSync(this.path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return this.read() ?? text;
      throw e;
    }
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return text;
  }
}

/**
 * Reads the 32-byte key a key-manager secret holds (OpenStack: a Barbican secret's payload, read
 * with Lifeboat's service identity; platform/openstack/key-manager.ts). Throws an error whose
 * message names the secret when it is missing, not readable by Lifeboat, or not a 256-bit key.
 */
export type SecretKeyReader = (secretUuid: string) => Promise<Buffer>;

/**
 * A KEK kept in Barbican: the payload of the secret a workload named at create (`secret_uuid`).
 * Read on every unlock, never cached here (DataKeys keeps the unwrapped data key, and re-opens
 * it at each snapshot and restore), so deleting the secret or revoking Lifeboat's read access in
 * Barbican stops the next snapshot or restore of the workload.
 */
export class BarbicanKeySource implements KeySource {
  readonly kind = 'barbican';
  readonly label: string;

  constructor(
    readonly ref: string,
    private readonly read: SecretKeyReader,
  ) {
    this.label = `Barbican secret ${ref}`;
  }

  async kek(): Promise<Kek> {
    let key: Buffer;
    try {
      key = await this.read(this.ref);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new EncryptionKeyError(why.includes(this.ref) ? why : `${this.label}: ${why}`);
    }
    if (key.length !== KEY_BYTES) throw new EncryptionKeyError(`${this.label} is not a 256-bit key (${key.length} bytes)`);
    return { id: keyFingerprint(key), key };
  }
}

/** What a stored data key record says about its KEK (data-keys.ts DataKeyRecord.kek). */
export interface KekRef {
  source: string;
  ref?: string;
}

/**
 * The one place that chooses a KEK source. New data keys: a Barbican secret when the workload
 * named one (`secret_uuid`) and this node reads Barbican (the OpenStack platform), else the key
 * file. Stored data keys: the source their record names, so a workload keeps its source for
 * life, whatever the default becomes.
 */
export class KeySources {
  constructor(
    /** The default source (the key file); null: none configured. */
    readonly file: KeySource | null,
    /** Barbican secrets; null when the platform is not OpenStack. */
    private readonly secrets: SecretKeyReader | null = null,
  ) {}

  forNew(secretUuid: string | null | undefined): KeySource | null {
    if (secretUuid && this.secrets) return new BarbicanKeySource(secretUuid, this.secrets);
    return this.file;
  }

  /** The source a record names; EncryptionKeyError message (without the workload) when this node has none. */
  forRecord(kek: KekRef): KeySource {
    if (kek.source === 'barbican') {
      if (!kek.ref) throw new EncryptionKeyError('its wrapped data key names Barbican but no secret');
      if (!this.secrets) throw new EncryptionKeyError(`its key-encryption key is Barbican secret ${kek.ref} and this node does not read Barbican (LIFEBOAT_PLATFORM=openstack)`);
      return new BarbicanKeySource(kek.ref, this.secrets);
    }
    if (kek.source !== 'file') throw new EncryptionKeyError(`its key-encryption key comes from a source this Lifeboat does not know (${JSON.stringify(kek.source).slice(0, 40)})`);
    if (!this.file) throw new EncryptionKeyError('no key-encryption key source is configured on this node');
    return this.file;
  }
}
