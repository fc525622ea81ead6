import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { S3Backend, type S3BackendOptions } from './s3.backend.js';

/**
 * The S3 server the tests run against. Default: an s3rver (a real S3 HTTP server storing on
 * disk) on a free loopback port in a temp dir, in a child process (s3rver.main.ts says why),
 * started once per test file. With
 * `LIFEBOAT_TEST_S3=s3://<bucket>[/<prefix>]?endpoint=<url>[&region=<r>]` (the same syntax as
 * LIFEBOAT_TARGET) and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set, the tests use that server
 * instead (MinIO, Ceph RGW, AWS); the bucket must exist, and each test works under a fresh
 * random prefix below the given one, which it empties afterwards.
 */
export interface TestS3 {
  bucket: string;
  /** Prefix given by LIFEBOAT_TEST_S3 ('' for s3rver); tests add their own below it. */
  prefix: string;
  endpoint: string;
  region: string | null;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** s3rver's data directory (null for an external server): tests that damage files need it. */
  directory: string | null;
  /** s3rver's process id (null for an external server): the bench counts its CPU time. */
  pid: number | null;
  /** Stops the server (s3rver) and removes its directory. */
  close(): Promise<void>;
}

export const TEST_BUCKET = 'lifeboat-test';

/** `nodeArgs`: extra options for s3rver's node process (the bench's CPU profile). */
export async function startTestS3(nodeArgs: readonly string[] = []): Promise<TestS3> {
  const external = process.env.LIFEBOAT_TEST_S3;
  if (external) {
    const u = new URL(external);
    const t = { bucket: u.hostname, prefix: u.pathname.replace(/^\/+|\/+$/g, ''), endpoint: u.searchParams.get('endpoint'), region: u.searchParams.get('region') };
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
    if (!t.endpoint || !accessKeyId || !secretAccessKey) {
      throw new Error('LIFEBOAT_TEST_S3 needs ?endpoint= and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY');
    }
    const sessionToken = process.env.AWS_SESSION_TOKEN;
    const credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    return { bucket: t.bucket, prefix: t.prefix, endpoint: t.endpoint, region: t.region, credentials, directory: null, pid: null, close: async () => {} };
  }
  const directory = await mkdtemp(join(tmpdir(), 'lb-s3rver-'));
  const child = spawn(process.execPath, [...nodeArgs, '--openssl-legacy-provider', fileURLToPath(new URL('./s3rver.main.js', import.meta.url)), directory, TEST_BUCKET], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await readPort(child);
  return {
    bucket: TEST_BUCKET,
    prefix: '',
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    directory,
    pid: child.pid ?? null,
    close: async () => {
      if (child.exitCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Waits for the server's `{"port":N}` line (or its exit, which fails the start). */
async function readPort(child: ChildProcess): Promise<number> {
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`s3rver exited with ${String(code)} before listening`);
  });
  const first = (async () => {
    for await (const line of lines) return (JSON.parse(line) as { port: number }).port;
    throw new Error('s3rver closed its output before listening');
  })();
  try {
    return await Promise.race([first, exited]);
  } finally {
    exited.catch(() => {});
  }
}

/** A fresh prefix below the server's: each test sees an empty namespace. */
export function freshPrefix(s3: TestS3, tag = 't'): string {
  const own = `${tag}-${randomBytes(6).toString('hex')}`;
  return s3.prefix ? `${s3.prefix}/${own}` : own;
}

/**
 * An S3Backend on the test server under a fresh prefix (`extra` may point it elsewhere, e.g.
 * at a fault proxy); `cleanup` deletes what is under the prefix, talking to the server directly.
 */
export function testBackend(s3: TestS3, extra: Partial<S3BackendOptions> = {}): { backend: S3Backend; prefix: string; cleanup: () => Promise<void> } {
  const prefix = extra.prefix ?? freshPrefix(s3);
  const direct: S3BackendOptions = { bucket: s3.bucket, prefix, endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials };
  const backend = new S3Backend({ ...direct, ...extra });
  const cleanup = async () => {
    backend.destroy();
    const janitor = new S3Backend(direct);
    try {
      for await (const k of janitor.list('')) await janitor.delete(k);
    } finally {
      janitor.destroy();
    }
  };
  return { backend, prefix, cleanup };
}
