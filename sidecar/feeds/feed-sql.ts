// The SQL of a feed, built on the read path's machinery so the rules are PocketBase's: the collection's
// listRule for the requester AND the filter (with the list rules of joined collections), plus the
// profile's requester clauses (exclusions, following-only), then either the ranking (ids and score
// terms, capped) or the page (full rows of given ids, visibility re-checked). A shared ranking (one for
// every requester, see routes.ts) has none of those clauses; each requester's are then applied to its
// items by the filter query, and the requester's items counted by the count query. Rankings run in the
// QueryPool (window.ts drives them); pages are small and run where the caller says (routes.ts).
import type { FeedProfile } from '../../config.js';
import { counterOrderColumn, counterTable, ftsTable, julianDay } from '../../replica/feed-index.js';
import { replicaIndexes } from '../../replica/indexes.js';
import { ApiError } from '../errors.js';
import type { Catalog, CollectionInfo } from '../reads/catalog.js';
import { ROWID } from '../reads/catalog.js';
import { listWhere } from '../reads/query.js';
import type { RequestInfo } from '../reads/request.js';
import { col, q, type ParamBag, type SelectParts } from '../reads/sql.js';
import { counterFor } from './profiles.js';
import { ageOnly, boundSql, relevanceSql, requesterFree, scoreSql, windowable } from './score.js';

export interface FeedQuery {
  profile: FeedProfile;
  catalog: Catalog;
  coll: CollectionInfo;
  info: RequestInfo;
  superuser: boolean;
  filter: string;
  /** FTS5 MATCH expression built by search-text.ts (quoted words only), or null. */
  match: string | null;
  /** The requester's record id (null: anonymous). */
  me: string | null;
  /**
   * The ranking shared by every requester: no list rule, filter, exclusion or following-only clause, so it
   * holds every item any requester could see (only for profiles whose score does not depend on who asks:
   * no following boost, or following.only, whose boost every kept item gets).
   */
  shared?: boolean;
}

export interface Sql { sql: string; bindings: Record<string, unknown> }

/**
 * How to rank a feed (run by window.ts). Every ranking selects, best first and at most `cap` rows (the
 * depth asked for: fewer rows means every visible item), the columns id, rid, fld, rel, age, i0.., fol,
 * score; window rankings also `bound`.
 */
export interface RankPlan {
  cap: number;
  /** Every visible item scored (for scores of age alone: the newest visible items, by the date index). */
  full: Sql;
  /** A candidate window, exact when window.ts accepts it; null when the score cannot bound the rest. */
  window: WindowPlan | null;
}

export interface WindowPlan {
  /** The freshness value at offset @o of the date index, newest first (no row: fewer items than that). */
  cut: Sql;
  /** max(rowid) as `n`: at least the number of items (a window near that size is no cheaper than the full ranking). */
  size: Sql;
  /** Ranks the candidates of a cut and a K (bound as `cutParam`, `kParam`); rows carry `bound`. */
  rank: Sql;
  cutParam: string;
  kParam: string;
  /**
   * With a search text (positive text weight): the matches best by relevance first, bm25 ascending, at
   * most @l (`rid`, `bm`). The first `l` of them are candidates too (their rowids bound as `topParam`, a
   * JSON array), and the l-th one's bm25 (as `bmParam`) bounds the relevance of every other match.
   */
  top: Sql | null;
  topParam: string;
  bmParam: string;
}

const unavailable = (why: string) => new ApiError(503, 'The feed is not available right now.', { reason: why });

/** A related collection and fields named by the profile, checked against the catalog (never spliced raw). */
function related(catalog: Catalog, name: string, fields: string[]): CollectionInfo {
  const c = catalog.find(name);
  if (!c) throw unavailable(`collection ${name} is not replicated`);
  for (const f of fields) if (!c.fields.has(f)) throw unavailable(`field ${name}.${f} is missing`);
  return c;
}

function field(coll: CollectionInfo, name: string): string {
  if (!coll.fields.has(name)) throw unavailable(`field ${coll.c.name}.${name} is missing`);
  return col(coll.spec.table, name);
}

