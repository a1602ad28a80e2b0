// GET /api/hapta/feeds/{profile}: a ranked page of one collection's records, answered in PocketBase's list
// shape with the read path's rules, expand and fields. Ranking and page queries run in the QueryPool;
// the response is built on the main thread. Paging goes through snapshots (snapshots.ts) and cursors.
import type Koa from 'koa';
import type { FeedProfile } from '../../config.js';
import type { Replicator } from '../../replica/replicator.js';
import type { ReplicaStore } from '../../replica/store.js';
import { ApiError, sendError } from '../errors.js';
import { catalogOf } from '../reads/catalog.js';
import { PbError, Unsupported } from '../reads/errors.js';
import { FieldsError, pick } from '../reads/fields.js';
import { checkSuperuserOnlyFields, enrich, fieldsOf, listParams } from '../reads/handlers.js';
import { numberJson, stringifyGo } from '../reads/json.js';
import type { Row } from '../reads/query.js';
import { node, recordJson, recordPlain } from '../reads/records.js';
import { firstValues, parseGoQuery, requestHeaders, type Requester, type RequestInfo } from '../reads/request.js';
import { pageSql, rankSql, type FeedQuery } from './feed-sql.js';
import { QueryError, type QueryPool } from './query-pool.js';
import { termsOf } from './score.js';
import { ftsMatch, searchTokens } from './search-text.js';
import { SnapshotStore, type Snapshot } from './snapshots.js';

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
}

const PATH = /^\/api\/hapta\/feeds\/([^/]+)$/;
const NOT_FOUND = "The requested resource wasn't found.";
const GENERIC = 'Something went wrong while processing your request.';
/** Rules that read the request beyond who is asking: their rankings are never shared between requests. */
const REQUEST_DEPENDENT = /@request\.(headers|query|body|method|context)|@(now|second|minute|hour|weekday|day|month|year|yesterday|tomorrow|todayStart|todayEnd|monthStart|monthEnd|yearStart|yearEnd)\b/;

export function requesterKey(r: Requester): string {
  return r.kind === 'anonymous' ? 'a' : r.kind === 'superuser' ? `s:${String(r.record.id)}` : `r:${r.collectionId}:${String(r.record.id)}`;
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

export function feedRoutes(opts: FeedRoutesOptions): Koa.Middleware {
  const cap = Math.max(1, Math.min(10_000, opts.maxItems ?? 1000));
  const snapshots = new SnapshotStore({ ttlMs: opts.snapshotTtlMs ?? 600_000, max: opts.maxSnapshots ?? 2000, reuseMs: opts.reuseMs ?? 2000 });
  let lastStore: ReplicaStore | null = null;

  return async function feeds(ctx, next) {
    const m = PATH.exec(ctx.path);
    if (!m || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    try {
      const name = decode(m[1]);
      if (name === null || !Object.hasOwn(opts.profiles, name)) throw new ApiError(404, NOT_FOUND);
      const profile = opts.profiles[name];
      if (!opts.replicator.store || !opts.pool.ready) throw new ApiError(503, 'The feed is not available right now.');
      const requester = await opts.identify(ctx);
      // Read the store after the await: it may have been swapped meanwhile.
      const store = opts.replicator.store;
      if (!store) throw new ApiError(503, 'The feed is not available right now.');
      if (store !== lastStore) { snapshots.clear(); lastStore = store; }
      const body = await answer(ctx, store, name, profile, requester);
      ctx.status = 200;
      ctx.set('Content-Type', 'application/json');
      ctx.body = body;
    } catch (e) {
      if (e instanceof ApiError) return sendError(ctx, e.status, e.message, e.data);
      if (e instanceof PbError) return sendError(ctx, e.status, e.message);
      if (e instanceof Unsupported || e instanceof FieldsError) return sendError(ctx, 400, GENERIC);
      if (e instanceof QueryError) {
        if (/no such (table|column)/.test(e.message) || e.code === 'NOT_READY') return sendError(ctx, 503, 'The feed is not available right now.');
        return sendError(ctx, 400, GENERIC);
      }
      throw e;
    }
  };

  async function answer(ctx: Koa.Context, store: ReplicaStore, name: string, profile: FeedProfile, requester: Requester): Promise<string> {
    const query = firstValues(parseGoQuery(ctx.querystring));
    const info: RequestInfo = { context: 'default', method: 'GET', query, headers: requestHeaders(ctx.req), requester };
    const superuser = requester.kind === 'superuser';
    const catalog = catalogOf(store);
    if (requester.kind === 'record' && !store.entry(requester.collectionId)) throw new ApiError(503, 'The feed is not available right now.');
    const coll = catalog.find(profile.collection);
    if (!coll) throw new ApiError(503, 'The feed is not available right now.');
    if ((coll.c.listRule === null || coll.c.listRule === undefined) && !superuser) throw new PbError(403, 'Only superusers can perform this action.');
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
      const shareable = !REQUEST_DEPENDENT.test(coll.c.listRule ?? '') && !REQUEST_DEPENDENT.test(filter);
      const reuseKey = shareable ? JSON.stringify([owner, name, filter, match]) : null;
      snap = await snapshots.obtain(reuseKey, async () => {
        const nowMs = Date.now();
        const { sql, bindings } = rankSql(fq, nowMs, cap);
        const rows = await opts.pool.all<Row>(sql, [bindings]);
        return { owner, profile: name, filter, match, nowMs, ids: rows.map((r) => String(r.id)), terms: rows.map((r) => termsOf(profile, r)) };
      });
      offset = Math.min(snap.ids.length, (params.page - 1) * params.perPage);
    }

    const pageIds = snap.ids.slice(offset, offset + params.perPage);
    let rows: Row[] = [];
    if (pageIds.length > 0) {
      // The snapshot's query, re-checked for the requester now: an item that became invisible is dropped.
      const fq: FeedQuery = { profile, catalog, coll, info, superuser, filter: snap.filter, match: snap.match, me };
      const { sql, bindings } = pageSql(fq, pageIds);
      const byId = new Map((await opts.pool.all<Row>(sql, [bindings])).map((r) => [String(r.id), r]));
      rows = pageIds.map((id) => byId.get(id)).filter((r): r is Row => r !== undefined);
    }
    // The store may have been swapped while the queries ran; expand reads the current one.
    const current = opts.replicator.store ?? store;
    const nodes = rows.map((row) => node(coll, row));
    enrich(current, catalogOf(current), nodes, info);

    const next = offset + params.perPage < snap.ids.length ? snapshots.cursor(snap, offset + params.perPage) : null;
    const page = Math.floor(offset / params.perPage) + 1;
    const total = params.skipTotal ? -1 : snap.ids.length;
    const pages = params.skipTotal ? -1 : Math.ceil(snap.ids.length / params.perPage);
    let extra = `,"cursor":${JSON.stringify(next)}`;
    if (superuser && (query.explain === '1' || query.explain === 'true')) {
      const terms: Record<string, unknown> = {};
      for (const r of rows) terms[String(r.id)] = snap.terms[snap.ids.indexOf(String(r.id), offset)];
      extra += `,"explain":${JSON.stringify({ now: new Date(snap.nowMs).toISOString(), items: terms })}`;
    }
    const tail = `,"page":${numberJson(page)},"perPage":${numberJson(params.perPage)},"totalItems":${total},"totalPages":${pages}${extra}}`;
    if (!fields) return `{"items":[${nodes.map(recordJson).join(',')}]${tail}`;
    const items = nodes.map(recordPlain);
    pick(items, fields);
    return `{"items":${stringifyGo(items)}${tail}`;
  }
}
