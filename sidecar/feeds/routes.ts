// GET /api/hapta/feeds/{profile}: a ranked page of one collection's records, answered in PocketBase's list
// shape with the read path's rules, expand and fields. Rankings run in the QueryPool (window.ts), searches
// in a lane of their own; a page query (a few rows by id) runs on the main thread's replica connection
// like the read path's queries, except a search page's match re-check, which goes to the pool. Paging
// goes through snapshots (snapshots.ts) and cursors.
//
// A requester's ranking is, where the score does not depend on who asks (score.ts: requesterFree), the
// shared ranking (shared.ts: one per profile and search text, for every requester) restricted to the
// items that requester may see: its order, scores and instant, filtered with their rules (feed-sql.ts:
// filterSql), and counted (countSql). That filtered prefix is exactly the requester's own ranking's:
// every item they may see is in the shared order, and one the prefix lacks ranks after the shared
// ranking's last item. When too few of its items pass, the shared ranking is ranked deeper; past
// `maxSharedDepth`, the requester is ranked alone. A search ranks as deep as its pages need (a page
// costs what it shows, window.ts), and further when a later page asks.
import type Koa from 'koa';
import type { FeedProfile } from '../../config.js';
import type { Replicator } from '../../replica/replicator.js';
import type { ReplicaStore } from '../../replica/store.js';
import { ApiError, sendError } from '../errors.js';
import { authTablesOf, catalogOf, type Catalog } from '../reads/catalog.js';
import { Unsupported } from '../reads/errors.js';
import { FieldsError } from '../reads/fields.js';
import { checkSuperuserOnlyFields, fieldsOf, listParams } from '../reads/handlers.js';
import { numberJson } from '../reads/json.js';
import { followReplica, ReadSet, versionStamp, type VersionStamp } from '../reads/query.js';
import { forThread, pageError, runPage, type PageResult, type PageTask } from '../reads/task.js';
import { firstValues, parseGoQuery, requestHeaders, requesterKey, type Requester, type RequestInfo } from '../reads/request.js';
import { AnswerCache } from './answers.js';
import { countSql, filterSql, pageSql, rankPlan, type FeedQuery, type PageSql } from './feed-sql.js';
import { QueryError, type Filtered, type Lane, type QueryPool } from '../query/pool.js';
import { requesterFree, termsAt } from './score.js';
import { ftsMatch, searchTokens } from './search-text.js';
import { SharedRankings, type SharedRanking } from './shared.js';
import { SnapshotStore, type Snapshot, type SnapshotSource } from './snapshots.js';
import { extend, idsBetween, itemsAt, type Ranked, type WindowOptions, type WindowStats } from './window.js';

export interface FeedRoutesOptions {
  replicator: Replicator;
  profiles: Record<string, FeedProfile>;
  identify(ctx: Koa.Context): Promise<Requester>;
  pool: QueryPool;
  /** Most items one ranking keeps (the feed's depth). Default 1000. */
  maxItems?: number;
  /** Cursor lifetime. Default 10 minutes. */
  snapshotTtlMs?: number;
  /** Snapshots kept in memory. Default 2000. */
  maxSnapshots?: number;
  /** Identical first pages within this window share one ranking (0: rank every time). Default 2000 ms. */
  reuseMs?: number;
  /** Bytes of whole pages kept until the replica changes (answers.ts; 0: none). Default 32 MiB. */
  answerCacheBytes?: number;
  /** Sizes of the candidate windows (window.ts). */
  window?: WindowOptions;
  /** Watermarks (consistency.ts): whether the replica may answer this caller now; what it has seen. */
  readable?(ctx: Koa.Context): Promise<boolean>;
  afterRead?(ctx: Koa.Context): Promise<void>;
  /** Called after each ranking with its profile, how it was obtained and how long it took. */
  onRanked?(profile: string, stats: WindowStats, ms: number): void;
  /** A page answered: kept (the same text again, its tables unchanged) or rendered. */
  onPage?(profile: string, kept: boolean): void;
  /** Rank once for every requester and filter per requester (needs reuseMs > 0). Default true. */
  shareRankings?: boolean;
  /** Deepest a shared ranking goes before a requester who keeps too few of its items is ranked alone. Default 4 * maxItems. */
  maxSharedDepth?: number;
  /** The frozen instant of new rankings (tests fix it). Default Date.now. */
  clock?: () => number;
}

