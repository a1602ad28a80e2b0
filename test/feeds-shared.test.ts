// Shared rankings and bounded searches give exactly the requester's own ranking: against a real
// PocketBase with the reference schema and randomised records (dates set through SQL to make ties:
// groups of posts with one date, the same words and no interactions, empty and future dates), every
// page, cursor walk, totalItems and explained score of the feed routes equals the ranking that scores
// every item the requester may see (feed-sql.ts: rankSql, run here on the replica at the same frozen
// instant). Random profiles (requester-free ones, which share, and a following boost, which cannot),
// requesters (anonymous, authors of drafts, blockers, followers, a superuser), filters, search texts,
// page sizes and window sizes; served with rankings shared and filtered per requester, with shared
// rankings too shallow for some requesters (they are ranked alone), and never shared. Searches rank in
// a lane of their own: a busy search lane does not hold up the feeds.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import Koa from 'koa';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { REFERENCE_FEEDS, type FeedProfile } from '../config.js';
import type { ReplicaStore } from '../replica/store.js';
import { rankSql, type FeedQuery, type RankPlan } from '../sidecar/feeds/feed-sql.js';
import { createFeedRoutes, QueryPool, type FeedRoutesOptions, type Lane } from '../sidecar/feeds/index.js';
import { ftsMatch, searchTokens } from '../sidecar/feeds/search-text.js';
import { catalogOf } from '../sidecar/reads/catalog.js';
import type { Requester } from '../sidecar/reads/index.js';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { batch, makeId, rng, seedReference } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const follows = { collection: 'follows', follower: 'follower', following: 'following', authorField: 'author' };
const blocks = REFERENCE_FEEDS.trending.exclude!;

/** The reference profiles and others of other shapes (counters served by the reference ones). */
const PROFILES: Record<string, FeedProfile> = {
  ...REFERENCE_FEEDS,
  // Gravity over an exact count and a decayed one.
  popular: {
    collection: 'posts', freshness: { field: 'created', weight: 2, gravity: 1.2 },
    interactions: [
      { collection: 'likes', field: 'post', weight: 0.5 },
      { collection: 'comments', field: 'post', weight: 1, timeField: 'created', halfLifeHours: 24 },
    ],
    exclude: blocks,
  },
  // A search with gravity and a strong decayed counter: relevance windows bound it through the counters.
  buzz: {
    collection: 'posts', requireQuery: true, text: { fields: ['title', 'body'], weight: 2 },
    freshness: { field: 'created', weight: 1, gravity: 1.5 },
    interactions: [{ collection: 'likes', field: 'post', weight: 0.5, timeField: 'created', halfLifeHours: 24 }],
    exclude: blocks,
  },
  // A following boost: the score depends on who asks, so every requester is ranked alone.
  boosted: {
    collection: 'posts', freshness: { field: 'created', weight: 1, halfLifeHours: 6 },
    interactions: [{ collection: 'likes', field: 'post', weight: 1, timeField: 'created', halfLifeHours: 24 }],
    following: { ...follows, boost: 3 }, exclude: blocks,
  },
};

/** Words of the posts' texts: a few, so that searches match many posts and bm25 ties. */
const WORDS = ['amber', 'birch', 'cedar', 'dune'];
const FILTERS = ['', 'category = "a"', 'category != "b"', 'author.name ~ "User 1"', 'likes >= 0 && created != ""', 'tags ?= "news"'];
const pbDate = (ms: number) => new Date(ms).toISOString().replace('T', ' ');

interface ServedRoutes {
  url: string;
  /**
   * Rankings run, by lane, those ranked for a requester alone (their SQL has requester clauses), the
   * deepest shared one, and how each profile's were obtained (`profile:window`, `profile:widened`, ...);
   * requester filters, those over part of a shared ranking, and those that did not count again.
   */
  calls: { rank: number; alone: number; filter: number; partial: number; further: number; deepest: number; lanes: Record<Lane, number>; results: Record<string, number> };
  close(): Promise<void>;
}