/** EXISTS: the requester follows the item's author (the boost of a profile that keeps every author). */
function followedSql(fq: FeedQuery, bag: ParamBag): string {
  const f = fq.profile.following!;
  if (fq.me === null) return '0';
  const fc = related(fq.catalog, f.collection, [f.follower, f.following]);
  const me = bag.add(fq.me);
  return `EXISTS (SELECT 1 FROM ${q(fc.spec.table)} "_hapta_fw" WHERE ${col('_hapta_fw', f.follower)} = @${me} AND ${col('_hapta_fw', f.following)} = ${field(fq.coll, f.authorField)})`;
}

/**
 * following.only: the author is among the requester's follows. Written as IN (the follows of the
 * requester) so SQLite walks the follows and then the items by the author index, not every item.
 */
function followingOnlySql(fq: FeedQuery, bag: ParamBag): string {
  const f = fq.profile.following!;
  if (fq.me === null) return '0';
  const fc = related(fq.catalog, f.collection, [f.follower, f.following]);
  const me = bag.add(fq.me);
  return `${field(fq.coll, f.authorField)} IN (SELECT ${col('_hapta_fw', f.following)} FROM ${q(fc.spec.table)} "_hapta_fw" WHERE ${col('_hapta_fw', f.follower)} = @${me})`;
}

/** listRule + filter + requester clauses (none for a shared ranking); the resolver's joins (and joined list rules) applied. */
function where(fq: FeedQuery): { parts: SelectParts; bag: ParamBag } {
  if (fq.shared) {
    // A following boost for some items only would be the requester's: such a ranking is never shared.
    if (!requesterFree(fq.profile)) throw new Error('feed: a ranking whose score depends on the requester cannot be shared');
    const { ctx, parts, resolver } = listWhere(fq.catalog, fq.coll, fq.info, '', true);
    resolver.updateQuery(parts);
    return { parts, bag: ctx.bag };
  }
  const { ctx, parts, resolver } = listWhere(fq.catalog, fq.coll, fq.info, fq.filter, fq.superuser);
  const bag = ctx.bag;
  if (fq.me !== null) {
    for (const [k, ex] of (fq.profile.exclude ?? []).entries()) {
      const xc = related(fq.catalog, ex.collection, [ex.requesterField, ex.targetField]);
      const me = bag.add(fq.me);
      const a = `_hapta_x${k}`;
      parts.wheres.push(`NOT EXISTS (SELECT 1 FROM ${q(xc.spec.table)} ${q(a)} WHERE ${col(a, ex.requesterField)} = @${me} AND ${col(a, ex.targetField)} = ${field(fq.coll, ex.itemField)})`);
    }
  }
  if (fq.profile.following?.only) parts.wheres.push(followingOnlySql(fq, bag));
  resolver.updateQuery(parts);
  return { parts, bag };
}

function ftsName(fq: FeedQuery): string {
  const t = fq.profile.text!;
  for (const f of t.fields) field(fq.coll, f);
  return q(ftsTable(fq.coll.c.name));
}

/** The MATCH text restricted to the profile's columns (the FTS table may index more for other profiles). */
function matchText(fq: FeedQuery): string {
  const cols = `{${fq.profile.text!.fields.join(' ')}}`;
  return fq.match!.split(' ').map((w) => `${cols} : ${w}`).join(' AND ');
}

/**
 * True when the freshness field is a PocketBase date (stored as "YYYY-MM-DD HH:MM:SS.sssZ" or "", so text
 * order is time order) with a replica index led by it (the window's cut and range are index walks).
 */
function dateIndexed(coll: CollectionInfo, name: string): boolean {
  const f = coll.fields.get(name);
  if (!f || (f.type !== 'date' && f.type !== 'autodate')) return false;
  const lead = `(${q(name)}`;
  return replicaIndexes(coll.spec, coll.c.indexes ?? []).some((sql) => {
    const i = sql.indexOf(' ON ');
    const cols = sql.slice(sql.indexOf('(', i));
    return cols.startsWith(lead) && /^\("(?:[^"]|"")+"(?:\s+(?:ASC|DESC))?\s*[,)]/.test(cols);
  });
}

