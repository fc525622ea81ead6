import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MissingObjectError } from '../lib/errors.js';
import { listAll, type Backend } from './backend.js';

/** Registers one test case on a fresh backend (`withBackend` of backendConformance). */
type WithBackend = (title: string, fn: (b: Backend) => Promise<void>) => void;

/**
 * The one behaviour suite every Backend must pass. Each implementation's *.test.ts calls this
 * with a factory that returns a fresh, empty backend (and an optional cleanup).
 */
export function backendConformance(
  name: string,
  factory: () => Promise<{ backend: Backend; cleanup?: () => Promise<void> }>,
): void {
  const withBackend: WithBackend = (title, fn) =>
    test(`${name}: ${title}`, async () => {
      const { backend, cleanup } = await factory();
      try {
        await fn(backend);
      } finally {
        await cleanup?.();
      }
    });

  readWriteCases(withBackend);
  listingCases(withBackend);
  deleteKeyAndConcurrencyCases(withBackend);
  optionalMethodCases(withBackend);
}

/** put, get, getRange and stat: bytes in, the same bytes out; missing keys. */
function readWriteCases(withBackend: WithBackend): void {
  withBackend('put then get returns the same bytes; parts are concatenated', async (b) => {
    await b.put('a/b/one', Buffer.from('hello'));
    assert.deepEqual(await b.get('a/b/one'), Buffer.from('hello'));
    await b.put('a/two', [Buffer.from('ab'), new Uint8Array(0), Buffer.from('cde')]);
    assert.equal((await b.get('a/two')).toString(), 'abcde');
    await b.put('empty', new Uint8Array(0));
    assert.equal((await b.get('empty')).length, 0);
  });

  withBackend('put copies the caller buffer and replaces an existing object whole', async (b) => {
    const buf = Buffer.from('xxxxxxxx');
    await b.put('k', buf);
    buf.fill(0x41);
    assert.equal((await b.get('k')).toString(), 'xxxxxxxx');
    await b.put('k', Buffer.from('yy'));
    assert.equal((await b.get('k')).toString(), 'yy');
  });

  withBackend('get and getRange of a missing key throw MissingObjectError (a NotFoundError); stat gives null', async (b) => {
    // An engine fault when it reaches a client (500), never a 404 about the client's id.
    const missing = (e: unknown) => e instanceof MissingObjectError && e.kind === 'missing-object' && /nope\/x/.test(e.message);
    await assert.rejects(b.get('nope/x'), missing);
    await assert.rejects(b.getRange('nope/x', 0, 1), missing);
    assert.equal(await b.stat('nope/x'), null);
  });

  withBackend('getRange returns exactly the range and rejects reads past the end', async (b) => {
    const data = Buffer.from([...Array(1000).keys()].map((i) => i & 255));
    await b.put('r', data);
    assert.deepEqual(await b.getRange('r', 10, 20), data.subarray(10, 30));
    assert.deepEqual(await b.getRange('r', 990, 10), data.subarray(990));
    assert.equal((await b.getRange('r', 5, 0)).length, 0);
    await assert.rejects(b.getRange('r', 995, 10));
    assert.equal(await b.stat('r'), 1000);
  });
}