describe('shared rankings and bounded searches', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let store: ReplicaStore;
  let pool: QueryPool;
  let users: string[] = [];
  let usersId = '';
  const servers: ServedRoutes[] = [];
  let NOW = 0;

  before(async () => {
    pb = await startPocketBase();
    const token = await superuserToken(pb.url);
    const seeded = await seedReference(pb.url, token, { users: 14, posts: 0, comments: 0, likes: 0, follows: 0 }, 77);
    users = seeded.users.map((u) => u.id);
    const rand = rng(2024);
    const pick = <T>(a: T[]) => a[Math.floor(rand() * a.length)];
    const text = () => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => WORDS[Math.floor(WORDS.length * rand() ** 1.5)]).join(' ');
    // Posts: authors skewed toward the first users, a fifth drafts; texts from few words (many identical).
    // Every 13th post is one of a group that ties everywhere: the same words, date and no interactions.
    const tiedGroup = (i: number) => i % 13 === 0;
    const posts = Array.from({ length: 700 }, (_, i) => ({
      id: makeId(rand), title: tiedGroup(i) ? 'cedar dune' : i % 7 === 0 ? 'amber birch' : text(), body: tiedGroup(i) || rand() < 0.5 ? '' : `<p>${text()}</p>`,
      author: users[Math.floor(users.length * rand() ** 2)], published: rand() < 0.8, tags: rand() < 0.4 ? [pick(['news', 'tech'])] : [],
      category: pick(['a', 'b', 'c']), likes: 0,
    }));
    await batch(pb.url, token, posts.map((p) => ({ method: 'POST' as const, url: '/api/collections/posts/records', body: p })));
    const tied = new Set(posts.filter((_p, i) => tiedGroup(i)).map((p) => p.id));
    const others = posts.filter((p) => !tied.has(p.id));
    const likes: { post: string; user: string }[] = [];
    const liked = new Set<string>();
    for (let i = 0; i < 3500; i++) {
      const p = others[Math.floor(others.length * rand() ** 3)].id;
      const u = pick(users);
      if (liked.has(p + u)) continue;
      liked.add(p + u);
      likes.push({ post: p, user: u });
    }
    await batch(pb.url, token, likes.map((l) => ({ method: 'POST' as const, url: '/api/collections/likes/records', body: l })));
    const published = others.filter((p) => p.published);
    await batch(pb.url, token, Array.from({ length: 300 }, (_, i) => ({
      method: 'POST' as const, url: '/api/collections/comments/records',
      body: { post: published[Math.floor(published.length * rand() ** 2)].id, author: pick(users), text: `c${i}` },
    })));
    const pairs = new Set<string>();
    const follow: { follower: string; following: string }[] = [];
    for (let i = 0; i < 40; i++) {
      const [a, b] = [pick(users), users[Math.floor(users.length * rand() ** 2)]];
      if (a === b || pairs.has(a + b)) continue;
      pairs.add(a + b);
      follow.push({ follower: a, following: b });
    }
    await batch(pb.url, token, follow.map((f) => ({ method: 'POST' as const, url: '/api/collections/follows/records', body: f })));
    await batch(pb.url, token, [[0, 1], [2, 0], [3, 4], [3, 5]].map(([a, b]) => ({
      method: 'POST' as const, url: '/api/collections/blocks/records', body: { blocker: users[a], blocked: users[b] },
    })));

    // Dates through SQL (PocketBase sets autodates itself): tied groups, spread, empty and future dates;
    // interactions within the last days. The change log's triggers carry these writes to the replica.
    const now = Date.now();
    const ties = [now - 9 * DAY, now - 2 * DAY, now - 3 * HOUR].map(pbDate);
    const db = new Database(join(pb.dataDir, 'data.db'));
    db.pragma('busy_timeout = 10000');
    db.transaction(() => {
      const setPost = db.prepare('UPDATE posts SET created = ? WHERE id = ?');
      for (const p of posts) {
        const r = rand();
        const created = tied.has(p.id) ? ties[0] : r < 0.04 ? '' : r < 0.07 ? pbDate(now + rand() * HOUR) : r < 0.25 ? pick(ties) : pbDate(now - Math.floor(30 * DAY * rand() ** 3));
        setPost.run(created, p.id);
      }
      const setTime = (table: string) => {
        const ids = db.prepare(`SELECT id FROM ${table}`).all() as { id: string }[];
        const stmt = db.prepare(`UPDATE ${table} SET created = ? WHERE id = ?`);
        for (const { id } of ids) stmt.run(pbDate(now - Math.floor(4 * DAY * rand() ** 2)), id);
      };
      setTime('likes');
      setTime('comments');
    })();
    db.close();

    sidecar = await startSidecar(pb, { rateLimits: { enabled: false }, feeds: PROFILES });
    await waitForSync(sidecar, 60_000);
    await sidecar.replicator.syncAfterNow();
    store = sidecar.replicator.store!;
    usersId = catalogOf(store).find('users')!.c.id;
    pool = new QueryPool(2, 1);
    pool.setReplica(store.path);
    NOW = Date.now();
  });

  after(async () => {
    for (const s of servers) await s.close();
    await pool?.close();
    await sidecar?.destroy();
    await pb?.destroy();
  });

  function requesterOf(who: string): Requester {
    if (who === '') return { kind: 'anonymous' };
    if (who === 'su') return { kind: 'superuser', record: { id: 'su0000000000000' } };
    return { kind: 'record', collectionId: usersId, record: store.record(usersId, who)! };
  }

  /** The feed routes over the sidecar's replica, at the frozen instant NOW, counting what they ask of the pool. */
  async function serve(opts: Partial<FeedRoutesOptions>): Promise<ServedRoutes> {
    const calls = { rank: 0, alone: 0, filter: 0, partial: 0, further: 0, deepest: 0, lanes: { feeds: 0, search: 0, reads: 0 } as Record<Lane, number>, results: {} as Record<string, number> };
    const counted = {
      get ready() { return pool.ready; },
      all: (sql: string, params: unknown[], lane?: Lane) => pool.all(sql, params, lane),
      page: (task: Parameters<QueryPool['page']>[0], lane: Lane) => pool.page(task, lane),
      rankFiltered: (profile: FeedProfile, plan: RankPlan, window: unknown, filter: unknown, lane: Lane = 'feeds') => {
        calls.rank++;
        calls.lanes[lane]++;
        // The requester's clauses: the list rule (anonymous, users) or the exclusions (anyone signed in).
        if (/"published"|"_hapta_x0"/.test(plan.full.sql)) calls.alone++;
        else calls.deepest = Math.max(calls.deepest, plan.cap);
        if (filter) calls.filter++;
        return pool.rankFiltered(profile, plan, window as never, filter as never, lane);
      },
      filter: (task: Parameters<QueryPool['filter']>[0], lane?: Lane) => {
        calls.filter++;
        // The items filtered are a prefix of the shared ranking (a view of its rowids): shorter than it,
        // and without the count when a filter of the same requester already counted.
        if (task.rids.length < task.rids.buffer.byteLength / Float64Array.BYTES_PER_ELEMENT) calls.partial++;
        if (!task.count) calls.further++;
        return pool.filter(task, lane);
      },
    } as unknown as QueryPool;
    const app = new Koa();
    app.use(createFeedRoutes({
      replicator: sidecar.replicator, profiles: PROFILES, pool: counted, clock: () => NOW,
      identify: async (ctx) => requesterOf(ctx.get('x-who')),
      onRanked: (name, st) => {
        const key = `${name}:${st.result === 'window' ? (st.attempts > 1 ? 'widened' : 'window') : st.attempts > 0 ? 'gave_up' : 'full'}`;
        calls.results[key] = (calls.results[key] ?? 0) + 1;
      },
      ...opts,
    }));
    const server: Server = createServer(app.callback());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const s: ServedRoutes = {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls,
      close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
    };
    servers.push(s);
    return s;
  }

  async function get(s: ServedRoutes, profile: string, who: string, params: Record<string, string>): Promise<any> {
    const res = await fetch(`${s.url}/api/hapta/feeds/${profile}?${new URLSearchParams(params)}`, { headers: { 'x-who': who } });
    const body = await res.json();
    assert.equal(res.status, 200, `${profile} ${JSON.stringify(params)} as ${who || 'anon'}: ${JSON.stringify(body)}`);
    return body;
  }

  /** The requester's own ranking: every item they may see scored, `cap` kept (rankSql on the replica). */
  function reference(profile: string, who: string, filter: string, q: string | null, cap: number): Record<string, unknown>[] {
    const p = PROFILES[profile];
    const catalog = catalogOf(store);
    const requester = requesterOf(who);
    const fq: FeedQuery = {
      profile: p, catalog, coll: catalog.find(p.collection)!, superuser: requester.kind === 'superuser', filter,
      match: q !== null && p.text ? ftsMatch(searchTokens(q)) : null, me: requester.kind === 'anonymous' ? null : String(requester.record.id),
      info: { context: 'default', method: 'GET', query: {}, headers: {}, requester },
    };
    const sql = rankSql(fq, NOW, cap);
    return store.db.prepare(sql.sql).all(sql.bindings) as Record<string, unknown>[];
  }

  /** Ties among the scores a page boundary of `perPage` cuts through. */
  function tiesCut(ref: Record<string, unknown>[], perPage: number): number {
    let n = 0;
    for (let i = perPage; i < ref.length; i += perPage) if (ref[i - 1].score === ref[i].score) n++;
    return n;
  }

  interface Case { profile: string; who: string; filter: string; q: string | null; perPage: number }

  function cases(seed: number, count: number): Case[] {
    const rand = rng(seed);
    const pick = <T>(a: T[]) => a[Math.floor(rand() * a.length)];
    const out: Case[] = [];
    const everyone = ['', 'su', ...users.slice(0, 8)];
    for (let i = 0; i < count; i++) {
      const profile = pick(Object.keys(PROFILES));
      const text = PROFILES[profile].text !== undefined;
      const q = text ? pick([WORDS[0], WORDS[1], `${WORDS[0]} ${WORDS[1]}`, WORDS[2], WORDS[3], `${WORDS[2]} ${WORDS[3]}`, `${WORDS[2]} nothingmatches`, 'Amber']) : null;
      out.push({ profile, who: pick(everyone), filter: rand() < 0.6 ? '' : pick(FILTERS), q, perPage: pick([1, 4, 7, 20, 45]) });
    }
    return out;
  }

  /** Pages by number and by cursor, totals and (for the superuser) explained scores, against the reference. */
  async function check(s: ServedRoutes, c: Case, cap: number, stats: { ties: number; items: number }): Promise<void> {
    const ref = reference(c.profile, c.who, c.filter, c.q, cap);
    const ids = ref.map((r) => String(r.id));
    const base: Record<string, string> = { perPage: String(c.perPage) };
    if (c.filter) base.filter = c.filter;
    if (c.q !== null) base.q = c.q;
    const label = `${c.profile} q=${c.q} filter=${c.filter} as ${c.who || 'anon'} perPage=${c.perPage}`;
    stats.ties += tiesCut(ref, c.perPage);
    stats.items += ids.length;
    const pages = Math.ceil(ids.length / c.perPage);
    // A page in the middle first (the snapshot is ranked as deep as it needs), then the first one.
    for (const page of [...new Set([Math.max(1, Math.ceil(pages / 2)), 1, pages + 1])]) {
      const body = await get(s, c.profile, c.who, { ...base, page: String(page), ...(c.who === 'su' ? { explain: '1' } : {}) });
      const want = ids.slice((page - 1) * c.perPage, page * c.perPage);
      assert.deepEqual(body.items.map((r: any) => r.id), want, `${label} page ${page}`);
      assert.equal(body.totalItems, ids.length, `${label}: totalItems`);
      assert.equal(body.totalPages, pages, `${label}: totalPages`);
      if (c.who === 'su') {
        for (const [j, r] of ref.slice((page - 1) * c.perPage, page * c.perPage).entries()) {
          const t = body.explain.items[String(r.id)];
          assert.equal(t.score, r.score, `${label}: score of item ${j} of page ${page}`);
          assert.equal(t.ageHours, r.age);
          assert.equal(t.relevance, r.rel);
        }
      }
    }
    // Every page through the cursors (fewer for long walks of small pages).
    if (pages <= 40) {
      const walked: string[] = [];
      let body = await get(s, c.profile, c.who, base);
      for (;;) {
        walked.push(...body.items.map((r: any) => r.id));
        if (!body.cursor) break;
        body = await get(s, c.profile, c.who, { cursor: body.cursor });
      }
      assert.deepEqual(walked, ids, `${label}: cursor walk`);
    }
  }

  test('the data has ties, drafts, blocks and follows to get wrong', () => {
    const latest = reference('latest', '', '', null, 1000);
    assert.ok(tiesCut(latest, 1) >= 20, 'tied dates');
    assert.ok(reference('search', '', '', WORDS[0], 1000).length > 60, 'a broad search');
    assert.ok(tiesCut(reference('search', '', '', WORDS[2], 1000), 1) >= 5, 'a search with tied scores');
    const mine = reference('latest', users[0], '', null, 1000).length;
    assert.ok(mine > latest.length - 20, 'a requester sees their own drafts');
    assert.ok(reference('following', users[0], '', null, 1000).length > 0, 'a requester follows authors');
  });

  test('shared rankings filtered per requester equal each requester\'s own ranking', async () => {
    const s = await serve({ reuseMs: 60_000 });
    const stats = { ties: 0, items: 0 };
    for (const c of cases(1, 90)) await check(s, c, 1000, stats);
    assert.ok(stats.ties > 20, `page boundaries through ties: ${stats.ties}`);
    assert.ok(s.calls.filter > 0, 'requesters were filtered out of shared rankings');
    // Only as much of a shared ranking as the page needs is filtered; more of it when too few pass.
    assert.ok(s.calls.partial > 0 && s.calls.further > 0, JSON.stringify(s.calls));
    // Rankings are shared: far fewer than the first pages asked (each case asks several).
    assert.ok(s.calls.rank - s.calls.alone < 90, JSON.stringify(s.calls));
    assert.ok(s.calls.lanes.search > 0 && s.calls.lanes.feeds > 0, JSON.stringify(s.calls.lanes));
  });

  test('narrow windows and shallow shared rankings (widened, deepened, requesters ranked alone) change nothing', async () => {
    const narrow = await serve({ reuseMs: 60_000, maxItems: 40, maxSharedDepth: 40, window: { m0: 3, k0: 2, l0: 2, maxAttempts: 4 } });
    const wide = await serve({ reuseMs: 60_000, window: { m0: 16, k0: 16, l0: 16 } });
    const stats = { ties: 0, items: 0 };
    for (const c of cases(2, 60)) await check(narrow, c, 40, stats);
    for (const c of cases(3, 60)) await check(wide, c, 1000, stats);
    assert.ok(narrow.calls.alone > 0, `some requesters were ranked alone: ${JSON.stringify(narrow.calls)}`);
    assert.ok(wide.calls.deepest > 200, `a shared ranking was deepened: ${wide.calls.deepest}`);
    // Windows were accepted (searches' relevance windows too), some only widened, and some given up.
    const r = { ...narrow.calls.results };
    for (const [k, n] of Object.entries(wide.calls.results)) r[k] = (r[k] ?? 0) + n;
    const sum = (re: RegExp) => Object.entries(r).filter(([k]) => re.test(k)).reduce((a, [, n]) => a + n, 0);
    for (const re of [/^(search|buzz):(window|widened)$/, /^(trending|popular|following):(window|widened)$/, /:widened$/, /:gave_up$/]) {
      assert.ok(sum(re) > 0, `${re}: ${JSON.stringify(narrow.calls.results)} ${JSON.stringify(wide.calls.results)}`);
    }
    assert.ok(stats.ties > 10, `page boundaries through ties: ${stats.ties}`);
  });

  test('rankings never shared (reuseMs 0) equal the reference too', async () => {
    const s = await serve({ reuseMs: 0 });
    const stats = { ties: 0, items: 0 };
    for (const c of cases(4, 40)) await check(s, c, 1000, stats);
    assert.equal(s.calls.filter, 0);
    assert.equal(s.calls.alone, s.calls.rank, 'every ranking for its requester');
  });

  test('a busy search lane does not hold up the feeds', async () => {
    const s = await serve({ reuseMs: 60_000 });
    // Occupy the one search thread for a while.
    const busy = pool.all('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000000) SELECT count(*) AS n FROM c', [], 'search');
    let busyDone = 0;
    busy.then(() => (busyDone = performance.now()), () => {});
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    for (const [i, profile] of ['trending', 'latest', 'following', 'popular'].entries()) await get(s, profile, users[i], { perPage: '5', filter: 'likes >= 0' });
    const feedsDone = performance.now();
    await busy;
    assert.ok(busyDone > feedsDone, `the feeds waited for the search lane (${(feedsDone - t0).toFixed(0)} ms)`);
  });
});