/** True when a search's relevance takes part in its candidate windows (a positive text weight). */
function relevanceWindow(fq: FeedQuery): boolean {
  return fq.match !== null && !!fq.profile.text && fq.profile.text.weight > 0;
}

interface Ranking { sql: Sql; cutParam: string; kParam: string; topParam: string; bmParam: string }

/**
 * One ranking statement. `window`: only candidates (freshness field >= @cut, or among the K largest
 * values of a counter of positive weight, or, with a search, among the best matches by relevance), with
 * the bound on every other item's score as a column.
 */
function ranking(fq: FeedQuery, nowMs: number, cap: number, window: boolean): Ranking {
  const { parts, bag } = where(fq);
  const p = fq.profile;
  const t = fq.coll.spec.table;
  const now = bag.add(julianDay(nowMs));
  const ctes: string[] = [];
  const byRelevance = window && relevanceWindow(fq);
  const fld = p.freshness ? field(fq.coll, p.freshness.field) : 'NULL';
  const age = p.freshness ? `COALESCE(MAX(0.0, (@${now} - julianday(${fld})) * 24.0), 1e6)` : '0.0';
  const counters = (p.interactions ?? []).map((i, k) => {
    const c = counterFor(i);
    const alias = `_hapta_c${k}`;
    parts.joins.push({ table: q(counterTable(c.name)), alias, on: `${col(alias, 'target')} = ${col(t, 'id')}` });
    if (!c.halfLifeHours) return { c, value: `COALESCE(${col(alias, 'n')}, 0)`, factor: '' };
    const key = bag.add(`counter_epoch:${c.name}`);
    // The epoch is read in the same statement as the sums: a rebase commits both together.
    const epoch = `COALESCE((SELECT CAST(value AS REAL) FROM "_hapta_state" WHERE key = @${key}), @${now})`;
    const factor = `pow(2.0, -((@${now} - ${epoch}) * 24.0) / ${Number(c.halfLifeHours)})`;
    return { c, value: `(COALESCE(${col(alias, 'd')}, 0.0) * ${factor})`, factor };
  });
  // A shared ranking keeps no requester's follows: following.only's boost is every kept item's.
  const fol = fq.shared ? (p.following?.only ? '1' : '0') : p.following && !p.following.only ? followedSql(fq, bag) : p.following?.only ? '1' : '0';
  let cutParam = '';
  let kParam = '';
  let topParam = '';
  let bmParam = '';
  let bound = '';
  if (window) {
    cutParam = bag.add('');
    kParam = bag.add(0);
    const k = `CAST(@${kParam} AS INTEGER)`;
    const cand = [`SELECT rowid FROM ${q(t)} WHERE ${fld} >= @${cutParam}`];
    if (byRelevance) {
      topParam = bag.add('[]');
      bmParam = bag.add(0);
      cand.unshift(`SELECT value FROM json_each(@${topParam})`);
    }
    const values = counters.map((x, n) => {
      if (!(p.interactions![n].weight > 0)) return '0.0';
      const table = q(counterTable(x.c.name));
      const o = q(counterOrderColumn(x.c));
      cand.push(`SELECT rowid FROM ${q(t)} WHERE ${col(t, 'id')} IN (SELECT target FROM ${table} ORDER BY ${o} DESC LIMIT ${k})`);
      // The K-th largest value (the order column's), computed as the items' values are; no K-th row:
      // every item with a row is a candidate, the others have 0.
      const kth = `(SELECT ${o} FROM ${table} ORDER BY ${o} DESC LIMIT 1 OFFSET ${k} - 1)`;
      return x.factor ? `(MAX(COALESCE(${kth}, 0.0), 0.0) * ${x.factor})` : `MAX(COALESCE(${kth}, 0), 0)`;
    });
    // UNION ALL: each part walks its index (a UNION would merge them in rowid order, scanning the table);
    // the IN below makes a set of them.
    ctes.push(`"_hapta_cand"(rid) AS (${cand.join(' UNION ALL ')})`);
    // With relevance the matches among the candidates drive the query (below), already a subset.
    if (!byRelevance) parts.wheres.push(`${q(t)}.rowid IN (SELECT rid FROM "_hapta_cand")`);
    // Items outside the window have a freshness value below the cut in text order (time order for
    // PocketBase dates), so a julianday at most the cut's, or no valid date (age 1e6).
    const ageBound = `COALESCE(MIN(MAX(0.0, (@${now} - julianday(@${cutParam})) * 24.0), 1e6), 0.0)`;
    // A match outside the best l has a bm25 at least the l-th one's (@bm): relevance at most its relevance.
    const rel = byRelevance ? relevanceSql(p, `@${bmParam}`) : '0.0';
    bound = `, ${boundSql(p, { rel, age: ageBound, interactions: values, followable: fq.me !== null })} AS bound`;
  }
  let rel = '0.0';
  if (fq.match !== null && p.text) {
    const fts = ftsName(fq);
    const m = bag.add(matchText(fq));
    // A window scores only the matches among its candidates (bm25 of those rows alone: one pass over
    // the doclists, FTS5's statistics for the rest); the full ranking every match.
    const only = byRelevance ? ` AND +rowid IN (SELECT rid FROM "_hapta_cand")` : '';
    ctes.push(`"_hapta_m" AS MATERIALIZED (SELECT rowid AS rid, bm25(${fts}) AS bm FROM ${fts} WHERE ${fts} MATCH @${m}${only})`);
    parts.joins.push({ table: '"_hapta_m"', alias: '_hapta_mm', on: `"_hapta_mm".rid = ${q(t)}.rowid` });
    // Driven by the matches (rowid lookups), not by a scan of every item.
    parts.wheres.push(`${q(t)}.rowid IN (SELECT rid FROM "_hapta_m")`);
    rel = relevanceSql(p, '"_hapta_mm".bm');
  }
  const cols = [`${col(t, 'id')} AS id`, `${q(t)}.rowid AS rid`, `${fld} AS fld`, `${rel} AS rel`, `${age} AS age`,
    ...counters.map((x, k) => `${x.value} AS i${k}`), `${fol} AS fol`];
  let inner = parts.select(cols.join(', '));
  if (!window && ageOnly(p, fq.match !== null)) inner += ` ORDER BY ${fld} DESC, ${q(t)}.rowid DESC LIMIT ${cap}`;
  const score = scoreSql(p, { rel: 'rel', age: 'age', interactions: counters.map((_x, k) => `i${k}`), followed: 'fol' });
  const withClause = ctes.length ? `WITH ${ctes.join(', ')} ` : '';
  const sql = `${withClause}SELECT *, ${score} AS score${bound} FROM (${inner}) ORDER BY score DESC, fld DESC, rid DESC LIMIT ${cap}`;
  return { sql: { sql, bindings: bag.bindingsFor(sql) }, cutParam, kParam, topParam, bmParam };
}

