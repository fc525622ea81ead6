import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { compare as bcryptCompare } from 'bcryptjs';

/**
 * Password forms accepted in the identity file:
 *
 *  * scrypt: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>` with salt and key in base64
 *    (no padding), ln 10..20, r 1..32, p 1..16, salt ≥ 8 bytes, key 16..64 bytes. Written by
 *    `hashPassword` (ln=15, r=8, p=1, 16-byte salt, 32-byte key) and `lifeboat hash-password`.
 *  * bcrypt: `$2a$`, `$2b$` or `$2y$` + 2-digit cost (4..31) + 53 characters, as `htpasswd -B`
 *    or any bcrypt library writes them (checked with bcryptjs).
 *  * anything else is a plain-text password (accepted for the demo; the loader warns).
 *
 * A value that starts like a hash (`$scrypt$`, `$2a$`/`$2b$`/`$2y$`) but is malformed is an
 * error in the file, never silently taken as plain text.
 */
export type PasswordKind = 'plain' | 'scrypt' | 'bcrypt';

const BCRYPT_RE = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
const SCRYPT_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

interface ScryptParams {
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseScrypt(stored: string): ScryptParams | undefined {
  const m = SCRYPT_RE.exec(stored);
  if (!m) return undefined;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  if (ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16 || salt.length < 8 || key.length < 16 || key.length > 64) return undefined;
  return { ln, r, p, salt, key };
}

/** The kind of a stored password, or an error text when it looks like a hash but is not one. */
export function passwordKind(stored: string): PasswordKind | { error: string } {
  if (stored.startsWith('$scrypt$')) return parseScrypt(stored) ? 'scrypt' : { error: 'looks like an scrypt hash but is malformed (expected $scrypt$ln=..,r=..,p=..$<salt>$<key>)' };
  if (/^\$2[aby]\$/.test(stored)) return BCRYPT_RE.test(stored) ? 'bcrypt' : { error: 'looks like a bcrypt hash but is malformed' };
  return 'plain';
}

function scryptAsync(password: string, p: ScryptParams): Promise<Buffer> {
  const N = 2 ** p.ln;
  return new Promise((resolve, reject) =>
    scrypt(password, p.salt, p.key.length, { N, r: p.r, p: p.p, maxmem: 256 * N * p.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Checks `password` against a stored value of any accepted form, in constant time per form. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const kind = passwordKind(stored);
  if (kind === 'bcrypt') return bcryptCompare(password, stored);
  if (kind === 'scrypt') {
    const p = parseScrypt(stored)!;
    return timingSafeEqual(await scryptAsync(password, p), p.key);
  }
  // Plain text (and, defensively, a malformed hash the parser would have refused): both
  // sides hashed first, so neither content nor length leaks through timing.
  return timingSafeEqual(digest(stored), digest(password)) && kind === 'plain';
}

const HASH_PARAMS = { ln: 15, r: 8, p: 1 } as const;

function formatScrypt(salt: Buffer, key: Buffer): string {
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${HASH_PARAMS.ln},r=${HASH_PARAMS.r},p=${HASH_PARAMS.p}$${b64(salt)}$${b64(key)}`;
}

/** An scrypt hash of `password` in the form above (ln=15, r=8, p=1, 16-byte salt, 32-byte key). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  return formatScrypt(salt, await scryptAsync(password, { ...HASH_PARAMS, salt, key: Buffer.alloc(32) }));
}

/** hashPassword for start-up code that is synchronous (creating the first identity file). */
export function hashPasswordSync(password: string): string {
  const salt = randomBytes(16);
  const N = 2 ** HASH_PARAMS.ln;
  return formatScrypt(salt, scryptSync(password, salt, 32, { N, r: HASH_PARAMS.r, p: HASH_PARAMS.p, maxmem: 256 * N * HASH_PARAMS.r + 1024 * 1024 }));
}
