// Three sidecar processes behind a real HAProxy (scripts/cluster.ts's configuration), sharing the real
// Redis, in front of the real PocketBase (each through a proxy of its own that can hold its change-log
// reads), under a steady load of reads and writes by signed-in users through HAProxy: one sidecar is
// SIGKILLed and restarted; all are restarted one by one (drained in HAProxy, SIGTERM, started again,
// back once healthy); one sidecar's log reads are held until its health fails, HAProxy takes it out and
// it comes back once released; then every sidecar's, and HAProxy keeps using them all. Asserted: every
// acknowledged create is in PocketBase, no session is lost, a write is readable right after (on any
// sidecar), the only failures are requests in flight at the kill, a logout on one sidecar holds on all,
// a rate limit admits N in total across sidecars, per client IP as HAProxy forwards it, and realtime
// works through HAProxy (stream and subscriptions on one sidecar). HAProxy must be installed (.ci/run
// installs it); without it the test fails.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { Redis } from 'ioredis';
import PocketBaseSDK from 'pocketbase';
import { HAPROXY_INSTALL_HINT, haproxyBinary, startHaproxy, type Haproxy } from '../scripts/cluster.js';
import { api, superuserToken } from './harness/dump.js';
import { freePort } from './harness/net.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD } from './harness/seed.js';
import { startSidecarProcess, type SidecarProcess } from './harness/sidecar-process.js';

const REDIS_URL = process.env.HAPTA_CLUSTER_REDIS_URL ?? 'redis://127.0.0.1:6379/12';
const MAX_LAG_MS = 2000;
const UPLOAD_LIMIT = 10;
// Signed-in users of the load, each one request at a time (an app awaiting each call).
const USERS = 12;
const WORKERS_PER_USER = 1;
const CONCURRENCY = USERS * WORKERS_PER_USER;

// Node 20 has no EventSource; the SDK's realtime service needs one.
(globalThis as any).EventSource ??= EventSource;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const elapsed = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

/** An HTTP proxy in front of PocketBase that can hold the change-log reads of the sidecar behind it. */
class HoldingProxy {
  private server: Server | null = null;
  private queue: (() => void)[] = [];
  private holding = false;
  held = 0;
  port = 0;

