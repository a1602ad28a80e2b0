// Feed benchmark: seeds a replica file directly (reference collections' definitions from a PocketBase
// started once, then bulk inserts), attaches the FeedIndex (counters, FTS), serves the feed routes over
// it and measures p50/p99 per profile and page at 50 connections (autocannon in a child process) and the
// server's event-loop delay. Sizes: --users --posts --likes --follows --comments (defaults: 100k users, 1M posts, 10M likes, 1M follows);
// --q sets the search text (default "river harbor": both words occur together in a quarter of the posts);
// --no-answer-cache makes every page request run its page query (the replica never changes here, so kept
// pages would otherwise answer nearly every request of a shared ranking).
import autocannon from 'autocannon';
import Koa from 'koa';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { REFERENCE_FEEDS } from '../config.js';
import { tsLoader } from '../lib/runtime.js';
import { FeedIndex } from '../replica/feed-index.js';
import type { Replicator } from '../replica/replicator.js';
import { encodeRecord, tableSpec, type PbCollection } from '../replica/schema.js';
import { ReplicaStore } from '../replica/store.js';
import { createFeedRoutes, feedIndexSpec, QueryPool, type WindowStats } from '../sidecar/feeds/index.js';
import type { Requester } from '../sidecar/reads/index.js';
import { api, superuserToken } from '../test/harness/dump.js';
import { startPocketBase } from '../test/harness/pocketbase.js';
import { makeId, rng } from '../test/harness/seed.js';
import { arg, saveResult, summary, table } from './stats.js';

const CONNECTIONS = 50;

if (process.argv[2] === '--load') {
  const spec = JSON.parse(process.argv[3]) as { url: string; headers: Record<string, string>; duration: number };
  const r = await autocannon({ url: spec.url, headers: spec.headers, connections: CONNECTIONS, duration: spec.duration });
  process.stdout.write(JSON.stringify({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx, timeouts: r.timeouts }));
  process.exit(0);
}

const SIZES = { users: arg('users', 100_000), posts: arg('posts', 1_000_000), likes: arg('likes', 10_000_000), follows: arg('follows', 1_000_000), comments: arg('comments', 0) };
const DURATION = arg('duration', 5);
const qIndex = process.argv.indexOf('--q');
const SEARCH = qIndex === -1 ? 'river harbor' : process.argv[qIndex + 1];

async function definitions(): Promise<PbCollection[]> {
  const pb = await startPocketBase();
  try {
    const token = await superuserToken(pb.url);
    const res = await api(pb.url, '/api/collections?perPage=200', { token });
    return (res.items as PbCollection[]).filter((c) => ['users', 'posts', 'comments', 'likes', 'follows', 'blocks'].includes(c.name));
  } finally {
    await pb.destroy();
  }
}

const pbDate = (ms: number) => new Date(ms).toISOString().replace('T', ' ');
let SEED_SECONDS = 0;

