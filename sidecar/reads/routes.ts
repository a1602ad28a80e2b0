// Koa middleware answering GET /api/collections/{c}/records[/{id}] from the replica. Anything it cannot
// answer with certainty (replica not ready, a collection it does not hold, a construct it does not
// support, a request with a body) goes to next() (the proxy) after onFallback(reason).
import type Koa from 'koa';
import type { Replicator } from '../../replica/replicator.js';
import { ApiError, sendError } from '../errors.js';
import { authTablesOf, catalogOf } from './catalog.js';
import { Unsupported } from './errors.js';
import type { Answer } from './handlers.js';
import { shapeOf, type ReadPlacement } from './placement.js';
import { followReplica, invalidateResults, planStats, ReadSet, versionStamp } from './query.js';
import { forThread, runRead, type ReadResult } from './task.js';
import { QueryError, type QueryPool } from '../query/pool.js';
import type { ReplicaStore } from '../../replica/store.js';
import { firstValues, parseGoQuery, requestHeaders, requesterKey, type Requester, type RequestInfo } from './request.js';

export interface ReadRoutesOptions {
  replicator: Replicator;
  /** The read threads (its `reads` lane) that answer each request whole; inline: this thread does. */
  pool: QueryPool;
  identify(ctx: Koa.Context): Promise<Requester>;
  onFallback?(reason: string): void;
  /** A read thread failed on a request (it goes to PocketBase, counted as read_thread_error). */
  onThreadError?(err: QueryError): void;
  /** Where lists run (placement.ts); without it every list goes to a read thread. */
  placement?: ReadPlacement;
  /** Watermarks (consistency.ts): whether the replica may answer this caller now; what it has seen. */
  readable?(ctx: Koa.Context): Promise<boolean>;
  afterRead?(ctx: Koa.Context): Promise<void>;
}

const PATH = /^\/api\/collections\/([^/]+)\/records(?:\/([^/]*))?$/;

/** Headers PocketBase's default middlewares put on every answer. */
const STANDARD_HEADERS: Record<string, string> = {
  'cross-origin-opener-policy': 'same-origin',
  vary: 'Origin',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'x-xss-protection': '1; mode=block',
};

