// Candidate windows (sidecar/feeds/window.ts) give exactly the full ranking: on replicas built from the
// reference collections' definitions (read from a real PocketBase) and filled with randomized records
// whose dates are chosen here (PocketBase sets autodates itself), every windowed ranking equals the one
// that scores every visible item (same ids, order and terms), across profiles, requesters, filters and
// window sizes, including rankings that must widen or fall back to scoring everything; searches too
// (relevance windows: the best matches by bm25, over texts of few words, so relevance ties and the
// counters decide), and shared rankings (no requester clauses) ranked as deep as asked; and the
// rankings follow the reference score computed here from the raw records.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REFERENCE_FEEDS, type FeedProfile } from '../config.js';
import { FEED_INDEX_LAYOUT, FeedIndex } from '../replica/feed-index.js';
import { encodeRecord, tableSpec, type PbCollection } from '../replica/schema.js';
import { ReplicaStore } from '../replica/store.js';
import { hasWindow, rankPlan, type FeedQuery, type RankPlan } from '../sidecar/feeds/feed-sql.js';
import { feedIndexSpec } from '../sidecar/feeds/profiles.js';
import { windowable } from '../sidecar/feeds/score.js';
import { pack, rankRows, type WindowOptions, type WindowStats } from '../sidecar/feeds/window.js';
import { catalogOf } from '../sidecar/reads/catalog.js';
import type { Requester } from '../sidecar/reads/request.js';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase } from './harness/pocketbase.js';
import { makeId, rng } from './harness/seed.js';
import { ftsMatch, searchTokens } from '../sidecar/feeds/search-text.js';
import { pbTime, referenceScore } from './feeds-env.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const blocks = REFERENCE_FEEDS.trending.exclude!;
const follows = { collection: 'follows', follower: 'follower', following: 'following', authorField: 'author' };

/** The reference profiles that can have windows, and others of the same shape with other terms. */
const PROFILES: Record<string, FeedProfile> = {
  trending: REFERENCE_FEEDS.trending,
  // Half-life freshness: an old item with many recent likes can rank first.
  hot: {
    collection: 'posts', freshness: { field: 'created', weight: 1, halfLifeHours: 6 },
    interactions: [
      { collection: 'likes', field: 'post', weight: 1, timeField: 'created', halfLifeHours: 24 },
      { collection: 'comments', field: 'post', weight: 0.5, timeField: 'created', halfLifeHours: 24 },
    ],
    following: { ...follows, boost: 3 }, exclude: blocks,
  },
  // Gravity over exact counts (no decay), and a boost for followed authors.
  popular: {
    collection: 'posts', freshness: { field: 'created', weight: 2, gravity: 1.2 },
    interactions: [{ collection: 'likes', field: 'post', weight: 0.5 }],
    following: { ...follows, boost: 0.5 }, exclude: blocks,
  },
  // A zero weight: that counter neither adds candidates nor raises the bound.
  quiet: {
    collection: 'posts', freshness: { field: 'created', weight: 1, gravity: 1.8 },
    interactions: [
      { collection: 'likes', field: 'post', weight: 0, timeField: 'created', halfLifeHours: 24 },
      { collection: 'comments', field: 'post', weight: 3, timeField: 'created', halfLifeHours: 24 },
    ],
  },
};

/** Search profiles: relevance windows (the best matches by bm25 are candidates too). */
const SEARCHES: Record<string, FeedProfile> = {
  search: REFERENCE_FEEDS.search,
  // Relevance against strong decayed likes and a short half-life.
  lively: {
    collection: 'posts', text: { fields: ['title', 'body'], weight: 1 }, freshness: { field: 'created', weight: 1, halfLifeHours: 48 },
    interactions: [{ collection: 'likes', field: 'post', weight: 0.3, timeField: 'created', halfLifeHours: 24 }], exclude: blocks,
  },
  // Gravity over relevance and exact counts.
  buzz: {
    collection: 'posts', text: { fields: ['title', 'body'], weight: 2 }, freshness: { field: 'created', weight: 1, gravity: 1.5 },
    interactions: [{ collection: 'likes', field: 'post', weight: 0.5 }, { collection: 'comments', field: 'post', weight: 1, timeField: 'created', halfLifeHours: 24 }],
  },
};
const WORDS = ['amber', 'birch', 'cedar', 'dune'];

