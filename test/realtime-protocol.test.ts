// The realtime API's protocol answered by the sidecar exactly as PocketBase answers it: the SSE response
// (status, headers, the PB_CONNECT frame with the client id as every frame's id), subscription requests
// (204; bind and validation errors with PocketBase's bodies; unknown client 404; another IP 400; a
// changed identity 403, a guest becoming someone allowed), compared request for request with PocketBase.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { api } from './harness/dump.js';
import { RawClient, sleep, startRealtimeEnv, until, waitForSync, type RealtimeEnv } from './realtime-env.js';

const SAME_HEADERS = ['cache-control', 'content-type', 'cross-origin-opener-policy', 'vary', 'x-accel-buffering', 'x-content-type-options', 'x-frame-options', 'x-xss-protection'];

describe('realtime protocol', { timeout: 120_000 }, () => {
  let env: RealtimeEnv;
  const clients: RawClient[] = [];
  const raw = (base: string, headers: Record<string, string> = {}) => {
    const c = new RawClient(base, headers);
    clients.push(c);
    return c;
  };

  before(async () => {
    env = await startRealtimeEnv({ sidecar: { gate: { trustedProxies: 'loopback' } } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await env?.stop();
  });

  test('the stream opens with PocketBase headers and its PB_CONNECT frame', async () => {
    const direct = raw(env.pb.url);
    const sidecar = raw(env.url);
    await Promise.all([direct.connect(), sidecar.connect()]);
    assert.equal(sidecar.res!.statusCode, 200);
    for (const h of SAME_HEADERS) assert.equal(sidecar.res!.headers[h], direct.res!.headers[h], h);
    assert.equal(sidecar.res!.headers['transfer-encoding'], 'chunked');
    assert.match(sidecar.clientId, /^[A-Za-z0-9]{40}$/);
    assert.equal(sidecar.frames[0].raw, `id:${sidecar.clientId}\nevent:PB_CONNECT\ndata:{"clientId":"${sidecar.clientId}"}\n\n`);
    assert.equal(direct.frames[0].raw, `id:${direct.clientId}\nevent:PB_CONNECT\ndata:{"clientId":"${direct.clientId}"}\n\n`);
    // CORS on the stream, as PocketBase's default origins (*) answer it.
    const withOrigin = [raw(env.pb.url, { origin: 'https://app.example' }), raw(env.url, { origin: 'https://app.example' })];
    await Promise.all(withOrigin.map((c) => c.connect()));
    assert.equal(withOrigin[1].res!.headers['access-control-allow-origin'], withOrigin[0].res!.headers['access-control-allow-origin']);
    assert.equal(withOrigin[1].res!.headers.vary, withOrigin[0].res!.headers.vary);
    // Every connection is a new client; Last-Event-ID is ignored.
    const again = raw(env.url, { 'last-event-id': sidecar.clientId });
    await again.connect();
    assert.notEqual(again.clientId, sidecar.clientId);
  });

  test('subscription requests: the same status and body as PocketBase, case by case', async () => {
    const direct = raw(env.pb.url);
    const sidecar = raw(env.url);
    await Promise.all([direct.connect(), sidecar.connect()]);
    const user0 = env.identities[1];
    const user1 = env.identities[2];
    const cases: Array<{ name: string; body: (id: string) => string; type?: string; who?: 'user0' | 'user1' | 'none' }> = [
      { name: 'unknown client', body: () => JSON.stringify({ clientId: 'nope', subscriptions: [] }) },
      { name: 'empty client id', body: () => JSON.stringify({ clientId: '', subscriptions: [] }) },
      { name: 'long client id', body: () => JSON.stringify({ clientId: 'x'.repeat(256), subscriptions: [] }) },
      { name: 'bad json', body: () => '{bad' },
      { name: 'array body', body: () => '[1]' },
      { name: 'number in subscriptions', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['a', 1] }) },
      { name: 'duplicate names', body: (id) => `{"clientId":"${id}","clientId":"${id}","subscriptions":[]}` },
      { name: 'too many topics', body: (id) => JSON.stringify({ clientId: id, subscriptions: Array.from({ length: 1001 }, (_, i) => `t${i}`) }) },
      { name: 'topic too long', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['ok', 'x'.repeat(2501), 'y'.repeat(2600)] }) },
      { name: 'both invalid', body: () => JSON.stringify({ clientId: '', subscriptions: ['x'.repeat(2501)] }) },
      { name: 'empty body', body: () => '' },
      { name: 'text/plain', body: (id) => JSON.stringify({ clientId: id, subscriptions: [] }), type: 'text/plain' },
      { name: 'case-insensitive names', body: (id) => JSON.stringify({ ClientId: id, Subscriptions: ['posts/*'] }) },
      { name: 'null subscriptions', body: (id) => JSON.stringify({ clientId: id, subscriptions: null }) },
      { name: 'trailing data', body: (id) => JSON.stringify({ clientId: id, subscriptions: [] }) + ' x' },
      { name: 'urlencoded', body: (id) => `clientId=${id}&subscriptions=posts%2F*&subscriptions=comments%2F*`, type: 'application/x-www-form-urlencoded' },
      { name: 'guest becomes user0', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['posts/*'] }), who: 'user0' },
      { name: 'user0 again', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['posts/*', 'users/*'] }), who: 'user0' },
      { name: 'user0 becomes user1', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['posts/*'] }), who: 'user1' },
      { name: 'user0 becomes a guest', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['posts/*'] }), who: 'none' },
      { name: 'custom and odd topics', body: (id) => JSON.stringify({ clientId: id, subscriptions: ['custom/x', 'posts/a/b', '', 'posts/*', 'posts/*'] }), who: 'user0' },
      { name: 'multipart', body: () => '', type: 'multipart' },
    ];
    for (const c of cases) {
      const send = async (base: string, id: string, auth: string) => {
        if (c.type === 'multipart') {
          const fd = new FormData();
          fd.set('clientId', id);
          fd.append('subscriptions', 'posts/*');
          const res = await fetch(`${base}/api/realtime`, { method: 'POST', body: fd, headers: auth ? { authorization: auth } : {} });
          return { status: res.status, body: await res.text() };
        }
        const res = await fetch(`${base}/api/realtime`, {
          method: 'POST', body: c.body(id),
          headers: { ...(c.type !== '' ? { 'content-type': c.type ?? 'application/json' } : {}), ...(auth ? { authorization: auth } : {}) },
        });
        return { status: res.status, body: await res.text() };
      };
      const who = c.who === 'user0' ? user0 : c.who === 'user1' ? user1 : null;
      const [d, s] = await Promise.all([
        send(env.pb.url, direct.clientId, who?.token ?? ''),
        send(env.url, sidecar.clientId, who?.key ?? ''),
      ]);
      assert.deepEqual(s, d, c.name);
    }
  });

  test('a subscription from another address than the stream is refused as by PocketBase', async () => {
    // PocketBase trusts X-Hapta-Client-IP (reference migration); the sidecar trusts X-Forwarded-For from loopback.
    const direct = raw(env.pb.url, { 'x-hapta-client-ip': '10.0.0.1' });
    const sidecar = raw(env.url, { 'x-forwarded-for': '10.0.0.1' });
    await Promise.all([direct.connect(), sidecar.connect()]);
    const d = await direct.subscribe(['posts/*'], '', { 'x-hapta-client-ip': '10.0.0.2' });
    const s = await sidecar.subscribe(['posts/*'], '', { 'x-forwarded-for': '10.0.0.2' });
    assert.deepEqual(s, d);
    assert.equal(s.status, 400);
    const ok = await sidecar.subscribe(['posts/*']);
    assert.equal(ok.status, 204);
  });

  test('subscription options are read as PocketBase reads them (query, headers, encodings, broken JSON)', async () => {
    // A collection whose rules see @request.query, @request.headers, @request.context and @request.method.
    await api(env.pb.url, '/api/collections', { method: 'POST', token: env.superToken, body: {
      name: 'qtest', type: 'base', fields: [{ name: 't', type: 'text' }],
      listRule: '@request.query.a = "1500" || @request.query.b = "true" || (@request.query.c = "" && @request.query.c:isset = true) || ' +
        '@request.headers.x_foo = "bar" || @request.headers.my_header = "y" || (@request.context = "realtime" && @request.query.d = "ctx")',
      viewRule: '@request.method = "GET" && @request.query.e = "1"',
    } });
    await waitForSync(env.sidecar, 20_000);
    const topics = [
      'qtest/*', 'qtest/*?options={"query":{"a":1.5e3}}', 'qtest/*?options={"query":{"b":true}}', 'qtest/*?options={"query":{"c":{"x":1}}}',
      'qtest/*?options={"query":{"c":null}}', 'qtest/*?options={"headers":{"X-Foo":"bar"}}', 'qtest/*?options={"headers":{"myHeader":"y"}}',
      'qtest/*?options={"headers":{"MyHEADER":"y"}}', 'qtest/*?options={"query":{"d":"ctx"}}', 'qtest/*?options={"QUERY":{"a":"1500"}}',
      'qtest/*?options={"query":{"a":"1500"},"query":{"b":"x"}}', 'qtest/*?options={"query":{"a":"1500"},"headers":5}',
      'qtest/*?options={"headers":5,"query":{"a":"1500"}}', 'qtest/*?options={"query":{"a":"15%30%30"}}', 'qtest/*?options={"query":{"a":"1500"}}#frag',
      'qtest/*?options={"query":{"a":"1500"}};x', 'qtest/*?options=%7B%22query%22%3A%7B%22a%22%3A%221500%22%7D%7D',
      'qtest/*?options={"query":{"a":"1500"}}&options={"query":{"b":"true"}}', 'qtest/*?x=1&options={"query":{"a":"1500"}}',
      'qtest/*?options={"query":{"a":"1500"},"extra":[1,{"y":2}]}', 'qtest/*?options= {"query":{"a":"1500"}}',
      'qtest/*?options={"query":{"a":"1500"}}  trailing', 'qtest/*?options={"query":{"a":"1500","a":"1500"}}', 'qtest/*?options={"query":{"a":"15+00"}}',
      'qtest?options={"query":{"a":"1500"}}', 'QTEST/*?options={"query":{"a":"1500"}}', 'qtest/*?options={"query":{"a":"1500"}', 'qtest/*?options=null',
      'qtest/*?options={"query":{"b":"true","zz":"\\u00e9"}}', 'qtest/*?options={"query":{"a":"15\\u0030\\u0030"}}',
    ];
    const id = 'qtestrecord0001';
    topics.push(`qtest/${id}?options={"query":{"e":"1"}}`, `qtest/${id}?options={"query":{"e":1}}`, `qtest/${id}`);
    const direct = raw(env.pb.url);
    const sidecar = raw(env.url);
    await Promise.all([direct.connect(), sidecar.connect()]);
    assert.equal((await direct.subscribe(topics)).status, 204);
    assert.equal((await sidecar.subscribe(topics)).status, 204);
    const rec = await api(env.pb.url, '/api/collections/qtest/records', { method: 'POST', token: env.superToken, body: { id, t: 'x' } });
    await api(env.pb.url, `/api/collections/qtest/records/${rec.id}`, { method: 'PATCH', token: env.superToken, body: { t: 'y' } });
    await waitForSync(env.sidecar);
    await sleep(300);
    const got = (c: RawClient) => c.events().map((f) => `${f.event} ${JSON.parse(f.data).action}`).sort();
    assert.deepEqual(got(sidecar), got(direct));
    assert.ok(got(direct).length >= 15, got(direct).join('\n'));
  });

  test('the 204 carries the same headers as PocketBase', async () => {
    const direct = raw(env.pb.url);
    const sidecar = raw(env.url);
    await Promise.all([direct.connect(), sidecar.connect()]);
    const post = (base: string, id: string) => fetch(`${base}/api/realtime`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clientId: id, subscriptions: ['posts/*'] }),
    });
    const [d, s] = await Promise.all([post(env.pb.url, direct.clientId), post(env.url, sidecar.clientId)]);
    assert.equal(s.status, 204);
    for (const h of ['cross-origin-opener-policy', 'vary', 'x-content-type-options', 'x-frame-options', 'x-xss-protection', 'content-type', 'content-length']) {
      assert.equal(s.headers.get(h), d.headers.get(h), h);
    }
  });

  test('an open stream holds nothing of its request: the Koa contexts are collected while events still arrive', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // Every context Koa makes from here on, observed through the prototype it makes them from (Koa
    // assigns each one its `state`).
    const proto = env.sidecar.app.context as object;
    const contexts: WeakRef<object>[] = [];
    Object.defineProperty(proto, 'state', {
      configurable: true,
      set(this: object, value: unknown) {
        contexts.push(new WeakRef(this));
        Object.defineProperty(this, 'state', { value, writable: true, enumerable: true, configurable: true });
      },
    });
    const [, u0] = env.identities;
    const client = raw(env.url);
    try {
      await client.connect();
      assert.equal((await client.subscribe(['posts/*'], u0.key)).status, 204);
    } finally {
      delete (proto as { state?: unknown }).state;
    }
    assert.ok(contexts.length >= 2, 'the stream and its subscription made contexts');
    // A WeakRef read keeps its target until the job ends: collect in a later job than the last read.
    const live = () => contexts.filter((r) => r.deref() !== undefined).length;
    for (let i = 0; i < 10 && live() > 0; i++) {
      await sleep(10);
      gc();
      await sleep(10);
    }
    assert.equal(live(), 0, 'every request context was collected');
    assert.ok(!client.ended, 'the stream is still open');
    // The stream goes on: an event reaches it, and its end is still seen by the sidecar.
    const post = await api<{ id: string }>(env.pb.url, '/api/collections/posts/records', {
      method: 'POST', token: u0.token, body: { title: 'after the context', author: u0.id, published: false },
    });
    await until('the create event', () => client.events('posts/*').some((f) => f.data.includes(post.id)));
    const before = env.sidecar.realtime.stats().clients;
    client.close();
    await until('the stream counted as gone', () => env.sidecar.realtime.stats().clients === before - 1);
  });
});