/** True when rankPlan gives this query a candidate window. */
export function hasWindow(fq: FeedQuery): boolean {
  const p = fq.profile;
  const hasQuery = fq.match !== null;
  // A following-only feed is already driven by the requester's follows (a few authors' items); the
  // counters' top K are mostly other authors' items and would not bound it. The shared ranking of such a
  // profile has no follows to be driven by: every item is in it, and windows bound it as any other.
  return !!p.freshness && !ageOnly(p, hasQuery) && windowable(p, hasQuery) && (fq.shared === true || !p.following?.only) && dateIndexed(fq.coll, p.freshness.field);
}

/** The full ranking, and a candidate window when the profile's score allows one (see window.ts). */
export function rankPlan(fq: FeedQuery, nowMs: number, cap: number): RankPlan {
  const full = ranking(fq, nowMs, cap, false).sql;
  if (!hasWindow(fq)) return { cap, full, window: null };
  const w = ranking(fq, nowMs, cap, true);
  const t = fq.coll.spec.table;
  const fld = field(fq.coll, fq.profile.freshness!.field);
  const cut = { sql: `SELECT ${fld} AS v FROM ${q(t)} ORDER BY ${fld} DESC LIMIT 1 OFFSET CAST(@o AS INTEGER)`, bindings: { o: 0 } };
  const size = { sql: `SELECT max(rowid) AS n FROM ${q(t)}`, bindings: {} };
  let top: Sql | null = null;
  if (relevanceWindow(fq)) {
    // The same bm25 expression as the ranking's, so the l-th value bounds the others exactly.
    const fts = ftsName(fq);
    const sql = `SELECT rid, bm FROM (SELECT rowid AS rid, bm25(${fts}) AS bm FROM ${fts} WHERE ${fts} MATCH @m) ORDER BY bm, rid LIMIT CAST(@l AS INTEGER)`;
    top = { sql, bindings: { m: matchText(fq), l: 0 } };
  }
  return { cap, full, window: { cut, size, rank: w.sql, cutParam: w.cutParam, kParam: w.kParam, top, topParam: w.topParam, bmParam: w.bmParam } };
}