/** A requester's filter over the first `upto` items of `ranked`. */
interface Known { ranked: Ranked; kept: Filtered; upto: number }

/**
 * How many of a shared ranking's items are filtered first for a requester who needs `need` of theirs:
 * twice as many (most requesters keep most items), and enough that the next pages come with the first.
 */
function span(need: number): number {
  return Math.max(64, 2 * need);
}

/**
 * What a first page's ranking gave: the snapshot's prefix, its requester's item count, how to continue
 * it, and the replica's change count when its ranking started.
 */
interface Prefix { nowMs: number; ranked: Ranked; total: number; source?: SnapshotSource; mark: number }

const PATH = /^\/api\/hapta\/feeds\/([^/]+)$/;
const NOT_FOUND = "The requested resource wasn't found.";
const GENERIC = 'Something went wrong while processing your request.';
/** Rules that read the request beyond who is asking: their rankings are never shared between requests. */
const REQUEST_DEPENDENT = /@request\.(headers|query|body|method|context)|@(now|second|minute|hour|weekday|day|month|year|yesterday|tomorrow|todayStart|todayEnd|monthStart|monthEnd|yearStart|yearEnd)\b/;

/** A page on this thread's connection: SQLite's errors as the pool reports them. */
function pageHere(store: ReplicaStore, task: PageTask): PageResult {
  if (!store.db.open) throw new ApiError(503, 'The feed is not available right now.');
  try {
    return runPage(store, task);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (typeof err.code === 'string' && err.code.startsWith('SQLITE_')) throw new QueryError(err.code, String(err.message));
    if (e instanceof RangeError || e instanceof TypeError) throw new QueryError('BIND', String(err.message));
    throw e;
  }
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** The answer depends on who asks and what they ask, not on the rest of the request (headers, time). */
function shareable(coll: { c: { listRule?: string | null } }, filter: string): boolean {
  return !REQUEST_DEPENDENT.test(coll.c.listRule ?? '') && !REQUEST_DEPENDENT.test(filter);
}

/** Per catalog: no rule that expand or the email flags may apply reads the request beyond the requester. */
const rulesShareable = new WeakMap<Catalog, boolean>();
function allRulesShareable(catalog: Catalog): boolean {
  let ok = rulesShareable.get(catalog);
  if (ok === undefined) {
    ok = !catalog.store.collections().some((c) => [c.listRule, c.viewRule, c.manageRule].some((r) => typeof r === 'string' && REQUEST_DEPENDENT.test(r)));
    rulesShareable.set(catalog, ok);
  }
  return ok;
}

/**
 * The page query of a snapshot for these ids. Compiling the rule and filter costs more than running the
 * query, so the compiled statement is kept on the snapshot and reused while what it was compiled from is
 * the same: the catalog (rules, fields), the requester's record (@request.auth.*), and a rule and filter
 * that read nothing else of the request.
 */
function pageQuery(snap: Snapshot, fq: FeedQuery, requester: Requester, ids: string[]): PageSql {
  const reusable = shareable(fq.coll, fq.filter);
  const key = reusable ? `${fq.match === null ? 0 : 1}${requester.kind === 'anonymous' ? '' : JSON.stringify(requester.record)}` : '';
  const kept = snap.page;
  if (reusable && kept && kept.catalog === fq.catalog && kept.key === key) {
    return { ...kept.sql, bindings: { ...kept.sql.bindings, [kept.sql.idsParam]: JSON.stringify(ids) } };
  }
  const sql = pageSql(fq, ids);
  if (reusable) snap.page = { key, catalog: fq.catalog, sql: { ...sql, bindings: { ...sql.bindings } } };
  return sql;
}

export function feedRoutes(opts: FeedRoutesOptions): Koa.Middleware {
  const cap = Math.max(1, Math.min(10_000, opts.maxItems ?? 1000));
  const reuseMs = opts.reuseMs ?? 2000;
  const clock = opts.clock ?? Date.now;
  const snapshots = new SnapshotStore({ ttlMs: opts.snapshotTtlMs ?? 600_000, max: opts.maxSnapshots ?? 2000, reuseMs });
  // Sharing pays only when rankings are reused: with reuseMs 0 every request ranks for its requester.
  const sharing = opts.shareRankings !== false && reuseMs > 0;
  const maxShared = Math.max(cap, opts.maxSharedDepth ?? 4 * cap);
  let lastStore: ReplicaStore | null = null;
  // Without change notifications nothing could tell a kept page is stale: then none is kept.
  const notified = typeof opts.replicator.onApplied === 'function';
  const answers = new AnswerCache({ maxBytes: notified ? opts.answerCacheBytes ?? 32 << 20 : 0, maxEntries: 2000 });
  // The applied batches counted, when they are notified (else never "unchanged": -1 each time).
  let applied = 0;
  if (notified) {
    followReplica(opts.replicator);
    opts.replicator.onApplied(() => { applied++; });
  }
  let unknown = 0;
  const mark = () => (notified ? applied : --unknown);
  const shared = new SharedRankings({ reuseMs, max: 500, clock, mark });

  return async function feeds(ctx, next) {
    const m = PATH.exec(ctx.path);
    if (!m || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    try {
      const name = decode(m[1]);
      if (name === null || !Object.hasOwn(opts.profiles, name)) throw new ApiError(404, NOT_FOUND);
      const profile = opts.profiles[name];
      if (!opts.replicator.store || !opts.pool.ready) throw new ApiError(503, 'The feed is not available right now.');
      // Never an older state than this caller wrote or read: there is no PocketBase answer to fall back to.
      if (opts.readable && !(await opts.readable(ctx))) throw new ApiError(503, 'The feed is not available right now.');
      // The versions before the requester's record is read: a kept page is fresh under them only.
      const stamp = versionStamp();
      const requester = await opts.identify(ctx);
      // Read the store after the await: it may have been swapped meanwhile.
      const store = opts.replicator.store;
      if (!store) throw new ApiError(503, 'The feed is not available right now.');
      if (store !== lastStore) { snapshots.clear(); shared.clear(); lastStore = store; }
      const body = await answer(ctx, store, name, profile, requester, stamp);
      ctx.status = 200;
      ctx.set('Content-Type', 'application/json');
      ctx.body = body;
      await opts.afterRead?.(ctx);
    } catch (e) {
      if (e instanceof ApiError) return sendError(ctx, e.status, e.message, e.data);
      if (e instanceof Unsupported && e.reason === 'requester_not_in_replica') return sendError(ctx, 503, 'The feed is not available right now.');
      if (e instanceof Unsupported || e instanceof FieldsError) return sendError(ctx, 400, GENERIC);
      if (e instanceof QueryError) {
        if (/no such (table|column)/.test(e.message) || e.code === 'NOT_READY' || e.code === 'THREAD') return sendError(ctx, 503, 'The feed is not available right now.');
        return sendError(ctx, 400, GENERIC);
      }
      throw e;
    }
  };

  /** Searches rank, filter and re-check in their own lane. */
  function laneOf(fq: FeedQuery): Lane {
    return fq.match !== null ? 'search' : 'feeds';
  }

  /** How deep a ranking goes for pages up to `need`: a search only as deep as asked (rounded up), others the cap. */
  function depthFor(fq: FeedQuery, need: number): number {
    return fq.match !== null ? Math.min(cap, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, need))))) : cap;
  }

  async function rank(name: string, fq: FeedQuery, nowMs: number, depth: number, filter?: Parameters<QueryPool['rankFiltered']>[3]): Promise<{ ranked: Ranked; kept?: Filtered }> {
    const t0 = Date.now();
    const res = await opts.pool.rankFiltered(fq.profile, rankPlan(fq, nowMs, depth), opts.window, filter, laneOf(fq));
    opts.onRanked?.(name, res.ranked.stats, Date.now() - t0);
    return res;
  }

  /** The requester's ranking alone, `depth` deep, and their item count (counted when it may hold more). */
  async function alone(name: string, fq: FeedQuery, nowMs: number, depth: number): Promise<Prefix> {
    const since = mark();
    const { ranked } = await rank(name, fq, nowMs, depth);
    if (ranked.count < depth || depth >= cap) return { nowMs, ranked, total: Math.min(cap, ranked.count), mark: since };
    const c = countSql(fq, cap);
    const [row] = await opts.pool.all<{ n: number }>(c.sql, [c.bindings], laneOf(fq));
    return { nowMs, ranked, total: Math.max(ranked.count, Math.min(cap, Number(row?.n ?? 0))), source: { depth }, mark: since };
  }

  /** The requester's filter over a shared ranking, and their count (sql-worker.ts: FilterTask). */
  function filterTask(fq: FeedQuery) {
    const f = filterSql(fq);
    return { sql: f.sql, bindings: f.bindings, idsParam: f.idsParam, count: countSql(fq, cap) };
  }

  /**
   * The shared ranking `s` restricted to the requester's items, deepened until the prefix covers `need`
   * items of theirs (or all they have); null when that would take more than maxSharedDepth. Only as
   * much of the ranking is filtered as the requester needs: its first `span(need)` items, more when too
   * few of them pass. The requester's items among the first n shared items are the first of their own
   * ranking, whatever lies past n. `known`: the requester's filter already run over the first `upto`
   * items of a ranking (by the task that built it); `task`: their filter, when the caller compiled it.
   */
  async function filtered(name: string, fq: FeedQuery, s: SharedRanking, need: number, known?: Known | null, task = filterTask(fq)): Promise<Prefix | null> {
    const build = sharedBuild(name, fq);
    // The requester's item count (at most the cap): counted by the first filter, not again.
    let count = -1;
    const over = (ranked: Ranked, upto: number) =>
      opts.pool.filter({ ...task, count: count < 0 ? task.count : undefined, rids: ranked.rids.subarray(0, upto) }, laneOf(fq));
    for (;;) {
      const ranked = s.ranked;
      const since = s.mark;
      let upto = Math.min(ranked.count, span(need));
      let kept: Filtered;
      if (known && known.ranked === ranked) ({ upto, kept } = known);
      else kept = await over(ranked, upto);
      for (;;) {
        if (kept.total >= 0) count = kept.total;
        const prefix = itemsAt(ranked, kept.keep, cap);
        const whole = upto >= ranked.count;
        const complete = (s.complete && whole) || prefix.count >= cap;
        // Complete: the requester's whole ranking (the count, a moment later, may see a newer state).
        const total = complete ? prefix.count : Math.max(prefix.count, Math.min(cap, count));
        if (complete || prefix.count >= Math.min(need, total)) {
          return { nowMs: s.nowMs, ranked: prefix, total, source: complete || prefix.count >= total ? undefined : { shared: s }, mark: since };
        }
        if (whole) break;
        // Far enough, at the share of items this requester keeps, to hold what they need.
        upto = Math.min(ranked.count, Math.max(4 * upto, Math.ceil((1.5 * Math.min(need, total) * upto) / Math.max(1, kept.keep.length))));
        kept = await over(ranked, upto);
      }
      // Deep enough, at the share of items this requester keeps, to hold what they need.
      const total = Math.min(cap, count);
      const want = Math.ceil((1.5 * Math.min(need, total) * ranked.count) / Math.max(1, kept.keep.length));
      if (s.depth >= maxShared || want > maxShared) return null;
      s = await shared.deepen(s, Math.min(maxShared, Math.max(4 * s.depth, want)), build);
    }
  }

  function sharedBuild(name: string, fq: FeedQuery) {
    return async (nowMs: number, depth: number) => (await rank(name, { ...fq, shared: true }, nowMs, depth)).ranked;
  }

  /** A first page's ranking: from the shared one when the profile allows, else (or when too few pass) alone. */
  async function first(name: string, fq: FeedQuery, need: number): Promise<Prefix> {
    if (sharing && requesterFree(fq.profile)) {
      const depth = Math.min(maxShared, fq.match !== null ? Math.max(2 * need, 50) : Math.max(4 * need, 200));
      // A shared ranking this request builds carries its filter along (most search texts are new).
      let known: Known | null = null;
      const limit = span(need);
      // Compiled once: for the ranking's task and for the filters after it.
      const task = filterTask(fq);
      const s = await shared.obtain(JSON.stringify([name, fq.match]), depth, async (nowMs, d) => {
        const res = await rank(name, { ...fq, shared: true }, nowMs, d, { ...task, limit });
        if (res.kept) known = { ranked: res.ranked, kept: res.kept, upto: Math.min(res.ranked.count, limit) };
        return res.ranked;
      });
      const got = await filtered(name, fq, s, need, known, task);
      if (got) return got;
      return alone(name, fq, s.nowMs, depthFor(fq, need));
    }
    return alone(name, fq, clock(), depthFor(fq, need));
  }

  /** Continues `snap`'s ranking until it holds `need` items (or all there are), at its instant. */
  async function ensure(snap: Snapshot, fq: FeedQuery, name: string, need: number): Promise<void> {
    while (snap.source && snap.ranked.count < need) {
      if (!snap.extending) {
        const p = continued(snap, fq, name, need).then((more) => {
          const before = snap.ranked.count;
          snap.ranked = extend(snap.ranked, more.ranked, cap);
          // Nothing new (the items left became invisible meanwhile): the ranking ends here.
          snap.source = more.source && snap.ranked.count < snap.total && snap.ranked.count > before ? more.source : undefined;
        });
        snap.extending = p;
        const done = () => { if (snap.extending === p) snap.extending = undefined; };
        p.then(done, done);
      }
      await snap.extending;
    }
  }

  async function continued(snap: Snapshot, fq: FeedQuery, name: string, need: number): Promise<Prefix> {
    const src = snap.source!;
    if ('shared' in src) {
      // The shared ranking may be deeper by now; filtered() deepens it further if that is not enough.
      const got = await filtered(name, fq, src.shared, need);
      if (got && got.ranked.count > snap.ranked.count) return got;
    }
    const depth = Math.max(depthFor(fq, need), 'depth' in src ? Math.min(cap, 4 * src.depth) : 0);
    return alone(name, fq, snap.nowMs, depth);
  }

  async function answer(ctx: Koa.Context, store: ReplicaStore, name: string, profile: FeedProfile, requester: Requester, stamp: VersionStamp): Promise<string> {
    const query = firstValues(parseGoQuery(ctx.querystring));
    const info: RequestInfo = { context: 'default', method: 'GET', query, headers: requestHeaders(ctx.req), requester };
    const superuser = requester.kind === 'superuser';
    const catalog = catalogOf(store);
    if (requester.kind === 'record' && !store.entry(requester.collectionId)) throw new ApiError(503, 'The feed is not available right now.');
    const coll = catalog.find(profile.collection);
    if (!coll) throw new ApiError(503, 'The feed is not available right now.');
    if ((coll.c.listRule === null || coll.c.listRule === undefined) && !superuser) throw new ApiError(403, 'Only superusers can perform this action.');
    checkSuperuserOnlyFields(info);
    // Paging and totals follow PocketBase's parsing; a feed has its own order, so `sort` is not read.
    const params = listParams({ ...info, query: { ...query, sort: '' } });
    const fields = fieldsOf(info);
    if (fields === 'error') throw new FieldsError('fields');
    const owner = requesterKey(requester);
    const me = requester.kind === 'anonymous' ? null : String(requester.record.id ?? '');

    let snap: Snapshot;
    let offset: number;
    const cursor = query.cursor;
    if (cursor !== undefined && cursor !== '') {
      const res = snapshots.resolve(cursor, owner, name);
      if ('error' in res) {
        const message = res.error === 'expired' ? 'The cursor has expired; load the first page again.' : 'Invalid cursor.';
        throw new ApiError(400, message, { cursor: { code: res.error === 'expired' ? 'cursor_expired' : 'cursor_invalid', message } });
      }
      ({ snap, offset } = res);
    } else {
      const tokens = profile.text && query.q !== undefined ? searchTokens(query.q) : [];
      if (query.q !== undefined && !profile.text) searchTokens(query.q); // the same length limit everywhere
      const match = tokens.length > 0 ? ftsMatch(tokens) : null;
      if (profile.requireQuery && match === null) {
        throw new ApiError(400, 'The search text is required.', { q: { code: 'validation_required', message: 'Missing required value.' } });
      }
      const filter = query.filter ?? '';
      const fq: FeedQuery = { profile, catalog, coll, info, superuser, filter, match, me };
      const reuseKey = shareable(coll, filter) ? JSON.stringify([owner, name, filter, match]) : null;
      const need = Math.min(cap, params.page * params.perPage);
      snap = await snapshots.obtain(reuseKey, async () => ({ owner, profile: name, filter, match, ...(await first(name, fq, need)) }));
      offset = Math.min(snap.total, (params.page - 1) * params.perPage);
    }
    // A page past what the snapshot holds so far continues its ranking.
    await ensure(snap, { profile, catalog, coll, info, superuser, filter: snap.filter, match: snap.match, me }, name, Math.min(snap.total, offset + params.perPage));

    const explain = superuser && (query.explain === '1' || query.explain === 'true');
    const cacheKey = answers.enabled && shareable(coll, snap.filter) && allRulesShareable(catalog)
      ? JSON.stringify([snap.id, offset, params.perPage, params.skipTotal, query.fields ?? '', query.expand ?? '', explain])
      : null;
    if (cacheKey !== null) {
      const kept = answers.get(store, catalog, cacheKey);
      if (kept !== undefined) {
        opts.onPage?.(name, true);
        return kept;
      }
    }

    const ranked = snap.ranked;
    const pageIds = idsBetween(ranked, offset, offset + params.perPage);
    let items = '[]';
    let shown: string[] = [];
    let tables: string[] = [];
    if (pageIds.length > 0) {
      // The snapshot's query, re-checked for the requester now: an item that became invisible is dropped.
      // A search's match is re-checked too, unless no batch was applied since its ranking started (then
      // every item of it still matches).
      const match = snap.match !== null && snap.mark === mark() ? null : snap.match;
      const q = pageQuery(snap, { profile, catalog, coll, info, superuser, filter: snap.filter, match, me }, requester, pageIds);
      if (q.rowidParams) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let i = offset; i < offset + pageIds.length; i++) { lo = Math.min(lo, ranked.rids[i]); hi = Math.max(hi, ranked.rids[i]); }
        q.bindings[q.rowidParams[0]] = BigInt(lo);
        q.bindings[q.rowidParams[1]] = BigInt(hi);
      }
      // A page is a few records by id: rendered here (the trip to a read thread, and the wait there
      // behind lists, cost more). A search page's match re-check reads FTS5 doclists: the search lane.
      const task = { collection: coll.c.id, sql: q.sql, bindings: q.bindings, ids: pageIds, info: { ...info, requester: forThread(requester, catalog) }, stamp };
      // The store may have been swapped while the ranking ran: the page reads the current one.
      const res = q.rowidParams ? await opts.pool.page(task, 'search') : pageHere(opts.replicator.store ?? store, task);
      if (!('items' in res)) throw pageError(res);
      ({ items, ids: shown, tables } = res);
    }

    // No further page past the end of a ranking that cannot be continued (its last items disappeared).
    const end = snap.source ? snap.total : Math.min(snap.total, ranked.count);
    const next = offset + params.perPage < end ? snapshots.cursor(snap, offset + params.perPage) : null;
    const page = Math.floor(offset / params.perPage) + 1;
    const total = params.skipTotal ? -1 : snap.total;
    const pages = params.skipTotal ? -1 : Math.ceil(snap.total / params.perPage);
    let extra = `,"cursor":${JSON.stringify(next)}`;
    if (explain) {
      const at = new Map(pageIds.map((id, j) => [id, offset + j]));
      const terms: Record<string, unknown> = {};
      for (const id of shown) terms[id] = termsAt(profile, ranked.terms, at.get(id)! * ranked.width);
      extra += `,"explain":${JSON.stringify({ now: new Date(snap.nowMs).toISOString(), items: terms })}`;
    }
    const tail = `,"page":${numberJson(page)},"perPage":${numberJson(params.perPage)},"totalItems":${total},"totalPages":${pages}${extra}}`;
    const body = `{"items":${items}${tail}`;
    opts.onPage?.(name, false);
    if (cacheKey !== null && opts.replicator.store === store) {
      // What the page read, and the requester's record: the auth tables, as of before it was read.
      answers.set(store, catalog, cacheKey, body, ReadSet.at(stamp, [...tables, ...authTablesOf(store), coll.spec.table]));
    }
    return body;
  }
}
