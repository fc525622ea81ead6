import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import { startHarness, type Harness } from './harness.js';

/** A raw GET (fetch would normalise `..` and decompress): status, headers, body bytes. */
function rawGet(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard static files at /dashboard', () => {
  let h: Harness;
  let scriptPath: string;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  test('index.html without a token, no-cache, CSP, names its hashed script and style', async () => {
    for (const p of ['/dashboard', '/dashboard/', '/dashboard/index.html']) {
      const r = await rawGet(h.url, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(r.headers['cache-control'], 'no-cache');
      assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
      const html = r.body.toString();
      const m = /<script type="module" crossorigin src="(\/dashboard\/assets\/index-[\w-]+\.js)"/.exec(html);
      assert.ok(m, html);
      scriptPath = m[1]!;
      assert.match(html, /href="\/dashboard\/assets\/index-[\w-]+\.css"/);
    }
  });

  test('assets: JavaScript content type, immutable cache, gzip when asked, identical bytes', async () => {
    const plain = await rawGet(h.url, scriptPath);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(plain.headers['content-encoding'], undefined);
    const gz = await rawGet(h.url, scriptPath, { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.ok(gz.body.length < plain.body.length / 2, `gzip ${gz.body.length} of ${plain.body.length}`);
    assert.deepEqual(gunzipSync(gz.body), plain.body);
    const head = await rawGet(h.url, scriptPath, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  test('budget: all the JavaScript shipped is at most 300 KB gzipped, as the server sends it', async (t) => {
    const dir = join(process.cwd(), 'dist', 'dashboard', 'assets');
    const scripts = readdirSync(dir).filter((f) => f.endsWith('.js'));
    assert.ok(scripts.length >= 2, `the chart is a separate chunk: ${scripts.join(', ')}`);
    let total = 0;
    let first = 0;
    for (const f of scripts) {
      const r = await rawGet(h.url, `/dashboard/assets/${f}`, { 'accept-encoding': 'gzip' });
      assert.equal(r.status, 200, f);
      assert.equal(r.headers['content-encoding'], 'gzip', f);
      total += r.body.length;
      if (`/dashboard/assets/${f}` === scriptPath) first = r.body.length;
    }
    t.diagnostic(`JavaScript gzipped: ${(total / 1024).toFixed(1)} KB in ${scripts.length} files (first page: ${(first / 1024).toFixed(1)} KB)`);
    assert.ok(first > 0, 'the entry script is among the assets');
    assert.ok(total <= 300 * 1024, `${total} bytes gzipped`);
  });

  test('page paths fall back to index.html; a missing asset is a 404 fault', async () => {
    const page = await rawGet(h.url, '/dashboard/workloads/0b5a3c64-7f3e-4a5e-9d2c-1f0e9a8b7c6d');
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<div id="app">/);
    const missing = await rawGet(h.url, '/dashboard/assets/nope.js');
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(missing.body.toString()), { itemNotFound: { code: 404, message: 'The resource could not be found.' } });
  });

  test('no directory traversal: dot segments and encoded slashes never reach the file system', async () => {
    for (const p of ['/dashboard/../package.json', '/dashboard/%2e%2e/%2e%2e/package.json', '/dashboard/assets/..%2f..%2fsrc%2fmain.js', '/dashboard/..%5c..%5cpackage.json', '/dashboard//etc/passwd']) {
      const r = await rawGet(h.url, p);
      const body = r.body.toString();
      assert.ok(r.status === 200 || r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.doesNotMatch(body, /"name": "lifeboat"|root:x:0|startLifeboat/, p);
      if (r.status === 200) assert.match(body, /<div id="app">/, p);
    }
  });
});
