/**
 * Runs s3rver for the tests in its own process: `node --openssl-legacy-provider s3rver.main.js
 * <dir> <bucket>`. s3rver 3.7.1 makes its ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 (Node 20) only offers through its legacy provider; without it every listing longer
 * than one page fails with a 500. The flag stays in this process, never in the tests' or the
 * service's. Prints one JSON line `{"port":N}` once listening; exits when stdin closes (the
 * test process died or closed it) or on SIGTERM.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

interface StoredObject {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: unknown;
}
interface FilesystemStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
}

/**
 * S3 replaces an object atomically: a GET sees the old bytes or the new ones, and a PUT whose
 * client dies mid-body leaves the old object. s3rver 3.7.1 writes into the object's own file
 * (truncated first), so a reader racing a rewrite read a torn object, and a writer killed
 * mid-PUT left one for good: in test/multiprocess.test.ts a SIGKILLed worker's lease stayed
 * unreadable and GC refused to sweep for the rest of the test. Here the body goes to a temp file
 * beside the object (not listed: s3rver lists only `._S3rver_object` names) and is renamed into
 * place once complete; an aborted body removes the temp file and fails the request.
 */
function atomicPuts(): void {
  const require = createRequire(import.meta.url);
  const store = require('s3rver/lib/stores/filesystem.js') as { prototype: FilesystemStore };
  let seq = 0;
  store.prototype.putObject = async function (this: FilesystemStore, object: StoredObject) {
    const final = this.getResourcePath(object.bucket, object.key, 'object');
    const tmp = `${final}.put-${seq++}`;
    const md5 = createHash('md5');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const source = Buffer.isBuffer(object.content) ? [object.content] : object.content;
    try {
      await mkdir(dirname(final), { recursive: true });
      await pipeline(source, count, createWriteStream(tmp));
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const digest = md5.digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
atomicPuts();

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write('usage: s3rver.main.js <dir> <bucket>\n');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] });
const addr = await server.run();
process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
const stop = () => void server.close().finally(() => process.exit(0));
process.stdin.on('end', stop).on('close', stop).resume();
process.on('SIGTERM', stop);
