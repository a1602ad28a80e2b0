// The gate against the real PocketBase: rate limits per route class with PocketBase-shaped 429s,
// client IPs that a spoofed X-Forwarded-For cannot change, password guessing slowed without locking the
// victim out, body limits, and the dashboard / superuser API closed by configuration.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const login = (url: string, identity: string, password: string, xff?: string) =>
  fetch(`${url}/api/collections/users/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...(xff ? { 'x-forwarded-for': xff } : {}) },
    body: JSON.stringify({ identity, password }),
  });

describe('gate', () => {
  let pb: PocketBase;
  let seeded: Seeded;
  const started: TestSidecar[] = [];
  const sidecarWith = async (overrides: Parameters<typeof startSidecar>[1]) => {
    const s = await startSidecar(pb, overrides);
    started.push(s);
    await waitForSync(s);
    return s;
  };

  before(async () => {
    pb = await startPocketBase();
    seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: 4, posts: 10, comments: 2, likes: 2, follows: 1 }, 33);
  });
  after(async () => {
    for (const s of started) await s.destroy();
    await pb?.destroy();
  });

  test('a rate limit answers 429 in PocketBase shape with Retry-After and RateLimit headers; a spoofed X-Forwarded-For buys nothing', async () => {
    const sc = await sidecarWith({ rateLimits: { read: { max: 5, duration: 60_000, ip: true, message: 'Slow down.' } } });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await fetch(`${sc.url}/api/collections/posts/records?perPage=1`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      statuses.push(res.status);
      if (res.status === 429) {
        assert.deepEqual(await res.json(), { data: {}, message: 'Slow down.', status: 429 });
        assert.ok(Number(res.headers.get('retry-after')) > 0);
        assert.equal(res.headers.get('x-ratelimit-limit'), '5');
        assert.equal(res.headers.get('x-ratelimit-remaining'), '0');
      } else {
        await res.arrayBuffer();
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // Another route class has its own bucket.
    assert.equal((await login(sc.url, seeded.users[0].email, USER_PASSWORD)).status, 200);
  });

  test('behind a trusted proxy each X-Forwarded-For client has its own bucket, and PocketBase sees the real IP', async () => {
    const sc = await sidecarWith({ gate: { trustedProxies: 'loopback' }, rateLimits: { read: { max: 2, duration: 60_000, ip: true, message: 'Slow down.' } } });
    for (const ip of ['198.51.100.1', '198.51.100.2']) {
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${sc.url}/api/collections/posts/records?perPage=1`, { headers: { 'x-forwarded-for': ip } });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
    }
    const limited = await fetch(`${sc.url}/api/collections/posts/records?perPage=1`, { headers: { 'x-forwarded-for': '198.51.100.1' } });
    assert.equal(limited.status, 429);
    // PocketBase trusts the sidecar's client-IP header (migration), and a client cannot set it itself.
    const admin = (await api(sc.url, '/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: SUPERUSER.email, password: SUPERUSER.password } })).token;
    const health = await (await fetch(`${sc.url}/api/health`, { headers: { authorization: admin, 'x-forwarded-for': '192.0.2.77', 'x-hapta-client-ip': '10.9.9.9' } })).json() as any;
    assert.equal(health.data.realIP, '192.0.2.77');
    const direct = await (await fetch(`${sc.url}/api/health`, { headers: { authorization: admin, 'x-hapta-client-ip': '10.9.9.9' } })).json() as any;
    assert.equal(direct.data.realIP, '127.0.0.1');
  });

  test('per-user buckets: signed-in users do not share a limit', async () => {
    const sc = await sidecarWith({ rateLimits: { write: { max: 2, duration: 60_000, ip: false, message: 'Too many writes.' } } });
    const keys = [];
    for (const i of [0, 1]) keys.push((await (await login(sc.url, seeded.users[i].email, USER_PASSWORD)).json() as any).token);
    for (const [i, key] of keys.entries()) {
      for (let n = 0; n < 2; n++) {
        await api(sc.url, '/api/collections/posts/records', { method: 'POST', token: key, body: { title: `w${n}`, author: seeded.users[i].id } });
      }
    }
    const res = await fetch(`${sc.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: keys[0], 'content-type': 'application/json' }, body: JSON.stringify({ title: 'one too many', author: seeded.users[0].id }) });
    assert.equal(res.status, 429);
    assert.equal(((await res.json()) as any).message, 'Too many writes.');
  });

  test('password guessing is slowed per identity and IP without locking the victim out', async () => {
    const sc = await sidecarWith({
      gate: { trustedProxies: 'loopback' },
      loginGuard: { maxFailuresPerIdentityIp: 3, maxFailuresPerIdentity: 6, maxFailuresPerIp: 100, windowMs: 60_000 },
      rateLimits: { enabled: false },
    });
    const victim = seeded.users[2];
    // The victim signs in once from their usual address.
    assert.equal((await login(sc.url, victim.email, USER_PASSWORD, '198.51.100.50')).status, 200);
    // An attacker guesses from one address: after 3 failures even the right password is refused there.
    for (let i = 0; i < 3; i++) assert.equal((await login(sc.url, victim.email, `guess-${i}`, '203.0.113.66')).status, 400);
    const refused = await login(sc.url, victim.email, USER_PASSWORD, '203.0.113.66');
    assert.equal(refused.status, 429);
    assert.deepEqual(await refused.json(), { data: {}, message: 'Too many failed authentication attempts. Try again later.', status: 429 });
    // Spread over addresses: after 6 failures for the identity, unknown addresses are refused...
    for (let i = 0; i < 3; i++) assert.equal((await login(sc.url, victim.email, `guess-${i}`, `203.0.113.${100 + i}`)).status, 400);
    assert.equal((await login(sc.url, victim.email, USER_PASSWORD, '203.0.113.200')).status, 429);
    // ...but the victim's own address still gets in, and other users are untouched.
    assert.equal((await login(sc.url, victim.email, USER_PASSWORD, '198.51.100.50')).status, 200);
    assert.equal((await login(sc.url, seeded.users[3].email, USER_PASSWORD, '203.0.113.66')).status, 200);
  });

  test('oversized bodies get 413 before PocketBase sees them, declared or streamed', async () => {
    const sc = await sidecarWith({ gate: { maxJsonBody: 4096, maxUploadBody: 16384 }, rateLimits: { enabled: false } });
    const key = (await (await login(sc.url, seeded.users[0].email, USER_PASSWORD)).json() as any).token;
    const big = JSON.stringify({ title: 'x', body: 'y'.repeat(10_000), author: seeded.users[0].id });
    const res = await fetch(`${sc.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key, 'content-type': 'application/json' }, body: big });
    assert.equal(res.status, 413);
    assert.deepEqual(await res.json(), { data: {}, message: 'Request entity too large', status: 413 });
    // Without Content-Length (chunked), cut off while streaming.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(`${sc.url}/api/collections/posts/records`);
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { authorization: key, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write(big.slice(i * 1000, (i + 1) * 1000));
      req.end(big.slice(10_000));
    });
    assert.equal(chunked.status, 413);
    assert.equal(JSON.parse(chunked.body).status, 413);
    const form = new FormData();
    form.set('title', 'upload');
    form.set('author', seeded.users[0].id);
    form.set('attachment', new Blob(['z'.repeat(20_000)], { type: 'text/plain' }), 'big.txt');
    const upload = await fetch(`${sc.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key }, body: form });
    assert.equal(upload.status, 413);
    // Within the limits everything still works.
    const ok = await fetch(`${sc.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key, 'content-type': 'application/json' }, body: JSON.stringify({ title: 'small', author: seeded.users[0].id }) });
    assert.equal(ok.status, 200);
  });

  test('the dashboard and the superuser API can be closed on the public port', async () => {
    const open = await sidecarWith({});
    assert.equal((await fetch(`${open.url}/_/`)).status, 200);
    const sc = await sidecarWith({ gate: { exposeDashboard: false, exposeSuperuserApi: false } });
    for (const path of ['/_/', '/api/settings', '/api/collections', '/api/logs', '/api/collections/posts']) {
      const res = await fetch(`${sc.url}${path}`);
      assert.equal(res.status, 404, path);
      assert.deepEqual(await res.json(), { data: {}, message: "The requested resource wasn't found.", status: 404 });
    }
    const su = await fetch(`${sc.url}/api/collections/_superusers/auth-with-password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: SUPERUSER.email, password: SUPERUSER.password }) });
    assert.equal(su.status, 404);
    // Records stay reachable.
    assert.equal((await fetch(`${sc.url}/api/collections/posts/records?perPage=1`)).status, 200);
  });
});

describe('rate-limit memory', () => {
  test('expired buckets are dropped', async () => {
    const { ExpiringMap } = await import('../sidecar/gate/rate-limits.js');
    const m = new ExpiringMap<string, { reset: number }>(3_600_000);
    m.set('old', { reset: Date.now() / 1000 - 1 });
    m.set('live', { reset: Date.now() / 1000 + 60 });
    m.sweep();
    assert.deepEqual([...m.keys()], ['live']);
    m.dispose();
  });
});
