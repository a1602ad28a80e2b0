// Differential test of the write validator: each payload is sent straight to PocketBase and through the
// write routes; rejected ones must get PocketBase's exact answer at the cost of zero upstream requests,
// accepted ones must reach PocketBase and succeed there too.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';
import { createTestCollections, normalize, send, signIn, writeApp, type Answer, type WriteApp } from './writes-harness.js';

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f8a1b60000000049454e44ae426082', 'hex');

describe('write validation matches PocketBase', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let app: WriteApp;
  let su: string;
  let seeded: Seeded;
  let me: { key: string; pbToken: string; id: string };

  before(async () => {
    pb = await startPocketBase();
    su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 3, posts: 3, comments: 1, likes: 1, follows: 1 }, 3);
    await createTestCollections(pb.url, su);
    sidecar = await startSidecar(pb);
    await waitForSync(sidecar);
    app = writeApp(sidecar);
    me = await signIn(sidecar.url, pb.url, 'users', seeded.users[0].email, USER_PASSWORD);
  });
  after(async () => {
        await sidecar?.destroy();
    await pb?.destroy();
  });

  /** Sends one write both ways; returns [direct, through the write routes, upstream requests it cost]. */
  async function both(method: string, direct: string, via: string, body?: unknown, form?: () => FormData, token: 'user' | 'anon' = 'user'): Promise<[Answer, Answer, number]> {
    const d = await send(pb.url, method, direct, token === 'user' ? me.pbToken : null, body, form?.());
    const before = await app.upstreamCount();
    const v = await send(app.url, method, via, token === 'user' ? me.key : null, body, form?.());
    return [d, v, (await app.upstreamCount()) - before];
  }

  function expectSame(label: string, d: Answer, v: Answer, cost: number): void {
    assert.equal(v.status, d.status, `${label}: status ${v.status} vs PocketBase ${d.status}: ${v.text} / ${d.text}`);
    if (d.status >= 400) {
      assert.deepEqual(normalize(v.body), normalize(d.body), `${label}: body differs`);
      if (v.status === 400 && cost === 0) return;
      // forwarded: PocketBase itself answered (a check left to it)
      assert.ok(cost >= 1, `${label}: no upstream request yet not rejected locally`);
    }
  }

  const every = '/api/collections/every/records';
  const users = () => seeded.users.map((u) => u.id);

  // [label, body, expect rejected locally (zero upstream)]
  const createCases: Array<[string, () => Record<string, unknown> | string, boolean]> = [
    ['valid minimal', () => ({ req: 'x' }), false],
    ['required missing', () => ({}), true],
    ['required empty', () => ({ req: '' }), true],
    ['text min', () => ({ req: 'x', title: 'ab' }), true],
    ['text max', () => ({ req: 'x', title: 'abcdefghijk' }), true],
    ['text max in code points', () => ({ req: 'x', title: 'é'.repeat(11) }), true],
    ['pattern on non-ASCII left to PocketBase', () => ({ req: 'x', title: 'ééééé' }), false],
    ['text pattern', () => ({ req: 'x', title: 'ABC' }), true],
    ['text from number', () => ({ req: 12345 }), false],
    ['text pattern from number', () => ({ req: 'x', title: 12345 }), true],
    ['text valid', () => ({ req: 'x', title: 'abc def' }), false],
    ['email format', () => ({ req: 'x', mail: 'nope' }), true],
    ['email no dot', () => ({ req: 'x', mail: 'a@b' }), true],
    ['email only domains', () => ({ req: 'x', mail: 'a@other.test' }), true],
    ['email allowed', () => ({ req: 'x', mail: 'a@ok.test' }), false],
    ['email except domains', () => ({ req: 'x', mail2: 'a@bad.test' }), true],
    ['url short', () => ({ req: 'x', site: 'abc' }), true],
    ['url no host', () => ({ req: 'x', site: 'not a url' }), true],
    ['url valid', () => ({ req: 'x', site: 'https://example.com/a?b=c' }), false],
    ['url only domains', () => ({ req: 'x', site2: 'https://other.com' }), true],
    ['number min', () => ({ req: 'x', n: 0.5 }), true],
    ['number max', () => ({ req: 'x', n: 11 }), true],
    ['number from string', () => ({ req: 'x', n: '5' }), false],
    ['number from bad string', () => ({ req: 'x', n: 'abc' }), false],
    ['number onlyInt', () => ({ req: 'x', i: 1.5 }), true],
    ['number negative min', () => ({ req: 'x', i: -6 }), true],
    ['number max message big', () => ({ req: 'x', i: 1000001 }), true],
    ['bool from string', () => ({ req: 'x', flag: 'true' }), false],
    ['bool from odd string', () => ({ req: 'x', flag: 'yes' }), false],
    ['date min', () => ({ req: 'x', day: '2019-01-01' }), true],
    ['date max', () => ({ req: 'x', day: '2031-01-01 00:00:00.000Z' }), true],
    ['date valid', () => ({ req: 'x', day: '2025-03-04T10:00:00Z' }), false],
    ['date garbage', () => ({ req: 'x', day: 'garbage' }), false],
    ['select invalid', () => ({ req: 'x', one: 'd' }), true],
    ['select single takes last', () => ({ req: 'x', one: ['d', 'a'] }), false],
    ['select single last invalid', () => ({ req: 'x', one: ['a', 'd'] }), true],
    ['select multi too many', () => ({ req: 'x', many: ['x', 'y', 'z'] }), true],
    ['select multi invalid', () => ({ req: 'x', many: 'q' }), true],
    ['select multi duplicates', () => ({ req: 'x', many: ['x', 'x', 'y'] }), false],
    ['select append modifier too many', () => ({ req: 'x', 'many+': ['x', 'y', 'z'] }), true],
    ['relation too many', () => ({ req: 'x', rels: users() }), true],
    ['relation missing record', () => ({ req: 'x', rel: 'aaaaaaaaaaaaaaa' }), false],
    ['relation valid', () => ({ req: 'x', rel: users()[0], rels: users().slice(0, 2) }), false],
    ['json size', () => ({ req: 'x', data: { big: 'x'.repeat(200) } }), true],
    ['json html escaped size', () => ({ req: 'x', data: '<'.repeat(30) }), false],
    ['json string stored quoted', () => ({ req: 'x', data: 'not json' }), false],
    ['geo longitude', () => ({ req: 'x', where: { lon: 200, lat: 0 } }), true],
    ['geo latitude', () => ({ req: 'x', where: { lon: 0, lat: 100 } }), true],
    ['editor size', () => ({ req: 'x', html: 'x'.repeat(60) }), true],
    ['autodate ignored', () => ({ req: 'x', created: '2020-01-01 00:00:00.000Z' }), false],
    ['many errors at once', () => ({ title: 'A', n: 20, one: 'z' }), true],
    ['number append on create', () => ({ req: 'x', 'n+': 5 }), false],
    ['prototype keys', () => '{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}},"req":"x"}', false],
    ['prototype keys invalid', () => '{"__proto__":{"polluted":1},"req":""}', true],
    ['file names as strings', () => ({ req: 'x', doc: 'made_up.txt' }), true],
  ];

  test('every field type and option: creates', async () => {
    for (const [label, make, local] of createCases) {
      const body = make();
      const [d, v, cost] = await both('POST', every, every, body);
      expectSame(label, d, v, cost);
      if (local) assert.equal(cost, 0, `${label}: expected a local rejection, cost ${cost} (${d.text})`);
    }
    assert.equal(({} as any).polluted, undefined);
  });

  test('updates: present fields only, modifiers on the current value, required fields not emptied', async () => {
    const base = { req: 'x', n: 5, many: ['x'], pics: [] };
    const a = await send(pb.url, 'POST', every, su, base);
    const b = await send(pb.url, 'POST', every, su, base);
    await sidecar.replicator.syncAfterNow();
    const cases: Array<[string, Record<string, unknown>, boolean]> = [
      ['valid partial', { title: 'ok' }, false],
      ['required emptied', { req: '' }, true],
      ['number modifier over max', { 'n+': 10 }, true],
      ['number modifier under min', { 'n-': 4.5 }, true],
      ['select append too many', { 'many+': ['y', 'z'] }, true],
      ['select prepend invalid', { '+many': 'q' }, true],
      ['select subtract', { 'many-': 'x' }, false],
      ['number modifier ok', { 'n+': 1 }, false],
    ];
    for (const [label, body, local] of cases) {
      const [d, v, cost] = await both('PATCH', `${every}/${a.body.id}`, `${every}/${b.body.id}`, body);
      if (d.status === 200) d.body = v.body; // different records
      expectSame(label, d, v, cost);
      if (local) assert.equal(cost, 0, `${label}: expected a local rejection`);
    }
  });

  test('reference schema: posts as their author, hidden fields dropped not rejected', async () => {
    const posts = '/api/collections/posts/records';
    const cases: Array<[string, Record<string, unknown>, boolean]> = [
      ['title required', { title: '', author: me.id }, true],
      ['title max', { title: 'x'.repeat(201), author: me.id }, true],
      ['likes min', { title: 't', author: me.id, likes: -1 }, true],
      ['likes onlyInt', { title: 't', author: me.id, likes: 1.5 }, true],
      ['tags invalid and too many', { title: 't', author: me.id, tags: ['news', 'tech', 'fun', 'misc'] }, true],
      ['tags invalid value', { title: 't', author: me.id, tags: ['bad'] }, true],
      ['meta size', { title: 't', author: me.id, meta: { x: 'y'.repeat(3000) } }, true],
      ['hidden field dropped', { title: 't', author: me.id, secret: 'x'.repeat(10000) }, false],
      ['valid post', { title: 'hello', author: me.id, tags: ['news'], published: true }, false],
    ];
    for (const [label, body, local] of cases) {
      const [d, v, cost] = await both('POST', posts, posts, body);
      expectSame(label, d, v, cost);
      if (local) assert.equal(cost, 0, `${label}: expected a local rejection`);
    }
  });

  test('auth collection: password min, max, pattern, confirmation', async () => {
    const members = '/api/collections/members/records';
    let n = 0;
    const mk = (p: string, c: string = p) => ({ email: `m${n++}-${Date.now()}@example.com`, password: p, passwordConfirm: c });
    const cases: Array<[string, () => Record<string, unknown>, boolean]> = [
      ['password missing', () => ({ email: 'z@example.com' }), true],
      ['confirm mismatch', () => mk('abcdefghijk', 'abcdefghijx'), true],
      ['password min', () => mk('abc'), true],
      ['password max', () => mk('a'.repeat(25)), true],
      ['password pattern', () => mk('ABCDEFGHIJK'), true],
      ['nick max', () => ({ ...mk('abcdefghijk'), nick: 'toolong' }), true],
      ['valid member', () => mk('abcdefghijk'), false],
    ];
    for (const [label, make, local] of cases) {
      const body = make();
      const d = await send(pb.url, 'POST', members, null, body);
      const before = await app.upstreamCount();
      const v = await send(app.url, 'POST', members, null, { ...body, email: String(body.email ?? '').replace('@', '-2@') || undefined });
      const cost = (await app.upstreamCount()) - before;
      expectSame(label, d, v, cost);
      if (local) assert.equal(cost, 0, `${label}: expected a local rejection`);
    }
  });

  test('uploads: type from the bytes, size, count', async () => {
    const form = (parts: Array<[string, Buffer | string, string, string]>, extra: Record<string, string> = { req: 'x' }) => () => {
      const f = new FormData();
      for (const [k, v] of Object.entries(extra)) f.append(k, v);
      for (const [field, content, name, type] of parts) f.append(field, new Blob([typeof content === 'string' ? content : new Uint8Array(content)], { type }), name);
      return f;
    };
    const cases: Array<[string, () => FormData, boolean]> = [
      ['png renamed .txt on a text/plain field', form([['doc', PNG, 'picture.txt', 'text/plain']]), true],
      ['text claiming image/png on an image field', form([['pics', 'hello world, plain text', 'photo.png', 'image/png']]), true],
      ['oversized', form([['doc', 'a'.repeat(3000), 'notes.txt', 'text/plain']]), true],
      ['too many files', form([['pics', PNG, 'one.png', 'image/png'], ['pics', PNG, 'two.png', 'image/png'], ['pics', PNG, 'three.png', 'image/png']]), true],
      ['valid text', form([['doc', 'plain text here', 'notes.txt', 'text/plain']]), false],
      ['valid png', form([['pics', PNG, 'one.png', 'image/png']]), false],
      ['required field missing in multipart', form([['pics', PNG, 'one.png', 'image/png']], {}), true],
      ['multipart inferred number', form([], { req: 'x', n: '50' }), true],
    ];
    for (const [label, f, local] of cases) {
      const [d, v, cost] = await both('POST', every, every, undefined, f);
      expectSame(label, d, v, cost);
      if (local) assert.equal(cost, 0, `${label}: expected a local rejection`);
    }
    // the stored file is readable and is the same bytes
    const ok = await send(app.url, 'POST', every, me.key, undefined, form([['pics', PNG, 'one.png', 'image/png']])());
    const file = await fetch(`${pb.url}/api/files/every/${ok.body.id}/${ok.body.pics[0]}`);
    assert.deepEqual(Buffer.from(await file.arrayBuffer()), PNG);
  });

  test('a protected file field: uploaded through the routes, readable only with a file token', async () => {
    const f = new FormData();
    f.append('title', 'with doc');
    f.append('author', me.id);
    f.append('private_doc', new Blob(['secret text'], { type: 'text/plain' }), 'secret.txt');
    const r = await send(app.url, 'POST', '/api/collections/posts/records', me.key, undefined, f);
    assert.equal(r.status, 200, r.text);
    assert.match(r.body.private_doc, /^secret_[a-z0-9]{10}\.txt$/);
    const anon = await fetch(`${pb.url}/api/files/posts/${r.body.id}/${r.body.private_doc}`);
    assert.equal(anon.status, 404);
  });

  test('batch: the first invalid inner request gets PocketBase batch error, zero upstream', async () => {
    const requests = [
      { method: 'POST', url: every, body: { req: 'ok' } },
      { method: 'POST', url: every, body: { req: 'x', n: 99 } },
    ];
    const [d, v, cost] = await both('POST', '/api/batch', '/api/batch', { requests });
    expectSame('batch', d, v, cost);
    assert.equal(cost, 0);
    const good = await both('POST', '/api/batch', '/api/batch', { requests: [requests[0], { method: 'DELETE', url: `${every}/nonexistent` }] });
    assert.equal(good[1].status, good[0].status);
  });
});