/** The full ranking alone (every visible item scored): the reference a window must equal. */
export function rankSql(fq: FeedQuery, nowMs: number, cap: number): Sql {
  return ranking(fq, nowMs, cap, false).sql;
}

/** The requester's filter over a shared ranking: the rowids among @`idsParam` (a JSON array) that pass their clauses. */
export interface FilterSql extends Sql {
  idsParam: string;
}

/**
 * The requester's clauses (list rule, filter, exclusions, following-only) over given rowids. The match is
 * not checked again: a shared ranking of a search holds matches only.
 */
export function filterSql(fq: FeedQuery): FilterSql {
  const { parts, bag } = where({ ...fq, shared: false });
  const t = fq.coll.spec.table;
  const list = bag.add('[]');
  parts.wheres.push(`${q(t)}.rowid IN (SELECT value FROM json_each(@${list}))`);
  const sql = parts.select(`${q(t)}.rowid AS rid`);
  return { sql, bindings: bag.bindingsFor(sql), idsParam: list };
}

/** `n`: how many items the requester's own ranking holds (their visible items, matches of a search), at most `cap`. */
export function countSql(fq: FeedQuery, cap: number): Sql {
  const { parts, bag } = where({ ...fq, shared: false });
  const t = fq.coll.spec.table;
  if (fq.match !== null && fq.profile.text) {
    const fts = ftsName(fq);
    const m = bag.add(matchText(fq));
    parts.wheres.push(`${q(t)}.rowid IN (SELECT rowid FROM ${fts} WHERE ${fts} MATCH @${m})`);
  }
  const sql = `SELECT count(*) AS n FROM (${parts.select(`${q(t)}.rowid`)} LIMIT ${Math.max(0, Math.floor(cap))})`;
  return { sql, bindings: bag.bindingsFor(sql) };
}

/** Full rows of `ids` the requester may still see in this feed (rule, filter, exclusions, match). */
export interface PageSql extends Sql {
  /** The parameter holding the JSON array of ids: set it to load other ids with the same statement. */
  idsParam: string;
  /** The parameters of the match re-check's rowid range (null without one): set to the page's range. */
  rowidParams: [string, string] | null;
}

/**
 * The page query. With a search, the match is re-checked over the rowid range of the page only (FTS5
 * answers a range with one pass over the matches in it; a lookup per rowid costs a seek per item).
 */
export function pageSql(fq: FeedQuery, ids: string[], rowidRange: [number, number] = [-(2 ** 53), 2 ** 53]): PageSql {
  const { parts, bag } = where(fq);
  const t = fq.coll.spec.table;
  const list = bag.add(JSON.stringify(ids));
  parts.wheres.push(`${col(t, 'id')} IN (SELECT value FROM json_each(@${list}))`);
  let rowidParams: [string, string] | null = null;
  if (fq.match !== null && fq.profile.text) {
    const fts = ftsName(fq);
    const m = bag.add(matchText(fq));
    rowidParams = [bag.add(BigInt(rowidRange[0])), bag.add(BigInt(rowidRange[1]))];
    // `+`: the ids drive the query; the matches in the range are one set it is checked against.
    parts.wheres.push(`+${q(t)}.rowid IN (SELECT rowid FROM ${fts} WHERE ${fts} MATCH @${m} AND rowid >= @${rowidParams[0]} AND rowid <= @${rowidParams[1]})`);
  }
  const sql = `${parts.select(`${q(t)}.*`)} ORDER BY ${col(t, ROWID)}`;
  return { sql, bindings: bag.bindingsFor(sql), idsParam: list, rowidParams };
}
