// Form bodies (application/x-www-form-urlencoded) on the record write routes: the sidecar reads them as
// Go's ParseForm does (bad escapes, semicolons, the parameter limit, the URL's query merged in,
// @jsonPayload, the media type) and refuses what PocketBase refuses with PocketBase's answer, without
// writing anything; what PocketBase accepts gives the same record through the sidecar.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseMediaType, parseQuery, readForm } from '../sidecar/writes/form.js';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const FORM = 'application/x-www-form-urlencoded';
const GENERIC = 'Something went wrong while processing your request.';

describe('url.ParseQuery semantics', () => {
  const q = (s: string) => {
    const r = parseQuery(Buffer.from(s, 'latin1'));
    return { values: Object.fromEntries(r.values), error: r.error };
  };

  test('values, escapes and separators', () => {
    assert.deepEqual(q('a=1&b=x+y&a=2&c&=e&&d=%41%2b%3B'), {
      values: { a: ['1', '2'], b: ['x y'], c: [''], '': ['e'], d: ['A+;'] }, error: null,
    });
    assert.deepEqual(q(''), { values: {}, error: null });
    assert.deepEqual(q('t=%ff%fe&u=%E2%82A'), { values: { t: ['\ufffd\ufffd'], u: ['\ufffd\ufffdA'] }, error: null });
    assert.deepEqual(q('t=h\u00c3\u00a9'), { values: { t: ['h\u00e9'] }, error: null });
  });

  test('Go keeps going after an error and reports it', () => {
    assert.deepEqual(q('%zz=1&a=1'), { values: { a: ['1'] }, error: 'invalid URL escape "%zz"' });
    assert.deepEqual(q('a=%zz&b=%yy&c=1'), { values: { c: ['1'] }, error: 'invalid URL escape "%zz"' });
    assert.deepEqual(q('a=%2'), { values: {}, error: 'invalid URL escape "%2"' });
    assert.deepEqual(q('a=1&b=%'), { values: { a: ['1'] }, error: 'invalid URL escape "%"' });
    // a semicolon error replaces an earlier error; a later escape error does not replace it
    assert.deepEqual(q('a=%zz&b=1;2&c=3'), { values: { c: ['3'] }, error: 'invalid semicolon separator in query' });
    assert.deepEqual(q('b=1;2&a=%zz'), { values: {}, error: 'invalid semicolon separator in query' });
    assert.equal(q('a&'.repeat(9999) + 'a').error, null);
    assert.equal(q('&'.repeat(10_000)).error, 'number of URL query parameters exceeded limit');
  });

  test('media types as mime.ParseMediaType reads them', () => {
    const ok = (s: string) => assert.equal((parseMediaType(s) as { type?: string }).type, s.split(';')[0].trim().toLowerCase(), s);
    const bad = (s: string) => assert.ok('error' in parseMediaType(s), s);
    ok(FORM);
    ok(`${FORM}; charset=utf-8`);
    ok(`${FORM};`);
    ok(`${FORM}; charset=""`);
    ok(`${FORM}; a=1; A=1`);
    ok(`${FORM}XYZ`);
    bad(`${FORM};;`);
    bad(`${FORM}; ;`);
    bad(`${FORM}; a=1; a=2`);
    bad(`${FORM}; charset`);
    bad(`${FORM}; a=1 b`);
    bad(`${FORM} foo`);
  });

  test('the request as PocketBase reads it: the query is merged in, an empty request reads nothing', () => {
    const read = (body: string, rawQuery = '', contentType = FORM, empty = false) => readForm({ contentType, body: Buffer.from(body), rawQuery, empty });
    const r = read('a=1&b=2', 'a=3&c=4');
    assert.ok(r.ok);
    assert.deepEqual(Object.fromEntries(r.values), { a: ['1', '3'], b: ['2'], c: ['4'] });
    assert.deepEqual(read('', '%zz', FORM, true), { ok: true, values: new Map() });
    assert.equal((read('a=1', '%zz') as { message: string }).message, GENERIC);
    assert.equal((read('a=1', '', FORM.toUpperCase()) as { message: string }).message, 'Unsupported Content-Type.');
    const other = read('a=1', 'b=2', `${FORM}XYZ`);
    assert.ok(other.ok);
    assert.deepEqual(Object.fromEntries(other.values), { b: ['2'] });
  });
});