async function seed(path: string): Promise<{ store: ReplicaStore; users: string[] }> {
  const t00 = Date.now();
  const defs = await definitions();
  const store = new ReplicaStore(path);
  store.initialise('bench', { seq: 0, anchor: null });
  const rand = rng(5);
  const now = Date.now();
  const users = Array.from({ length: SIZES.users }, () => makeId(rand));
  const posts = Array.from({ length: SIZES.posts }, () => makeId(rand));
  const postTime = (i: number) => now - Math.floor(((SIZES.posts - i) / SIZES.posts) * 30 * 86400_000);
  const skew = (n: number) => Math.floor(n * rand() ** 3);
  const words = ['zebra', 'river', 'sunset', 'garden', 'engine', 'market', 'violin', 'harbor'];
  const rows: Record<string, (i: number) => Record<string, unknown> | null> = {
    users: (i) => ({ id: users[i], email: `u${i}@example.com`, emailVisibility: false, verified: true, name: `User ${i}`, created: pbDate(now - 90 * 86400_000), updated: pbDate(now) }),
    posts: (i) => ({
      id: posts[i], title: `Post ${i} ${words[i % 8]}`, body: `<p>${words[(i * 7) % 8]} ${words[(i * 3) % 8]} body ${i}</p>`, author: users[skew(users.length)],
      published: i % 5 !== 0, tags: [], category: 'a', likes: 0, coauthors: [], created: pbDate(postTime(i)), updated: pbDate(postTime(i)),
    }),
    likes: (i) => {
      const p = skew(posts.length);
      return { id: `l${i.toString(36).padStart(14, '0')}`, post: posts[SIZES.posts - 1 - p], user: users[i % users.length], created: pbDate(Math.min(now, postTime(SIZES.posts - 1 - p) + rand() * 7 * 86400_000)) };
    },
    follows: (i) => ({ id: `f${i.toString(36).padStart(14, '0')}`, follower: users[i % users.length], following: users[skew(users.length)], created: pbDate(now) }),
    comments: (i) => ({ id: `c${i.toString(36).padStart(14, '0')}`, post: posts[SIZES.posts - 1 - skew(posts.length)], author: users[i % users.length], text: `c${i}`, created: pbDate(now - rand() * 86400_000), updated: pbDate(now) }),
    blocks: () => null,
  };
  const counts: Record<string, number> = { ...SIZES, blocks: 0 };
  for (const c of defs) {
    const t0 = Date.now();
    const spec = tableSpec(c);
    const build = store.createBuildTable(c);
    const cols = [...spec.columns.map((x) => `"${x.name}"`), '"_pb_rowid"'];
    const stmt = store.db.prepare(`INSERT INTO "${build}" (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
    const n = counts[c.name] ?? 0;
    for (let start = 0; start < n; start += 200_000) {
      store.db.transaction(() => {
        for (let i = start; i < Math.min(n, start + 200_000); i++) {
          const r = rows[c.name](i);
          if (r) stmt.run(encodeRecord(spec, r, i + 1));
        }
      })();
    }
    store.publishTable(c, build);
    console.error(`seeded ${c.name}: ${n} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const t1 = Date.now();
  new FeedIndex(store, feedIndexSpec(REFERENCE_FEEDS)).attach();
  SEED_SECONDS = (Date.now() - t00) / 1000;
  console.error(`feed index built in ${((Date.now() - t1) / 1000).toFixed(1)} s; seeding took ${SEED_SECONDS.toFixed(1)} s in all`);
  return { store, users };
}

async function load(url: string, headers: Record<string, string>, duration: number): Promise<{ rps: number; p50: number; p99: number; errors: number; non2xx: number }> {
  const child = spawn(process.execPath, [...tsLoader, fileURLToPath(import.meta.url), '--load', JSON.stringify({ url, headers, duration })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((res) => child.on('exit', res));
  return JSON.parse(out);
}

const dir = mkdtempSync(join(tmpdir(), 'hapta-bench-feeds-'));
const { store, users } = await seed(join(dir, 'replica.db'));
if (process.argv.includes('--seed-only')) { console.log(store.path); process.exit(0); }
const me = store.db.prepare('SELECT * FROM users WHERE id = ?').get(users[0]) as Record<string, unknown>;
const usersId = store.collections().find((c) => c.name === 'users')!.id;
const pool = new QueryPool(2);
pool.setReplica(store.path);
// The replica does not change during the run; the routes subscribe to applied batches all the same.
const replicator = { store, onApplied: () => () => {} } as unknown as Replicator;
// --no-answer-cache: every page request runs its page query and renders it (answers.ts keeps none).
const ANSWER_CACHE = !process.argv.includes('--no-answer-cache');
const identify = async (ctx: Koa.Context): Promise<Requester> => (ctx.get('x-test-auth') ? { kind: 'record', collectionId: usersId, record: me } : { kind: 'anonymous' });

/** Every ranking the routes ran, per profile: how it was obtained (window.ts) and how long it took. */
const rankings = new Map<string, { stats: WindowStats; ms: number }[]>();
const onRanked = (profile: string, stats: WindowStats, ms: number) => {
  let list = rankings.get(profile);
  if (!list) rankings.set(profile, (list = []));
  list.push({ stats, ms });
};

async function serve(reuseMs: number): Promise<{ url: string; close(): void }> {
  const app = new Koa();
  app.use(createFeedRoutes({ replicator, profiles: REFERENCE_FEEDS, identify, pool, reuseMs, onRanked, answerCacheBytes: ANSWER_CACHE ? undefined : 0 }));
  const server = createServer(app.callback());
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => { server.closeAllConnections(); server.close(); } };
}

const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
const results: (string | number)[][] = [];
const cases: [string, string][] = [['trending', ''], ['latest', ''], ['following', ''], ['search', `q=${encodeURIComponent(SEARCH)}`]];
for (const reuseMs of [2000, 0]) {
  const srv = await serve(reuseMs);
  for (const [profile, extra] of cases) {
    for (const page of [1, 5]) {
      if (reuseMs === 0 && page === 5) continue;
      const url = `${srv.url}/api/hapta/feeds/${profile}?perPage=20&page=${page}${extra ? `&${extra}` : ''}`;
      const probe = await fetch(url, { headers: { 'x-test-auth': '1' } });
      if (probe.status !== 200) throw new Error(`${url}: ${probe.status} ${await probe.text()}`);
      eld.reset();
      const r = await load(url, { 'x-test-auth': '1' }, DURATION);
      results.push([reuseMs ? 'shared 2 s' : 'every request', profile, page, Math.round(r.rps), r.p50, r.p99, r.errors + r.non2xx, eld.percentile(99) / 1e6, eld.max / 1e6]);
    }
  }
  srv.close();
}
console.log(`sizes: ${JSON.stringify(SIZES)}; search q=${JSON.stringify(SEARCH)}; page answers ${ANSWER_CACHE ? 'kept until the replica changes' : 'not kept'}; ${CONNECTIONS} connections, ${DURATION} s per row, signed-in user (follows, blocks); ranking cap 1000`);
console.log(table(['ranking', 'profile', 'page', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'loop delay p99 ms', 'loop delay max ms'], results));
// How the rankings were obtained: candidate windows accepted (first try or widened), or every item scored.
const windowRows: (string | number)[][] = [];
for (const [profile, list] of rankings) {
  const ms = summary(list.map((r) => r.ms));
  const win = list.filter((r) => r.stats.result === 'window');
  const sizes = [...new Set(win.map((r) => `${r.stats.m}/${r.stats.k}`))].join(', ') || '-';
  windowRows.push([profile, list.length, win.filter((r) => r.stats.attempts === 1).length, win.filter((r) => r.stats.attempts > 1).length,
    list.length - win.length, sizes, ms.p50, ms.p99]);
}
console.log(table(['profile', 'rankings', 'window, 1st try', 'window, widened', 'full', 'accepted m/K', 'ranking p50 ms (with queue)', 'ranking p99 ms (with queue)'], windowRows));
console.log(`saved ${saveResult('feeds', {
  sizes: SIZES, search: SEARCH, answerCache: ANSWER_CACHE, connections: CONNECTIONS, durationSeconds: DURATION, seedSeconds: SEED_SECONDS,
  columns: ['ranking', 'profile', 'page', 'rps', 'p50', 'p99', 'errors', 'loopDelayP99', 'loopDelayMax'], rows: results,
  windowColumns: ['profile', 'rankings', 'windowFirstTry', 'windowWidened', 'full', 'acceptedMK', 'rankingP50', 'rankingP99'], windowRows,
  command: `npx tsx bench/feeds.ts ${process.argv.slice(2).join(' ')}`,
})}`);
// Requests still queued when the load generator stopped are abandoned with the pool.
process.on('unhandledRejection', () => {});
await pool.close().catch(() => {});
store.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
