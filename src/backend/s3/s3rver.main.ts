/**
 * Runs s3rver for the tests in its own process: `node --openssl-legacy-provider s3rver.main.js
 * <dir> <bucket>`. s3rver 3.7.1 makes its ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 (Node 20) only offers through its legacy provider; without it every listing longer
 * than one page fails with a 500. The flag stays in this process, never in the tests' or the
 * service's. Prints one JSON line `{"port":N}` once listening; exits when stdin closes (the
 * test process died or closed it) or on SIGTERM.
 */
import S3rver from 's3rver';

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