describe('form bodies: the sidecar answers as PocketBase', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let su: string;
  let seeded: Seeded;
  let me: { key: string; pbToken: string; id: string };
  let myPost: string;

  before(async () => {
    pb = await startPocketBase();
    su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 2, posts: 2, comments: 1, likes: 1, follows: 1 }, 21);
    sidecar = await startSidecar(pb);
    await waitForSync(sidecar);
    const signIn = async (base: string) => {
      const res = await fetch(`${base}/api/collections/users/auth-with-password`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ identity: seeded.users[0].email, password: USER_PASSWORD }),
      });
      assert.equal(res.status, 200);
      return (await res.json()) as { token: string; record: { id: string } };
    };
    const [viaSidecar, direct] = [await signIn(sidecar.url), await signIn(pb.url)];
    me = { key: viaSidecar.token, pbToken: direct.token, id: direct.record.id };
    const created = await fetch(`${pb.url}${posts}`, {
      method: 'POST', headers: { authorization: su, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'mine', author: me.id, published: true }),
    });
    myPost = ((await created.json()) as { id: string }).id;
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  const posts = '/api/collections/posts/records';

  const send = async (base: string, token: string, method: string, path: string, body: string, contentType: string) => {
    const res = await fetch(base + path, { method, headers: { authorization: token, 'content-type': contentType }, body, signal: AbortSignal.timeout(15_000) });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch { /* compared as text */ }
    return { status: res.status, contentType: res.headers.get('content-type'), json, text };
  };

  const count = async () => {
    const res = await fetch(`${pb.url}${posts}?perPage=1`, { headers: { authorization: su } });
    return ((await res.json()) as { totalItems: number }).totalItems;
  };

  /** A record answer made comparable: what differs between two creates. */
  const comparable = (json: any) => {
    if (!json || typeof json !== 'object' || !('collectionId' in json)) return json;
    const { id: _id, created: _c, updated: _u, ...rest } = json;
    return rest;
  };

  test('creates: the same status and body, and nothing written when refused', { timeout: 120_000 }, async () => {
    const id = () => me.id;
    const many = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=1`).join('&');
    // [label, body, query, content type, PocketBase's status as measured]
    const cases: Array<[string, () => string, string, string, number]> = [
      ['bad escape in a key', () => `%zz=1&title=x&author=${id()}`, '', FORM, 400],
      ['bad escape in a value', () => `title=%zz&author=${id()}`, '', FORM, 400],
      ['semicolon separator', () => `title=x;y&author=${id()}`, '', FORM, 400],
      ['lone semicolon part', () => `title=x&;&author=${id()}`, '', FORM, 400],
      ['truncated escape', () => `title=x&author=${id()}&a=%2`, '', FORM, 400],
      ['percent at the end', () => `title=x&author=${id()}&a=%`, '', FORM, 400],
      ['escape then semicolon errors', () => `a=%zz&title=x&b=1;2&author=${id()}`, '', FORM, 400],
      ['too many parameters', () => `title=x&author=${id()}&${many(9999)}`, '', FORM, 400],
      ['bad escape in the URL query', () => `title=x&author=${id()}`, '?%zz=1', FORM, 400],
      ['semicolon in the URL query', () => `title=x&author=${id()}`, '?a=1;b', FORM, 400],
      ['invalid @jsonPayload', () => `title=x&author=${id()}&@jsonPayload=%7Bbad`, '', FORM, 400],
      ['@jsonPayload array', () => `title=x&author=${id()}&@jsonPayload=%5B1%5D`, '', FORM, 400],
      ['@jsonPayload null', () => `title=x&author=${id()}&@jsonPayload=null`, '', FORM, 400],
      ['content type in capitals', () => `title=x&author=${id()}`, '', FORM.toUpperCase(), 400],
      ['content type, mixed case', () => `title=x&author=${id()}`, '', 'Application/x-www-form-urlencoded', 400],
      ['duplicate media parameter', () => `title=x&author=${id()}`, '', `${FORM}; a=1; a=2`, 400],
      ['media parameter without value', () => `title=x&author=${id()}`, '', `${FORM}; charset`, 400],
      ['another subtype: no body read', () => `title=x&author=${id()}`, '', `${FORM}XYZ`, 400],
      ['repeated keys', () => `title=a&title=b&author=${id()}`, '', FORM, 400],
      ['key without =', () => `title&author=${id()}`, '', FORM, 400],
      ['empty key', () => `=v&title=x&author=${id()}`, '', FORM, 200],
      ['plus for space', () => `title=a+b&author=${id()}`, '', FORM, 200],
      ['empty parts', () => `&&title=x&&author=${id()}&`, '', FORM, 200],
      ['encoded semicolon', () => `title=x%3By&author=${id()}`, '', FORM, 200],
      ['invalid UTF-8', () => `title=%ff%fe%E2%82&author=${id()}`, '', FORM, 200],
      ['inferred values', () => `title=x&author=${id()}&likes=5&published=true&tags=fun&tags=tech`, '', FORM, 200],
      ['fields from the URL query', () => `author=${id()}`, '?title=from+query&published=true', FORM, 200],
      ['@jsonPayload merged over the fields', () => `title=form&author=${id()}&@jsonPayload=${encodeURIComponent(JSON.stringify({ title: 'jp', likes: 3 }))}`, '', FORM, 200],
      ['media parameters', () => `title=x&author=${id()}`, '', `${FORM}; charset="utf-8";`, 200],
      ['10000 parameters', () => `title=x&author=${id()}&${many(9998)}`, '', FORM, 200],
    ];
    for (const [label, body, query, contentType, expected] of cases) {
      const before = await count();
      const direct = await send(pb.url, me.pbToken, 'POST', posts + query, body(), contentType);
      const via = await send(sidecar.url, me.key, 'POST', posts + query, body(), contentType);
      const after = await count();
      assert.equal(direct.status, expected, `${label}: PocketBase ${direct.text.slice(0, 200)}`);
      assert.equal(via.status, direct.status, `${label}: sidecar ${via.text.slice(0, 200)}`);
      assert.deepEqual(comparable(via.json), comparable(direct.json), `${label}: body`);
      assert.equal(via.contentType, direct.contentType, `${label}: content type`);
      assert.equal(after - before, expected === 200 ? 2 : 0, `${label}: records written`);
      if (expected !== 200) assert.equal(via.text.trim(), direct.text.trim(), `${label}: bytes`);
    }
  });

  test('updates: a refused body is answered before the record is looked at', { timeout: 60_000 }, async () => {
    const cases: Array<[string, string]> = [
      ['own record', `${posts}/${myPost}`],
      ['missing record', `${posts}/doesnotexist123`],
    ];
    for (const [label, path] of cases) {
      for (const body of ['%zz=1&title=changed', 'title=changed;x']) {
        const direct = await send(pb.url, me.pbToken, 'PATCH', path, body, FORM);
        const via = await send(sidecar.url, me.key, 'PATCH', path, body, FORM);
        assert.equal(direct.status, 400, `${label}: ${direct.text}`);
        assert.equal(direct.json.message, GENERIC);
        assert.equal(via.status, 400, `${label}: ${via.text}`);
        assert.deepEqual(via.json, direct.json, label);
      }
    }
    const res = await fetch(`${pb.url}${posts}/${myPost}`, { headers: { authorization: su } });
    assert.equal(((await res.json()) as { title: string }).title, 'mine');
  });
});