/** list and listSizes. */
function listingCases(withBackend: WithBackend): void {
  withBackend('list yields every key under a prefix, recursively, and nothing else', async (b) => {
    await b.put('p/x/1', Buffer.from('1'));
    await b.put('p/x/2', Buffer.from('2'));
    await b.put('p/y', Buffer.from('3'));
    await b.put('q/z', Buffer.from('4'));
    await b.put('pp', Buffer.from('5'));
    assert.deepEqual((await listAll(b, 'p/')).sort(), ['p/x/1', 'p/x/2', 'p/y']);
    assert.deepEqual((await listAll(b, 'p/x/')).sort(), ['p/x/1', 'p/x/2']);
    assert.deepEqual((await listAll(b, '')).sort(), ['p/x/1', 'p/x/2', 'p/y', 'pp', 'q/z']);
    assert.deepEqual(await listAll(b, 'none/'), []);
  });

  withBackend('listSizes, where offered, lists what list lists, each with the size stat gives', async (b) => {
    if (!b.listSizes) return; // optional: callers stat instead
    await b.put('s/a', Buffer.alloc(1234, 1));
    await b.put('s/b/c', Buffer.alloc(0));
    await b.put('s/b/d', [Buffer.alloc(70_000, 2), Buffer.alloc(5, 3)]);
    await b.put('t', Buffer.from('x'));
    const listed = [];
    for await (const o of b.listSizes('s/')) listed.push(o);
    listed.sort((x, y) => x.key.localeCompare(y.key));
    assert.deepEqual(listed, [
      { key: 's/a', size: 1234 },
      { key: 's/b/c', size: 0 },
      { key: 's/b/d', size: 70_005 },
    ]);
    for (const o of listed) assert.equal(await b.stat(o.key), o.size);
    assert.deepEqual(listed.map((o) => o.key), (await listAll(b, 's/')).sort());
  });
}

/** delete, the keys refused, concurrent puts. */
function deleteKeyAndConcurrencyCases(withBackend: WithBackend): void {
  withBackend('delete removes the object and is idempotent', async (b) => {
    await b.put('d/1', Buffer.from('1'));
    await b.delete('d/1');
    await b.delete('d/1');
    await b.delete('d/never');
    assert.equal(await b.stat('d/1'), null);
    assert.deepEqual(await listAll(b, 'd/'), []);
  });

  withBackend('keys with traversal or user text are refused', async (b) => {
    for (const k of ['../x', 'a/../b', '/abs', 'a//b', '', 'a/.hidden', 'sp ace', 'a\\b']) {
      await assert.rejects(b.put(k, Buffer.from('x')), TypeError, k);
    }
    await assert.rejects(async () => {
      for await (const _ of b.list('no-slash')) void _;
    }, TypeError);
  });

  withBackend('concurrent puts of different keys all land', async (b) => {
    await Promise.all([...Array(20).keys()].map((i) => b.put(`c/${i}`, Buffer.alloc(1000 + i, i))));
    const keys = await listAll(b, 'c/');
    assert.equal(keys.length, 20);
    assert.equal(await b.stat('c/19'), 1019);
  });
}

/** The methods a backend may leave out: openWriter and getRangeInto. */
function optionalMethodCases(withBackend: WithBackend): void {
  withBackend('openWriter (when offered): invisible until commit, abort leaves nothing, parts may be reused', async (b) => {
    if (!b.openWriter) return;
    const w = await b.openWriter('s/one');
    const part = Buffer.from('abc');
    await w.write([part, Buffer.alloc(0)]);
    part.fill(0x7a); // reused by the caller after write resolved
    await w.write([Buffer.from('de')]);
    assert.equal(await b.stat('s/one'), null);
    assert.deepEqual(await listAll(b, 's/'), []);
    await w.commit();
    assert.equal((await b.get('s/one')).toString(), 'abcde');
    await w.abort(); // no-op after commit
    assert.equal((await b.get('s/one')).toString(), 'abcde');
    const w2 = await b.openWriter('s/two');
    await w2.write([Buffer.from('x')]);
    await w2.abort();
    await w2.abort();
    await assert.rejects(w2.write([Buffer.from('y')]));
    assert.deepEqual(await listAll(b, 's/'), ['s/one']);
  });

  withBackend('getRangeInto (when offered) fills the buffer or throws like getRange', async (b) => {
    if (!b.getRangeInto) return;
    await b.put('r/x', Buffer.from('0123456789'));
    const dst = Buffer.alloc(6, 0x2e);
    await b.getRangeInto('r/x', 2, 4, dst);
    assert.equal(dst.toString(), '2345..');
    await assert.rejects(b.getRangeInto('r/x', 8, 4, dst), /shorter/);
    await assert.rejects(b.getRangeInto('r/none', 0, 1, dst), MissingObjectError);
  });
}