interface Data {
  users: any[]; posts: any[]; likes: any[]; comments: any[]; follows: any[]; blocks: any[];
  /** Posts published long ago with many recent likes, and a group with one date and no interactions. */
  oldPopular: string[]; tied: string[];
}

const pbDate = (ms: number) => new Date(ms).toISOString().replace('T', ' ');

/** Randomized records; every post has an author; some dates are empty, some in the future. */
function dataset(seed: number, now: number): Data {
  const rand = rng(seed);
  const pick = <T>(a: T[]) => a[Math.floor(rand() * a.length)];
  const users = Array.from({ length: 80 }, (_, i) => ({ id: makeId(rand), email: `w${seed}-${i}@example.com`, emailVisibility: false, verified: true, name: `User ${i}`, created: pbDate(now - 90 * DAY), updated: pbDate(now) }));
  const posts: any[] = [];
  const post = (created: string, extra: Record<string, unknown> = {}) => {
    const p = {
      id: makeId(rand), title: `post ${posts.length}`, body: '', author: users[Math.floor(users.length * rand() ** 2)].id,
      published: rand() < 0.85, tags: [], category: rand() < 0.03 ? 'c' : rand() < 0.5 ? 'a' : 'b', likes: 0, coauthors: [],
      created, updated: pbDate(now), ...extra,
    };
    posts.push(p);
    return p;
  };
  for (let i = 0; i < 500; i++) {
    const r = rand();
    // Mostly recent (many within hours), some empty dates (age 1e6) and some in the future (age 0).
    const created = r < 0.03 ? '' : r < 0.05 ? pbDate(now + rand() * 2 * HOUR) : pbDate(now - Math.floor(20 * DAY * rand() ** 3));
    post(created);
  }
  const tiedAt = pbDate(now - 3 * HOUR);
  const tied = Array.from({ length: 25 }, () => post(tiedAt, { published: true }).id);
  const oldPopular = Array.from({ length: 30 }, () => post(pbDate(now - (10 + 10 * rand()) * DAY), { published: rand() < 0.8 }).id);
  const likes: any[] = [];
  const seen = new Set<string>();
  const like = (p: any, created: number) => {
    const u = pick(users).id;
    if (seen.has(`${p.id}|${u}`)) return;
    seen.add(`${p.id}|${u}`);
    likes.push({ id: `l${likes.length.toString(36).padStart(14, '0')}`, post: p.id, user: u, created: pbDate(Math.min(now, created)) });
  };
  const tiedSet = new Set(tied);
  const dated = posts.filter((p) => p.created !== '' && !tiedSet.has(p.id));
  for (let i = 0; i < 4000; i++) {
    const p = dated[dated.length - 1 - Math.floor(dated.length * rand() ** 3)];
    like(p, pbTime(p.created) + rand() * 3 * DAY);
  }
  // Old posts liked a lot, recently: only the counters' top K can bring them into a window.
  for (const id of oldPopular) {
    const p = posts.find((x) => x.id === id);
    const n = 25 + Math.floor(rand() * 35);
    for (let i = 0; i < n; i++) like(p, now - rand() * 12 * HOUR);
  }
  const comments = Array.from({ length: 1200 }, (_, i) => {
    const old = pick(oldPopular);
    const p = rand() < 0.2 ? posts.find((x) => x.id === old) : dated[dated.length - 1 - Math.floor(dated.length * rand() ** 2)];
    return { id: `c${i.toString(36).padStart(14, '0')}`, post: p.id, author: pick(users).id, text: `c${i}`, created: pbDate(Math.min(now, (pbTime(p.created) || now) + rand() * 2 * DAY)), updated: pbDate(now) };
  });
  const followRows: any[] = [];
  for (const [a, b] of [[0, 1], [0, 2], [0, 3], [0, 7], [1, 0], [2, 0], [3, 4]]) followRows.push({ id: `f${followRows.length}`, follower: users[a].id, following: users[b].id, created: pbDate(now) });
  // User 0 blocks two of the most prolific authors (authors are skewed toward the first users).
  const blockRows = [[0, 0], [0, 4], [0, 5]].map(([a, b], i) => ({ id: `b${i}`, blocker: users[a].id, blocked: users[b].id, created: pbDate(now) }));
  return { users, posts, likes, comments, follows: followRows, blocks: blockRows, oldPopular, tied };
}