  constructor(private readonly pbPort: () => number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const go = () => {
        const up = httpRequest({ host: '127.0.0.1', port: this.pbPort(), method: req.method, path: req.url, headers: req.headers }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        res.on('close', () => up.destroy());
        req.pipe(up);
      };
      if (this.holding && req.url?.startsWith('/api/hapta-sync/changes')) {
        this.held++;
        this.queue.push(go);
      } else go();
    });
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const go of this.queue.splice(0)) go();
  }

  async stop(): Promise<void> {
    this.release();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

interface Outcome { op: string; status: number; error?: string; start: number; end: number; server: string; position?: string }

/** Requests answered by each sidecar, route kind `hapta` (health, metrics) left out, from its own metrics. */
async function served(url: string): Promise<number> {
  const text = await (await fetch(`${url}/api/hapta/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^hapta_requests_total\{([^}]*)\} (\S+)$/gm)) if (!/route="hapta"/.test(m[1])) n += Number(m[2]);
  return n;
}

test('sidecars behind HAProxy: kill, rolling restart and a lagging replica under load lose nothing', { timeout: 300_000 }, async () => {
  assert.ok(haproxyBinary(), `${HAPROXY_INSTALL_HINT} (the cluster test needs a real HAProxy)`);
  const t0 = Date.now();
  const log = (s: string) => console.log(`cluster test [${elapsed(t0)}] ${s}`);
  const redis = new Redis(REDIS_URL);
  await redis.flushdb();
  await redis.quit();

  const pb: PocketBase = await startPocketBase();
  const work = mkdtempSync(join(tmpdir(), 'hapta-cluster-test-'));
  // Each sidecar reaches PocketBase through its own holding proxy.
  const proxies = [1, 2, 3].map(() => new HoldingProxy(() => pb.port));
  for (const p of proxies) await p.start();
  const proxy = proxies[2];
  const sidecars: { name: string; port: number; dataDir: string; env: Record<string, string>; proc: SidecarProcess | null }[] = [];
  let haproxy: Haproxy | null = null;
  let running = false;
  let load: Promise<unknown> = Promise.resolve();
  try {
    const su = await superuserToken(pb.url);
    const seeded = await seedReference(pb.url, su, { users: USERS + 1, posts: 30, comments: 10, likes: 10, follows: 5 }, 91);
    const common = {
      HAPTA_REDIS_URL: REDIS_URL, HAPTA_SESSION_SECRET: 'cluster-test-secret-0123456789abcdefghij', HAPTA_TRUSTED_PROXIES: 'loopback',
      HAPTA_HEALTH_MAX_LAG_MS: String(MAX_LAG_MS), HAPTA_WATCH_MIGRATIONS: 'false',
      HAPTA_RATELIMIT_UPLOAD_MAX: String(UPLOAD_LIMIT), HAPTA_RATELIMIT_UPLOAD_DURATION: '120000',
      HAPTA_RATELIMIT_READ_MAX: '100000', HAPTA_RATELIMIT_WRITE_MAX: '100000', HAPTA_RATELIMIT_AUTH_MAX: '1000',
    };
    for (let i = 1; i <= 3; i++) {
      const env: Record<string, string> = { ...common, HAPTA_CONSUMER_ID: `cluster_s${i}`, PB_URL: proxies[i - 1].url };
      sidecars.push({ name: `s${i}`, port: await freePort(), dataDir: join(work, `s${i}`), env, proc: null });
    }
    const start = async (s: (typeof sidecars)[number]) => {
      s.proc = await startSidecarProcess(pb, s.env, { dataDir: s.dataDir, port: s.port });
    };
    await Promise.all(sidecars.map(start));
    haproxy = await startHaproxy(join(work, 'haproxy'), { port: await freePort(), backends: sidecars.map((s) => ({ name: s.name, port: s.port })), serverHeader: true },
      (line) => { if (/is (UP|DOWN)/.test(line)) log(`haproxy: ${line.replace(/^\[\w+\]\s+\(\d+\) : /, '')}`); });
    const hp = haproxy;
    for (const s of sidecars) await hp.waitFor(s.name, 'UP');
    const direct = (s: (typeof sidecars)[number]) => `http://127.0.0.1:${s.port}`;
    log('PocketBase, 3 sidecars and HAProxy up');

    // Signed-in users, each with a draft only they can see (viewing it proves the key still works).
    const users = await Promise.all(seeded.users.slice(0, USERS + 1).map(async (u) => {
      const key = (await api(hp.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: u.email, password: USER_PASSWORD } })).token as string;
      const draft = (await api(hp.url, '/api/collections/posts/records', { method: 'POST', token: key, body: { title: `draft of ${u.id}`, author: u.id, published: false } })).id as string;
      return { ...u, key, draft };
    }));
    const logoutUser = users.pop()!;

    // Realtime through HAProxy with the official SDK: the stream and the subscription reach the same
    // sidecar, and a create arrives as an event.
    const realtimeWorks = async (title: string) => {
      const sdk = new PocketBaseSDK(hp.url);
      await sdk.collection('users').authWithPassword(logoutUser.email, USER_PASSWORD);
      const seen: string[] = [];
      const unsubscribe = await sdk.collection('posts').subscribe('*', (e) => seen.push(`${e.action} ${e.record.title}`));
      try {
        await sdk.collection('posts').create({ title, author: logoutUser.id, published: true });
        for (let i = 0; i < 100 && !seen.includes(`create ${title}`); i++) await sleep(50);
        assert.ok(seen.includes(`create ${title}`), `no realtime event for ${title}: ${seen.join(', ')}`);
        log(`realtime through HAProxy: subscribed, and the create "${title}" arrived as an event`);
      } finally {
        await unsubscribe();
        sdk.realtime.unsubscribe();
      }
    };
    await realtimeWorks('realtime before');

    // The load: each worker creates posts (read back at once), lists posts and views its user's draft.
    const outcomes: Outcome[] = [];
    const created: string[] = [];
    running = true;
    const call = async (op: string, path: string, key: string, body?: unknown): Promise<{ status: number; json: any; o: Outcome }> => {
      const o: Outcome = { op, status: 0, start: Date.now(), end: 0, server: '' };
      try {
        const res = await fetch(hp.url + path, {
          method: body ? 'POST' : 'GET', signal: AbortSignal.timeout(20_000),
          headers: { authorization: key, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
        });
        o.status = res.status;
        o.server = res.headers.get('x-hapta-server') ?? '';
        o.position = res.headers.get('x-hapta-position') ?? undefined;
        const text = await res.text();
        return { status: res.status, json: text.startsWith('{') ? JSON.parse(text) : null, o };
      } catch (err) {
        const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
        o.error = `${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`;
        return { status: 0, json: null, o };
      } finally {
        o.end = Date.now();
        outcomes.push(o);
      }
    };
    const worker = async (u: (typeof users)[number], w: number) => {
      for (let n = 0; running; n++) {
        const pick = (n * 7 + w * 3) % 10;
        if (pick < 3) {
          const res = await call('create', '/api/collections/posts/records', u.key, { title: `load ${u.id} ${w} ${n}`, author: u.id, published: n % 2 === 0 });
          if (res.status === 200) {
            created.push(res.json.id);
            const back = await call('read-back', `/api/collections/posts/records/${res.json.id}`, u.key);
            if (back.status !== 200) log(`read-back ${back.status}: created on ${res.o.server} at position ${res.o.position}, read on ${back.o.server} at position ${back.o.position}`);
          }
        } else if (pick < 7) {
          await call('list', '/api/collections/posts/records?perPage=5&sort=-created', u.key);
        } else {
          await call('draft', `/api/collections/posts/records/${u.draft}`, u.key);
        }
        await sleep(40);
      }
    };
    load = Promise.all(users.flatMap((u) => Array.from({ length: WORKERS_PER_USER }, (_, w) => worker(u, w))));
    const failed = (from = 0, to = Infinity) => outcomes.filter((o) => o.end >= from && o.start <= to && (o.status === 0 || o.status >= 500 || o.status === 401 || o.status === 404 || o.status === 403));
    await sleep(4000);
    log(`steady load: ${outcomes.length} requests, ${created.length} creates, ${failed().length} failed`);

    // 1. SIGKILL one sidecar; the others carry on; it restarts from its data dir and rejoins. The kill
    // lasts from the signal until the process is gone (its sockets close last): requests that overlap
    // that span are the ones in flight at the kill.
    const killedAt = Date.now();
    await sidecars[0].proc!.kill();
    const goneAt = Date.now();
    log(`SIGKILLed s1 (gone after ${goneAt - killedAt} ms)`);
    await hp.waitFor('s1', 'DOWN', 15_000);
    await sleep(1500);
    await start(sidecars[0]);
    await hp.waitFor('s1', 'UP', 30_000);
    const inFlightAtKill = outcomes.filter((o) => o.start <= goneAt && o.end >= killedAt);
    const killFailures = failed(killedAt);
    log(`s1 back; ${killFailures.length} of the ${inFlightAtKill.length} requests in flight at the kill failed: ${JSON.stringify(killFailures.map((o) => [o.op, o.status || o.error, o.start - killedAt]))}`);
    for (const f of killFailures) assert.ok(inFlightAtKill.includes(f), `a request that started ${f.start - goneAt} ms after the kill failed (${f.op} ${f.status || f.error})`);
    assert.ok(killFailures.length <= CONCURRENCY, `${killFailures.length} failures, more than the ${CONCURRENCY} requests that can be in flight`);
    await sleep(2000);

    // 2. Rolling restart: drain in HAProxy (nothing new is sent, requests under way finish), SIGTERM,
    // start again, back in the pool once healthy, next.
    const rollingFrom = Date.now();
    for (const s of sidecars) {
      await hp.command(`set server sidecars/${s.name} state drain`);
      for (let i = 0; i < 100 && (await hp.servers()).find((x) => x.name === s.name)!.current > 0; i++) await sleep(50);
      await s.proc!.stop();
      await start(s);
      await waitChecksUp(hp, s.name); // still drained by the admin, but its checks pass again
      await hp.command(`set server sidecars/${s.name} state ready`);
      await hp.waitFor(s.name, 'UP', 10_000);
      log(`rolling restart: ${s.name} back`);
    }
    const rollingFailures = failed(rollingFrom);
    assert.deepEqual(rollingFailures.map((o) => [o.op, o.status || o.error]), [], 'requests failed during the rolling restart');

    // 3. s3's change-log reads held: its health goes 503 within the bound, HAProxy takes it out and sends
    // it nothing; released, it catches up and comes back.
    proxy.hold();
    const heldAt = Date.now();
    await hp.waitFor('s3', 'DOWN', MAX_LAG_MS + 10_000);
    const downAfter = Date.now() - heldAt;
    const health = await (await fetch(`${direct(sidecars[2])}/api/hapta/health`)).json() as any;
    assert.equal(health.status, 'lagging');
    assert.ok(health.lag.behindMs > MAX_LAG_MS, JSON.stringify(health));
    assert.equal(health.lag.pocketbaseReachable, true);
    // Requests s3 took before it left may still be finishing (a read waits up to HAPTA_READ_WAIT_MS).
    await sleep(1500);
    const before = await served(direct(sidecars[2]));
    const outFrom = Date.now();
    await sleep(3000);
    const whileOut = outcomes.filter((o) => o.start >= outFrom);
    assert.equal(await served(direct(sidecars[2])), before, 's3 served requests while out of the pool');
    assert.equal(whileOut.filter((o) => o.server === 's3').length, 0);
    assert.ok(whileOut.length > 20, `load kept going (${whileOut.length} requests)`);
    log(`s3 held: 503 and out of the pool after ${downAfter} ms (bound ${MAX_LAG_MS} ms); ${proxy.held} log reads held, nothing served in 3 s`);
    assert.ok(downAfter < MAX_LAG_MS + 5000, `took ${downAfter} ms to leave the pool`);
    const releasedAt = Date.now();
    proxy.release();
    await hp.waitFor('s3', 'UP', 20_000);
    log(`s3 released: back in the pool after ${Date.now() - releasedAt} ms`);
    await sleep(2000);
    assert.ok(await served(direct(sidecars[2])) > before, 's3 serves again');

    // 4. Every sidecar's reads held at once: all fail their checks, and HAProxy uses them all anyway (as
    // backups) rather than answering 503: the service goes on, reads a replica cannot answer fresh going
    // to PocketBase.
    for (const p of proxies) p.hold();
    const allHeldAt = Date.now();
    for (const s of sidecars) await hp.waitFor(s.name, 'DOWN', MAX_LAG_MS + 10_000);
    const allOutFrom = Date.now();
    await sleep(3000);
    const allOut = outcomes.filter((o) => o.start >= allOutFrom);
    for (const p of proxies) p.release();
    for (const s of sidecars) await hp.waitFor(s.name, 'UP', 20_000);
    // Reads after a write wait out the replica's bound there before going to PocketBase, so on a busy
    // machine few requests fit in 3 s (about 30 here, 17 at the slowest); none would if the load stalled.
    assert.ok(allOut.length > 10, `load kept going with every sidecar out (${allOut.length} requests)`);
    assert.deepEqual(allOut.filter((o) => o.status !== 200).map((o) => [o.op, o.status || o.error]), [], 'requests failed while every sidecar was out');
    log(`all held: every sidecar out after ${allOutFrom - allHeldAt} ms, ${allOut.length} requests answered in 3 s (${[...new Set(allOut.map((o) => o.server))].join(', ')}), all back after release`);

    await realtimeWorks('realtime after');

    // 5. A logout on one sidecar is effective on every sidecar at once.
    const draftStatus = async (url: string, key: string) => {
      const res = await fetch(`${url}/api/collections/posts/records/${logoutUser.draft}`, { headers: { authorization: key } });
      await res.arrayBuffer();
      return res.status;
    };
    for (const s of sidecars) assert.equal(await draftStatus(direct(s), logoutUser.key), 200, `key works on ${s.name}`);
    const out = await fetch(`${direct(sidecars[0])}/api/hapta/logout`, { method: 'POST', headers: { authorization: logoutUser.key } });
    assert.equal(out.status, 204);
    for (const s of sidecars) assert.equal(await draftStatus(direct(s), logoutUser.key), 404, `logged-out key still works on ${s.name}`);
    const refresh = await fetch(`${direct(sidecars[2])}/api/collections/users/auth-refresh`, { method: 'POST', headers: { authorization: logoutUser.key } });
    assert.equal(refresh.status, 401);

    // 6. One rate limit across the sidecars, per client IP as HAProxy forwards it: anonymous uploads
    // (multipart creates, limited per IP) from 127.0.0.9, N of 3N admitted in total although they reach
    // every sidecar; 127.0.0.10 still has its own N.
    const fromIp = async (ip: string, n: number) => {
      const answers: { status: number; server: string }[] = [];
      const body = '--b0undary\r\nContent-Disposition: form-data; name="title"\r\n\r\nanonymous upload\r\n--b0undary--\r\n';
      const { hostname, port } = new URL(hp.url);
      for (let i = 0; i < n; i++) {
        answers.push(await new Promise((resolve, reject) => {
          const req = httpRequest({ host: hostname, port, path: '/api/collections/posts/records', method: 'POST', localAddress: ip, agent: false,
            headers: { 'content-type': 'multipart/form-data; boundary=b0undary', 'content-length': Buffer.byteLength(body) } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, server: String(res.headers['x-hapta-server'] ?? '') }));
          });
          req.on('error', reject);
          req.end(body);
        }));
      }
      return answers;
    };
    const limited = await fromIp('127.0.0.9', 3 * UPLOAD_LIMIT);
    const admitted = limited.filter((a) => a.status !== 429);
    assert.equal(admitted.length, UPLOAD_LIMIT, `admitted ${admitted.length} of ${limited.length}: ${limited.map((a) => a.status).join(',')}`);
    const spread = sidecars.map((s) => limited.filter((a) => a.server === s.name).length);
    assert.ok(spread.every((k) => k > 0), `the requests went to every sidecar: ${spread.join(', ')}`);
    const other = await fromIp('127.0.0.10', 2);
    assert.ok(other.every((a) => a.status !== 429), `another client IP has its own bucket: ${other.map((a) => a.status).join(',')}`);
    log(`rate limit: ${admitted.length} of ${limited.length} admitted from one IP across sidecars (${spread.join('/')} per sidecar); another IP admitted`);

    running = false;
    await load;

    // Nothing acknowledged is lost: every 2xx create is in PocketBase.
    const missing: string[] = [];
    for (let i = 0; i < created.length; i += 40) {
      const ids = created.slice(i, i + 40);
      const filter = encodeURIComponent(ids.map((id) => `id="${id}"`).join('||'));
      const res = await api<{ items: { id: string }[] }>(pb.url, `/api/collections/posts/records?perPage=100&skipTotal=1&fields=id&filter=${filter}`, { token: su });
      const found = new Set(res.items.map((r) => r.id));
      missing.push(...ids.filter((id) => !found.has(id)));
    }
    assert.deepEqual(missing, [], 'acknowledged creates missing from PocketBase');
    // No session lost, no stale read: no 401, no read-back or draft 404 anywhere in the run.
    const unauthorized = outcomes.filter((o) => o.status === 401 || o.status === 403 || o.status === 404);
    assert.deepEqual(unauthorized.map((o) => [o.op, o.status]), [], 'sessions lost or writes not readable');
    for (const u of users) for (const s of sidecars) {
      const res = await fetch(`${direct(s)}/api/collections/posts/records/${u.draft}`, { headers: { authorization: u.key } });
      await res.arrayBuffer();
      assert.equal(res.status, 200, `${u.email}'s key on ${s.name}`);
    }
    const all = failed();
    assert.deepEqual(all.filter((o) => !inFlightAtKill.includes(o)).map((o) => [o.op, o.status || o.error]), [], 'failed requests not in flight at the kill');
    const byServer: Record<string, number> = {};
    for (const o of outcomes) byServer[o.server] = (byServer[o.server] ?? 0) + 1;
    log(`done: ${outcomes.length} requests (${JSON.stringify(byServer)}), ${created.length} acknowledged creates all in PocketBase, ${all.length} failed (all in flight at the kill)`);
  } finally {
    running = false;
    await load;
    await haproxy?.stop();
    for (const s of sidecars) await s.proc?.stop().catch(() => {});
    for (const p of proxies) await p.stop();
    await pb.destroy();
    rmSync(work, { recursive: true, force: true });
  }
});

/** A drained server's checks pass again: HAProxy shows it DRAIN with a passing check (L7OK). */
async function waitChecksUp(hp: Haproxy, name: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const s = (await hp.servers()).find((x) => x.name === name)!;
    if (s.status === 'DRAIN' && s.checkStatus === 'L7OK') return;
    if (Date.now() > until) throw new Error(`${name}: checks not passing (${s.status}, ${s.checkStatus})`);
    await sleep(100);
  }
}