function decodeSegment(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** Randomised delay PocketBase adds after repeated empty filtered lists (a timing-attack guard). */
const emptyLists = new Map<string, number[]>();
function emptyListThrottle(key: string): number {
  const now = Date.now();
  const hits = (emptyLists.get(key) ?? []).filter((t) => now - t < 3000);
  hits.push(now);
  emptyLists.set(key, hits);
  if (emptyLists.size > 10_000) emptyLists.clear();
  return hits.length > 3 ? Math.floor(Math.random() * 500) : 0;
}

/**
 * Whole answers, per replica, requester and URL, until the replica applies a change to a table the
 * answer read (the requester's own auth collection included: rules read the requester's record). Only
 * for requests whose answer depends on nothing else: no @random, no time macros, no request headers in
 * the collection rules (those are evaluated per request).
 */
const TIME_DEPENDENT = /@(now|second|minute|hour|weekday|day|month|year|yesterday|tomorrow|todayStart|todayEnd|monthStart|monthEnd|yearStart|yearEnd)\b|@random|@request\.headers/;
interface AnswerCache { map: Map<string, { answer: Answer; reads: ReadSet }>; bytes: number }
const answers = new WeakMap<ReplicaStore, AnswerCache>();
const MAX_CACHED_ANSWERS = 4000;
const MAX_CACHED_BYTES = 64 << 20;

function answerCache(store: ReplicaStore): AnswerCache {
  let c = answers.get(store);
  if (!c) answers.set(store, (c = { map: new Map(), bytes: 0 }));
  return c;
}

/** Per catalog (a new one appears whenever the schema changes): no rule depends on time or headers. */
const rulesCacheableByCatalog = new WeakMap<object, boolean>();
function rulesCacheable(store: ReplicaStore, catalog: object): boolean {
  let ok = rulesCacheableByCatalog.get(catalog);
  if (ok === undefined) {
    ok = !store.collections().some((c) => [c.listRule, c.viewRule].some((r) => typeof r === 'string' && TIME_DEPENDENT.test(r)));
    rulesCacheableByCatalog.set(catalog, ok);
  }
  return ok;
}

export function createReadRoutes(opts: ReadRoutesOptions): Koa.Middleware {
  followReplica(opts.replicator);
  // A collection copied whole (schema change) replaces data without a batch: drop cached results too.
  let lastCatalog: unknown = null;
  const fallback = async (reason: string, next: Koa.Next) => {
    opts.onFallback?.(reason);
    await next();
  };

  return async function readRoutes(ctx, next) {
    if (ctx.method !== 'GET') return next();
    const m = PATH.exec(ctx.path);
    if (!m) return next();
    const collName = decodeSegment(m[1]);
    const id = m[2] === undefined ? null : decodeSegment(m[2]);
    if (collName === null || (m[2] !== undefined && id === null)) return fallback('path_encoding', next);
    // PocketBase's router sends ".../records/" elsewhere (a static-file 404).
    if (id === '') return fallback('empty_id', next);
    if (!opts.replicator.store) return fallback('replica_not_ready', next);
    if (ctx.req.headers['content-length'] && ctx.req.headers['content-length'] !== '0') return fallback('request_body', next);
    if (ctx.req.headers['transfer-encoding']) return fallback('request_body', next);
    // Never older than what this caller wrote or read: wait for the replica, or ask PocketBase.
    if (opts.readable && !(await opts.readable(ctx))) return fallback('replica_behind', next);
    if (!opts.replicator.store) return fallback('replica_not_ready', next);

    // The auth tables' versions before the requester's record is read: rules read that record.
    const identityReads = new ReadSet();
    identityReads.add(authTablesOf(opts.replicator.store));
    let requester: Requester;
    try {
      requester = await opts.identify(ctx);
    } catch (e) {
      if (e instanceof Unsupported) return fallback(e.reason, next);
      throw e;
    }
    // Read the store after the await: it may have been swapped meanwhile.
    const store = opts.replicator.store;
    if (!store) return fallback('replica_not_ready', next);

    const catalogNow = catalogOf(store);
    if (catalogNow !== lastCatalog) { invalidateResults(); lastCatalog = catalogNow; }
    let answer: Answer | undefined;
    const cacheKey = TIME_DEPENDENT.test(decodeSegment(ctx.querystring) ?? '@') || !rulesCacheable(store, catalogNow) ? '' : `${requesterKey(requester)}\u0000${ctx.url}`;
    const cache = cacheKey ? answerCache(store) : null;
    const cached = cache?.map.get(cacheKey);
    if (cached && cached.reads.fresh()) answer = cached.answer;
    if (!answer) {
      let query: Record<string, string>;
      try {
        query = firstValues(parseGoQuery(ctx.querystring));
      } catch (e) {
        if (e instanceof Unsupported) return fallback(e.reason, next);
        throw e;
      }
      const info: RequestInfo = { context: 'default', method: 'GET', query, headers: requestHeaders(ctx.req), requester: forThread(requester, catalogNow) };
      // The versions before the task is sent: a change applied while it runs makes its answer stale.
      const stamp = versionStamp();
      let res: ReadResult;
      // A view is one lookup by id (and its expands): cheaper here than the trip to a thread, and never
      // queued behind a list there. So is a list of a shape measured cheaper than that trip; other lists
      // go to the threads.
      // No shape to measure for a view, without read threads, or with placement off.
      const shape = id === null && !opts.pool.inline && opts.placement?.enabled ? shapeOf(collName, query) : null;
      const here = opts.pool.inline || id !== null || (opts.placement?.here(shape) ?? false);
      try {
        res = here ? runRead(store, { collection: collName, id, info, stamp }) : await opts.pool.read({ collection: collName, id, info, stamp });
      } catch (e) {
        if (e instanceof QueryError && e.code === 'NOT_READY') return fallback('replica_not_ready', next);
        if (e instanceof QueryError) {
          opts.onThreadError?.(e);
          return fallback('read_thread_error', next);
        }
        throw e;
      }
      if ('unsupported' in res) return fallback(res.unsupported, next);
      if ('apiError' in res) {
        ctx.state.upstream = false;
        ctx.set(STANDARD_HEADERS);
        await opts.afterRead?.(ctx);
        return sendError(ctx, res.apiError.status, res.apiError.message);
      }
      answer = res.answer;
      if (shape !== null) opts.placement!.record(shape, res.ms);
      if (!here) {
        for (const k of Object.keys(planStats) as (keyof typeof planStats)[]) planStats[k] += res.plan[k] ?? 0;
      }
      if (res.guarded) {
        const delay = emptyListThrottle(`${res.collectionId}|${(ctx.state.clientIp as string | undefined) ?? ctx.ip}`);
        if (delay) await new Promise((r) => setTimeout(r, delay));
      }
      const reads = ReadSet.at(stamp, res.tables);
      if (requester.kind === 'record') reads.merge(identityReads);
      // Empty filtered lists are not kept: each one goes through PocketBase's timing guard above.
      if (cache && answer.status === 200 && !answer.empty) {
        const size = answer.body.length;
        if (cache.map.size >= MAX_CACHED_ANSWERS || cache.bytes + size > MAX_CACHED_BYTES) {
          cache.map.clear();
          cache.bytes = 0;
        }
        cache.map.set(cacheKey, { answer, reads });
        cache.bytes += size;
      }
    }
    ctx.state.upstream = false;
    ctx.set(STANDARD_HEADERS);
    await opts.afterRead?.(ctx);
    ctx.status = answer.status;
    ctx.set('Content-Type', 'application/json'); // PocketBase's exact header (Koa's ctx.type would add a charset)
    ctx.body = answer.body;
  };
}