/** A replica file holding `data` under the real collection definitions, with the feed index attached. */
function replica(defs: PbCollection[], data: Data, dir: string, name: string): ReplicaStore {
  const store = new ReplicaStore(join(dir, name));
  store.initialise('window-test', { seq: 0, anchor: null });
  const byName: Record<string, any[]> = { users: data.users, posts: data.posts, likes: data.likes, comments: data.comments, follows: data.follows, blocks: data.blocks };
  // Half of the likes go in after the index is attached: counted by the triggers, not the rebuild.
  const late = data.likes.slice(data.likes.length / 2);
  for (const c of defs) {
    const spec = tableSpec(c);
    const build = store.createBuildTable(c);
    const cols = [...spec.columns.map((x) => `"${x.name}"`), '"_pb_rowid"'];
    const stmt = store.db.prepare(`INSERT INTO "${build}" (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
    const rows = c.name === 'likes' ? data.likes.slice(0, data.likes.length / 2) : byName[c.name] ?? [];
    store.db.transaction(() => rows.forEach((r, i) => stmt.run(encodeRecord(spec, r, i + 1))))();
    store.publishTable(c, build);
  }
  new FeedIndex(store, feedIndexSpec({ ...REFERENCE_FEEDS, ...PROFILES, ...SEARCHES })).attach();
  const likes = defs.find((c) => c.name === 'likes')!;
  const spec = tableSpec(likes);
  const cols = [...spec.columns.map((x) => `"${x.name}"`), '"_pb_rowid"'];
  const stmt = store.db.prepare(`INSERT INTO "likes" (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
  store.db.transaction(() => late.forEach((r, i) => stmt.run(encodeRecord(spec, r, 100000 + i))))();
  return store;
}

/** Columns of a ranking row that the snapshot keeps (bound is the window's own). */
function strip(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map(({ bound: _b, ...r }) => r);
}

describe('candidate windows', () => {
  let defs: PbCollection[];
  let dir: string;
  const stores: ReplicaStore[] = [];
  const now = Date.now();

  before(async () => {
    const pb = await startPocketBase();
    try {
      const token = await superuserToken(pb.url);
      const res = await api(pb.url, '/api/collections?perPage=200', { token });
      defs = (res.items as PbCollection[]).filter((c) => ['users', 'posts', 'comments', 'likes', 'follows', 'blocks'].includes(c.name));
      assert.equal(defs.length, 6);
    } finally {
      await pb.destroy();
    }
    dir = mkdtempSync(join(tmpdir(), 'hapta-window-'));
  });
  after(() => {
    for (const s of stores) s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function query(store: ReplicaStore, profile: FeedProfile, who: any | null, filter: string, q: string | null = null, shared = false): FeedQuery {
    const catalog = catalogOf(store);
    const users = catalog.find('users')!;
    const requester: Requester = who ? { kind: 'record', collectionId: users.c.id, record: store.record(users.c.id, who.id)! } : { kind: 'anonymous' };
    return {
      profile, catalog, coll: catalog.find(profile.collection)!, superuser: false, filter, match: q === null ? null : ftsMatch(searchTokens(q)), me: who ? who.id : null,
      info: { context: 'default', method: 'GET', query: {}, headers: {}, requester }, shared,
    };
  }

  const exec = (store: ReplicaStore) => (sql: string, b: Record<string, unknown>) => store.db.prepare(sql).all(b) as Record<string, unknown>[];

  /** The window ranking and the full one for one case; they must be equal. */
  function both(store: ReplicaStore, plan: RankPlan, opts: WindowOptions): { rows: Record<string, unknown>[]; stats: WindowStats } {
    const full = exec(store)(plan.full.sql, plan.full.bindings);
    const win = rankRows(plan, exec(store), opts);
    assert.deepStrictEqual(strip(win.rows), full, `window ${JSON.stringify(win.stats)} differs from the full ranking`);
    return win;
  }

  const FILTERS = ['', 'category != "b"', 'category = "c"', 'author.name ~ "User 1"', 'likes >= 0 && created != ""'];
  const SIZES: { cap: number; opts: WindowOptions }[] = [
    { cap: 40, opts: { m0: 8, k0: 4 } },
    { cap: 25, opts: { m0: 60, k0: 40 } },
    { cap: 60, opts: { m0: 2, k0: 1 } },
    { cap: 5, opts: { m0: 10, k0: 2 } },
    { cap: 10, opts: { m0: 150, k0: 80 } },
    { cap: 2000, opts: {} }, // more than every item: never tried, the full ranking
  ];

  for (const seed of [3, 17, 29]) {
    test(`seed ${seed}: window rankings equal full rankings, and windows are accepted, widened and given up`, () => {
      const data = dataset(seed, now);
      const store = replica(defs, data, dir, `w${seed}.db`);
      stores.push(store);
      const tally: Tally = { first: 0, widened: 0, gaveUp: 0, never: 0, cases: 0 };
      for (const [name, profile] of Object.entries(PROFILES)) {
        for (const who of [null, data.users[0], data.users[3]]) {
          for (const filter of FILTERS) {
            for (const { cap, opts } of SIZES) {
              const fq = query(store, profile, who, filter);
              assert.ok(hasWindow(fq), `${name} should have a window`);
              const plan = rankPlan(fq, now, cap);
              const { rows, stats } = both(store, plan, opts);
              count(tally, stats, rows.length, cap);
              // Order: score DESC, then the date DESC, then rowid DESC.
              for (let i = 1; i < rows.length; i++) {
                const [a, b] = [rows[i - 1], rows[i]];
                const ok = Number(a.score) > Number(b.score) || (a.score === b.score && (String(a.fld ?? '') > String(b.fld ?? '') || (a.fld === b.fld && Number(a.rid) > Number(b.rid))));
                assert.ok(ok, `${name}: order at ${i}`);
              }
            }
          }
        }
      }
      assert.ok(tally.first > 0 && tally.widened > 0 && tally.gaveUp > 0 && tally.never > 0, `every path taken: ${JSON.stringify(tally)}`);
    });
  }

  test('search windows (the best matches by bm25, the counters, the newest) equal full rankings', () => {
    const tally: Tally = { first: 0, widened: 0, gaveUp: 0, never: 0, cases: 0 };
    for (const seed of [5, 11]) {
      const data = dataset(seed, now);
      // Texts of one to three of a few words: most matches of a word tie on relevance with many others.
      const rand = rng(seed * 7);
      const words = () => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => WORDS[Math.floor(WORDS.length * rand() ** 1.5)]).join(' ');
      for (const p of data.posts) { p.title = words(); p.body = rand() < 0.5 ? '' : `<p>${words()}</p>`; }
      const store = replica(defs, data, dir, `s${seed}.db`);
      stores.push(store);
      for (const [name, profile] of Object.entries(SEARCHES)) {
        for (const q of [WORDS[0], WORDS[1], `${WORDS[0]} ${WORDS[1]}`, WORDS[3], 'nothing']) {
          for (const [who, shared] of [[null, false], [data.users[0], false], [data.users[3], false], [null, true]] as const) {
            for (const filter of shared ? [''] : ['', 'category != "b"']) {
              for (const { cap, opts } of [{ cap: 5, opts: { m0: 2, k0: 1, l0: 1 } }, { cap: 20, opts: {} }, { cap: 8, opts: { m0: 40, k0: 30, l0: 3 } }, { cap: 30, opts: { m0: 4, k0: 60, l0: 10 } }]) {
                const fq = query(store, profile, who, filter, q, shared);
                assert.ok(hasWindow(fq), `${name} should have a window`);
                const plan = rankPlan(fq, now, cap);
                assert.ok(plan.window?.top, 'a relevance window');
                const { rows, stats } = both(store, plan, opts);
                count(tally, stats, rows.length, cap);
              }
            }
          }
        }
      }
    }
    assert.ok(tally.first > 0 && tally.widened > 0 && tally.gaveUp > 0 && tally.never > 0, `every path taken: ${JSON.stringify(tally)}`);
  });

  test('ties, old popular posts, empty and future dates are ranked as the full ranking ranks them', () => {
    const data = dataset(41, now);
    const store = replica(defs, data, dir, 'w41.db');
    stores.push(store);
    // The tied group: same date, no interactions, published: equal scores, ordered by rowid DESC.
    const tied = new Set(data.tied);
    const latestish: FeedProfile = { collection: 'posts', freshness: { field: 'created', weight: 1, gravity: 1.8 }, interactions: [{ collection: 'comments', field: 'post', weight: 1, timeField: 'created', halfLifeHours: 24 }] };
    const fullOf = (profile: FeedProfile) => {
      const plan = rankPlan(query(store, profile, null, ''), now, 5000);
      return exec(store)(plan.full.sql, plan.full.bindings);
    };
    const all = fullOf(latestish);
    const tiedRows = all.filter((r) => tied.has(String(r.id)));
    assert.equal(tiedRows.length, data.tied.length);
    assert.equal(new Set(tiedRows.map((r) => r.score)).size, 1, 'the tied group has one score');
    const firstTied = all.findIndex((r) => tied.has(String(r.id)));
    const block = all.slice(firstTied, firstTied + tiedRows.length);
    assert.ok(block.every((r) => tied.has(String(r.id))), 'nothing else has that score and date');
    assert.deepEqual(block.map((r) => r.rid), [...block.map((r) => Number(r.rid))].sort((a, b) => b - a), 'ties in rowid order, newest first');
    // A cap that cuts through the tied group: still the full ranking's prefix.
    const cut = firstTied + Math.floor(tiedRows.length / 2);
    for (const m0 of [1, 5, 40, 200]) both(store, rankPlan(query(store, latestish, null, ''), now, cut), { m0, k0: 1 });
    // Old posts with many recent likes lead the half-life profile; windows reach them through the counters.
    const hotPlan = rankPlan(query(store, PROFILES.hot, null, ''), now, 20);
    const hot = both(store, hotPlan, { m0: 40, k0: 64 });
    assert.deepEqual(hot.stats, { attempts: 1, m: 40, k: 64, result: 'window' });
    // With K = 1 the bound carries the largest like count: the first window cannot be accepted.
    const narrow = both(store, hotPlan, { m0: 40, k0: 1 });
    assert.ok(narrow.stats.attempts > 1 || narrow.stats.result === 'full', JSON.stringify(narrow.stats));
    const old = new Set(data.oldPopular);
    assert.ok(hot.rows.filter((r) => old.has(String(r.id))).length >= 5, 'old popular posts rank');
    assert.ok(hot.rows.some((r) => Number(r.age) > 24 * 9), 'an old post is in the top 20');
    // Empty dates rank with age 1e6; future dates with age 0.
    const everything = fullOf(PROFILES.hot);
    assert.ok(everything.some((r) => r.fld === '' && r.age === 1e6));
    assert.ok(everything.some((r) => r.age === 0 && pbTime(r.fld) > now));
  });

  test('rankings follow the reference score computed from the raw records', () => {
    const data = dataset(53, now);
    const store = replica(defs, data, dir, 'w53.db');
    stores.push(store);
    const rows = { likes: data.likes, comments: data.comments, follows: data.follows };
    const blocked = (p: FeedProfile, me: string | null, author: string) => !!p.exclude && me !== null && data.blocks.some((b) => b.blocker === me && b.blocked === author);
    let windows = 0;
    for (const [name, profile] of Object.entries(PROFILES)) {
      for (const who of [null, data.users[0]]) {
        for (const [filter, keep] of [['', () => true], ['category = "a"', (p: any) => p.category === 'a']] as const) {
          const me = who ? who.id : null;
          const cap = 30;
          const { rows: ranked, stats } = both(store, rankPlan(query(store, profile, who, filter), now, cap), { m0: 10, k0: 3 });
          if (stats.result === 'window') windows++;
          const visible = data.posts.filter((p) => (p.published || p.author === me) && !blocked(profile, me, p.author) && keep(p));
          const ref = new Map(visible.map((p) => [p.id, referenceScore(profile, p, rows, now, me ?? '')]));
          const tol = (x: number) => 1e-6 * Math.max(1, Math.abs(x));
          assert.equal(ranked.length, Math.min(cap, visible.length));
          for (const r of ranked) {
            const want = ref.get(String(r.id));
            assert.ok(want !== undefined, `${name}: ${r.id} is not visible to ${me}`);
            assert.ok(Math.abs(Number(r.score) - want) <= tol(want), `${name}: ${r.id} scores ${r.score}, reference ${want}`);
          }
          const last = Number(ranked[ranked.length - 1].score);
          const kept = new Set(ranked.map((r) => String(r.id)));
          for (const [id, s] of ref) if (!kept.has(id)) assert.ok(s <= last + tol(last), `${name}: ${id} (${s}) should rank above ${last}`);
        }
      }
    }
    assert.ok(windows > 0, 'some of these rankings came from windows');
  });

  test('packed rankings keep ids, rowids and terms; scores that cannot be bounded have no window', () => {
    const data = dataset(67, now);
    const store = replica(defs, data, dir, 'w67.db');
    stores.push(store);
    const fq = query(store, REFERENCE_FEEDS.trending, data.users[0], '');
    const { rows, stats } = rankRows(rankPlan(fq, now, 50), exec(store), { m0: 20, k0: 10 });
    const packed = pack(REFERENCE_FEEDS.trending, rows, stats);
    assert.equal(packed.count, 50);
    assert.equal(packed.width, 6);
    for (let i = 0; i < packed.count; i++) {
      assert.equal(packed.ids.slice(i ? packed.ends[i - 1] : 0, packed.ends[i]), rows[i].id);
      assert.equal(packed.rids[i], rows[i].rid);
      assert.deepEqual(Array.from(packed.terms.subarray(i * 6, i * 6 + 6)), [rows[i].score, rows[i].rel, rows[i].age, rows[i].fol, rows[i].i0, rows[i].i1].map(Number));
    }
    const negative: FeedProfile = { ...REFERENCE_FEEDS.trending, interactions: [{ collection: 'likes', field: 'post', weight: -1 }] };
    const relevance: FeedProfile = { ...REFERENCE_FEEDS.search, requireQuery: false, interactions: [] };
    const against: FeedProfile = { ...relevance, text: { fields: ['title', 'body'], weight: -1 } };
    assert.equal(windowable(negative, false), false);
    // Relevance is bounded by the l-th best match's: a window holds the best l matches.
    assert.equal(windowable(relevance, true), true);
    assert.equal(windowable(relevance, false), true);
    assert.equal(windowable(against, true), false, 'relevance that lowers the score has no bound');
    assert.equal(windowable(against, false), true);
    assert.equal(hasWindow(query(store, REFERENCE_FEEDS.latest, null, '')), false, 'age alone: the date index walk');
    assert.equal(hasWindow(query(store, REFERENCE_FEEDS.following, data.users[0], '')), false, 'following only: driven by follows');
    assert.equal(rankPlan(query(store, negative, null, ''), now, 10).window, null);
    // Derived tables carry the layout they were built with, and the counters' order indexes exist.
    assert.equal(JSON.parse(store.getState('feed_index_spec')!).layout, FEED_INDEX_LAYOUT);
    const idx = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%\\_\\_top' ESCAPE '\\'").all() as { name: string }[];
    assert.ok(idx.length >= 3, `order indexes: ${idx.map((r) => r.name).join(', ')}`);
  });
});

interface Tally { first: number; widened: number; gaveUp: number; never: number; cases: number }

/** Which path a ranking took: a window accepted at once or widened (then it holds `cap` items), given up, none. */
function count(tally: Tally, stats: { result: string; attempts: number }, rows: number, cap: number): void {
  tally.cases++;
  if (stats.result === 'window') {
    if (stats.attempts === 1) tally.first++; else tally.widened++;
    assert.equal(rows, cap, 'an accepted window holds cap items');
  } else if (stats.attempts > 0) tally.gaveUp++;
  else tally.never++;
}
