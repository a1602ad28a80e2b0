// Read-your-writes and monotonic reads without a timeout hole: a writer whose replica is slowed always
// reads its own writes (the replica answers once it has caught up, PocketBase when it cannot in time),
// and a user alternating between two sidecars, one of them paused, never reads an older state than one
// it has seen. PocketBase's change-log reads are slowed or held by an HTTP proxy in front of it.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { Redis } from 'ioredis';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const REDIS_URL = process.env.HAPTA_TEST_REDIS_URL_CONSISTENCY ?? 'redis://127.0.0.1:6379/11';

/** An HTTP proxy to PocketBase that delays (or, paused, holds) reads of the change log. */
class LogDelay {
  delayMs = 0;
  paused = false;
  /**
   * Set: the next read of the log with records runs this write between PocketBase's read of the rows
   * and its read of the records (as a write committing during the hook's read would), then holds
   * further reads. The sidecar gets the rows as they were and the records as they became.
   */
  writeDuringRead: (() => Promise<void>) | null = null;
  mixedServed: Promise<void> | null = null;
  private held: Array<() => void> = [];
  private server!: Server;
  url = '';

  constructor(private readonly target: string) {}

  async start(): Promise<void> {
    const t = new URL(this.target);
    this.server = createServer((req, res) => {
      const go = () => {
        const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      };
      if (!req.url?.startsWith('/api/hapta-sync/changes')) return go();
      // A held read is judged again when it is let go (it may then be the one that mixes).
      const handle = (): void => {
        if (this.paused) return void this.held.push(handle);
        if (this.writeDuringRead && req.url!.includes('records=1')) {
          const write = this.writeDuringRead;
          this.writeDuringRead = null;
          this.mixedServed = this.mixed(req.url!, req.headers.authorization ?? '', write, res);
          return;
        }
        setTimeout(go, this.delayMs);
      };
      handle();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  private async mixed(path: string, authorization: string, write: () => Promise<void>, res: import('node:http').ServerResponse): Promise<void> {
    const get = async (p: string) => (await (await fetch(this.target + p, { headers: { authorization } })).json()) as any;
    const rows = await get(path.replace('records=1', 'records=0'));
    await write();
    const later = await get(path);
    const named = new Set<string>(rows.changes.map((c: { rid: string }) => c.rid));
    const records: Record<string, { rowids: number[]; records: Array<{ id: string }> }> = {};
    for (const [coll, page] of Object.entries(later.records as typeof records)) {
      const keep = page.records.map((r, i) => [r, page.rowids[i]] as const).filter(([r]) => named.has(r.id));
      records[coll] = { records: keep.map(([r]) => r), rowids: keep.map(([, id]) => id) };
    }
    this.paused = true;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...rows, records, upper: later.upper }));
  }

  resume(): void {
    this.paused = false;
    for (const go of this.held.splice(0)) go();
  }

  close(): void {
    this.resume();
    this.server.closeAllConnections();
    this.server.close();
  }
}

async function call(base: string, method: string, path: string, key: string, body?: unknown): Promise<{ status: number; body: any; position: string | null }> {
  const res = await fetch(base + path, {
    method, headers: { authorization: key, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, position: res.headers.get('x-hapta-position') };
}

async function signIn(base: string, email: string): Promise<{ key: string; id: string }> {
  const r = await fetch(`${base}/api/collections/users/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: email, password: USER_PASSWORD }),
  });
  const b = (await r.json()) as { token: string; record: { id: string } };
  return { key: b.token, id: b.record.id };
}

const posts = '/api/collections/posts/records';

describe('read-your-writes and monotonic reads', () => {
  let pb: PocketBase;
  let su: string;
  let seeded: Seeded;
  const proxies: LogDelay[] = [];
  const sidecars: TestSidecar[] = [];

  before(async () => {
    const redis = new Redis(REDIS_URL);
    await redis.flushdb();
    await redis.quit();
    pb = await startPocketBase();
    su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 3, posts: 4, comments: 1, likes: 1, follows: 1 }, 12);
  });
  after(async () => {
    for (const s of sidecars) await s.destroy().catch(() => {});
    for (const p of proxies) p.close();
    await pb?.destroy();
  });

  async function sidecarBehind(proxy: LogDelay, overrides: Parameters<typeof startSidecar>[1]): Promise<TestSidecar> {
    await proxy.start();
    proxies.push(proxy);
    // The change-log realtime announcements and the poll are off: only reads of the log move the replica.
    const s = await startSidecar({ url: proxy.url, migrationsDir: pb.migrationsDir }, {
      rateLimits: { enabled: false }, ...overrides,
      replica: { pollIntervalMs: 60_000, watchMigrations: false, ...overrides?.replica },
    });
    sidecars.push(s);
    await waitForSync(s);
    return s;
  }

  test('a write\'s position is the log head read behind it on its own connection, and only once the write is done', async () => {
    // Straight to PocketBase (no proxy): every head is read on the write's connection.
    const s = await startSidecar({ url: pb.url, migrationsDir: pb.migrationsDir }, { rateLimits: { enabled: false }, replica: { consumerId: 'paired', watchMigrations: false } });
    sidecars.push(s);
    await waitForSync(s);
    const me = await signIn(s.url, seeded.users[1].email);
    const head = async () => (await (await fetch(`${pb.url}/api/hapta-sync/head`, { headers: { authorization: su } })).json()) as { head: number; instance: string };
    const before = s.consistency.pairedHeads;
    for (let i = 0; i < 5; i++) {
      const created = await call(s.url, 'POST', posts, me.key, { title: `paired ${i}`, author: me.id, published: true });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const now = await head();
      assert.equal(created.position, `${now.head}@${now.instance}`, 'the position is the head right after the write');
      const seen = await call(s.url, 'GET', `${posts}/${created.body.id}`, me.key);
      assert.equal(seen.body?.title, `paired ${i}`, 'read at once, the write is there');
    }
    assert.equal(s.consistency.pairedHeads - before, 5, 'no head was asked for after an answer');
    assert.equal(s.consistency.pairedHeadsMissed, 0);

    // PocketBase's side: a head naming a pair answers once, and only after that pair's write returned.
    const pair = 'ab'.repeat(12);
    const headOf = (p: string) => fetch(`${pb.url}/api/hapta-sync/head?pair=${p}`, { headers: { authorization: su } });
    assert.equal((await headOf(pair)).status, 409, 'no write named the pair yet');
    const w = await fetch(`${pb.url}${posts}`, {
      method: 'POST', headers: { authorization: su, 'content-type': 'application/json', 'x-hapta-pair': pair }, body: JSON.stringify({ title: 'direct', author: me.id }),
    });
    assert.equal(w.status, 200);
    assert.equal((await headOf(pair)).status, 200, 'after the write');
    assert.equal((await headOf(pair)).status, 409, 'taken once');

    // A client cannot name pairs: its header does not reach PocketBase.
    const forged = 'cd'.repeat(12);
    const res = await fetch(`${s.url}${posts}`, {
      method: 'POST', headers: { authorization: me.key, 'content-type': 'application/json', 'x-hapta-pair': forged }, body: JSON.stringify({ title: 'forged', author: me.id }),
    });
    assert.equal(res.status, 200);
    assert.equal((await headOf(forged)).status, 409, 'the client\'s pair was never noted');
  });

  test('a writer with a slowed replica always reads its own writes, from the replica when it can', async () => {
    const slow = new LogDelay(pb.url);
    slow.delayMs = 250;
    const patient = await sidecarBehind(slow, { consistency: { readWaitMs: 3000 }, replica: { consumerId: 'patient' } });
    const hurried = new LogDelay(pb.url);
    hurried.delayMs = 250;
    const impatient = await sidecarBehind(hurried, { consistency: { readWaitMs: 20 }, replica: { consumerId: 'impatient' } });
    for (const [name, s] of [['patient', patient], ['impatient', impatient]] as const) {
      const me = await signIn(s.url, seeded.users[0].email);
      const before = await metricSum(s.metrics.readFallbacks, { reason: 'replica_behind' });
      let stale = 0;
      for (let i = 0; i < 6; i++) {
        const created = await call(s.url, 'POST', posts, me.key, { title: `${name} ${i}`, author: me.id, published: i % 2 === 0 });
        assert.equal(created.status, 200, JSON.stringify(created.body));
        assert.match(created.position ?? '', /^\d+@/, 'a write answers with its position');
        const id = created.body.id as string;
        if ((await call(s.url, 'GET', `${posts}/${id}`, me.key)).body?.title !== `${name} ${i}`) stale++;
        await call(s.url, 'PATCH', `${posts}/${id}`, me.key, { title: `${name} ${i}!` });
        const list = await call(s.url, 'GET', `${posts}?perPage=200&filter=${encodeURIComponent(`id="${id}"`)}`, me.key);
        if (list.body?.items?.[0]?.title !== `${name} ${i}!`) stale++;
        await call(s.url, 'DELETE', `${posts}/${id}`, me.key);
        if ((await call(s.url, 'GET', `${posts}/${id}`, me.key)).status !== 404) stale++;
      }
      assert.equal(stale, 0, `${name}: every read saw the caller's own last write`);
      const fellBack = (await metricSum(s.metrics.readFallbacks, { reason: 'replica_behind' })) - before;
      if (name === 'patient') assert.equal(fellBack, 0, 'the replica caught up within the bound: no read went to PocketBase');
      else assert.ok(fellBack >= 6, `reads the replica could not answer in time went to PocketBase, counted (${fellBack})`);
    }
  });

  test('a record newer than the replica\'s position (written during a log read) is never shown older elsewhere', async () => {
    const shared = { redisUrl: REDIS_URL, consistency: { readWaitMs: 300 } };
    const toA = new LogDelay(pb.url);
    const toB = new LogDelay(pb.url);
    const a = await sidecarBehind(toA, { ...shared, replica: { consumerId: 'mixed_a' } });
    const b = await sidecarBehind(toB, { ...shared, replica: { consumerId: 'mixed_b' } });
    const me = await signIn(a.url, seeded.users[2].email);
    const target = seeded.posts[1];
    await api(pb.url, `${posts}/${target}`, { method: 'PATCH', token: su, body: { likes: 0, published: true } });
    await waitForSync(a);
    await waitForSync(b);
    // b follows the log up to the first write (likes 5), then stops.
    toA.paused = true;
    await api(pb.url, `${posts}/${target}`, { method: 'PATCH', token: su, body: { likes: 5 } });
    await waitForSync(b);
    toB.paused = true;
    const fallbacks = await metricSum(b.metrics.readFallbacks, { reason: 'replica_behind' });
    // a reads the rows naming the first write while the second one (likes 7) commits before the records.
    toA.writeDuringRead = async () => {
      await api(pb.url, `${posts}/${target}`, { method: 'PATCH', token: su, body: { likes: 7 } });
    };
    toA.resume();
    a.replicator.announced(null); // a read of the log now, whether or not one was held
    for (let i = 0; i < 200 && !toA.mixedServed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(toA.mixedServed, 'a read the log');
    await toA.mixedServed;
    for (let i = 0; i < 200 && a.replicator.seq < b.replicator.seq; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(a.replicator.seq, b.replicator.seq, 'both replicas are at the first write');
    assert.ok(a.replicator.upper > a.replicator.seq, 'a holds a record newer than its position');
    const viaA = await call(a.url, 'GET', `${posts}/${target}`, me.key);
    assert.equal(viaA.body.likes, 7, 'a shows the record as PocketBase returned it');
    assert.equal(Number(viaA.position?.split('@')[0]), a.replicator.upper, 'the position a reports bounds what it showed');
    const viaB = await call(b.url, 'GET', `${posts}/${target}`, me.key);
    assert.equal(viaB.body.likes, 7, 'b, at the same position, does not show the older state');
    assert.ok((await metricSum(b.metrics.readFallbacks, { reason: 'replica_behind' })) > fallbacks, 'b answered through PocketBase, counted');
    toA.resume();
    toB.resume();
  });

  test('a user alternating between two sidecars, one paused, never reads an older state', async () => {
    const shared = { redisUrl: REDIS_URL, consistency: { readWaitMs: 300 } };
    const pa = new LogDelay(pb.url);
    const pbB = new LogDelay(pb.url);
    const a = await sidecarBehind(pa, { ...shared, replica: { consumerId: 'a', pollIntervalMs: 100 } });
    const b = await sidecarBehind(pbB, { ...shared, replica: { consumerId: 'b', pollIntervalMs: 100 } });
    const me = await signIn(a.url, seeded.users[1].email);
    const target = seeded.posts.find((_, i) => i === 0)!;
    await api(pb.url, `${posts}/${target}`, { method: 'PATCH', token: su, body: { likes: 0, published: true } });
    // Another writer moves the record forward all the time, straight at PocketBase.
    let writing = true;
    const writer = (async () => {
      for (let n = 1; writing; n++) {
        await api(pb.url, `${posts}/${target}`, { method: 'PATCH', token: su, body: { likes: n } });
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    const seen: number[] = [];
    const bBefore = await metricSum(b.metrics.readFallbacks, { reason: 'replica_behind' });
    for (let i = 0; i < 40; i++) {
      if (i === 10) pbB.paused = true; // b stops following the log
      if (i === 30) pbB.resume();
      const via = i % 2 === 0 ? a : b;
      const r = await call(via.url, 'GET', `${posts}/${target}`, me.key);
      assert.equal(r.status, 200);
      seen.push(r.body.likes as number);
      // The user's own write through one sidecar is seen through the other at once.
      if (i === 20) {
        const mine = await call(a.url, 'POST', posts, me.key, { title: 'seen everywhere', author: me.id, published: false });
        const there = await call(b.url, 'GET', `${posts}/${mine.body.id}`, me.key);
        assert.equal(there.body?.title, 'seen everywhere', 'a write through a is read through the paused b');
      }
    }
    writing = false;
    await writer;
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `read ${i} went back in time: ${seen.join(',')}`);
    assert.ok(seen[seen.length - 1] > seen[0], 'the record moved during the run');
    const fellBack = (await metricSum(b.metrics.readFallbacks, { reason: 'replica_behind' })) - bBefore;
    assert.ok(fellBack > 0, `the paused sidecar answered through PocketBase (${fellBack} reads), never from its stale replica`);
  });
});
