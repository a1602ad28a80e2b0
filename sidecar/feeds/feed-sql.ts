// The SQL of a feed, built on the read path's machinery so the rules are PocketBase's: the collection's
// listRule for the requester AND the filter (with the list rules of joined collections), plus the
// profile's requester clauses (exclusions, following-only), then either the ranking (ids and score
// terms, capped) or the page (full rows of given ids, visibility re-checked). Runs in the QueryPool.
import type { FeedProfile } from '../../config.js';
import { counterTable, ftsTable, julianDay } from '../../replica/feed-index.js';
import { ApiError } from '../errors.js';
import type { Catalog, CollectionInfo } from '../reads/catalog.js';
import { ROWID } from '../reads/catalog.js';
import { listWhere } from '../reads/query.js';
import type { RequestInfo } from '../reads/request.js';
import { col, q, type ParamBag, type SelectParts } from '../reads/sql.js';
import { counterFor } from './profiles.js';
import { ageOnly, relevanceSql, scoreSql } from './score.js';

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
}

export interface Sql { sql: string; bindings: Record<string, unknown> }

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

/** EXISTS: the requester follows the item's author. */
function followedSql(fq: FeedQuery, bag: ParamBag): string {
  const f = fq.profile.following!;
  if (fq.me === null) return '0';
  const fc = related(fq.catalog, f.collection, [f.follower, f.following]);
  const me = bag.add(fq.me);
  return `EXISTS (SELECT 1 FROM ${q(fc.spec.table)} "_hapta_fw" WHERE ${col('_hapta_fw', f.follower)} = @${me} AND ${col('_hapta_fw', f.following)} = ${field(fq.coll, f.authorField)})`;
}

/** listRule + filter + requester clauses; the resolver's joins (and joined list rules) applied. */
function where(fq: FeedQuery): { parts: SelectParts; bag: ParamBag } {
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
  if (fq.profile.following?.only) parts.wheres.push(followedSql(fq, bag));
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
 * Ranked ids with their terms, best first, at most `cap`: columns id, rid, fld, rel, age, i0.., fol, score.
 * Profiles whose score depends on age alone walk the date index instead of scoring every item.
 */
export function rankSql(fq: FeedQuery, nowMs: number, cap: number): Sql {
  const { parts, bag } = where(fq);
  const p = fq.profile;
  const t = fq.coll.spec.table;
  const now = bag.add(julianDay(nowMs));
  let withClause = '';
  let rel = '0.0';
  if (fq.match !== null && p.text) {
    const fts = ftsName(fq);
    const m = bag.add(matchText(fq));
    withClause = `WITH "_hapta_m" AS MATERIALIZED (SELECT rowid AS rid, bm25(${fts}) AS bm FROM ${fts} WHERE ${fts} MATCH @${m}) `;
    parts.joins.push({ table: '"_hapta_m"', alias: '_hapta_mm', on: `"_hapta_mm".rid = ${q(t)}.rowid` });
    parts.wheres.push('"_hapta_mm".rid IS NOT NULL');
    rel = relevanceSql(p, '"_hapta_mm".bm');
  }
  const fld = p.freshness ? field(fq.coll, p.freshness.field) : 'NULL';
  const age = p.freshness ? `COALESCE(MAX(0.0, (@${now} - julianday(${fld})) * 24.0), 1e6)` : '0.0';
  const inter = (p.interactions ?? []).map((i, k) => {
    const c = counterFor(i);
    const alias = `_hapta_c${k}`;
    parts.joins.push({ table: q(counterTable(c.name)), alias, on: `${col(alias, 'target')} = ${col(t, 'id')}` });
    if (!c.halfLifeHours) return `COALESCE(${col(alias, 'n')}, 0)`;
    const key = bag.add(`counter_epoch:${c.name}`);
    // The epoch is read in the same statement as the sums: a rebase commits both together.
    const epoch = `COALESCE((SELECT CAST(value AS REAL) FROM "_hapta_state" WHERE key = @${key}), @${now})`;
    return `(COALESCE(${col(alias, 'd')}, 0.0) * pow(2.0, -((@${now} - ${epoch}) * 24.0) / ${Number(c.halfLifeHours)}))`;
  });
  const fol = p.following && !p.following.only ? followedSql(fq, bag) : p.following?.only ? '1' : '0';
  const cols = [`${col(t, 'id')} AS id`, `${q(t)}.rowid AS rid`, `${fld} AS fld`, `${rel} AS rel`, `${age} AS age`,
    ...inter.map((x, k) => `${x} AS i${k}`), `${fol} AS fol`];
  let inner = parts.select(cols.join(', '));
  if (ageOnly(p, fq.match !== null)) inner += ` ORDER BY ${fld} DESC, ${q(t)}.rowid DESC LIMIT ${cap}`;
  const score = scoreSql(p, { rel: 'rel', age: 'age', interactions: inter.map((_x, k) => `i${k}`), followed: 'fol' });
  const sql = `${withClause}SELECT *, ${score} AS score FROM (${inner}) ORDER BY score DESC, fld DESC, rid DESC LIMIT ${cap}`;
  return { sql, bindings: bag.bindingsFor(sql) };
}

/** Full rows of `ids` the requester may still see in this feed (rule, filter, exclusions, match). */
export function pageSql(fq: FeedQuery, ids: string[]): Sql {
  const { parts, bag } = where(fq);
  const t = fq.coll.spec.table;
  const list = bag.add(JSON.stringify(ids));
  parts.wheres.push(`${col(t, 'id')} IN (SELECT value FROM json_each(@${list}))`);
  if (fq.match !== null && fq.profile.text) {
    const fts = ftsName(fq);
    const m = bag.add(matchText(fq));
    parts.wheres.push(`EXISTS (SELECT 1 FROM ${fts} WHERE ${fts} MATCH @${m} AND ${fts}.rowid = ${q(t)}.rowid)`);
  }
  const sql = `${parts.select(`${q(t)}.*`)} ORDER BY ${col(t, ROWID)}`;
  return { sql, bindings: bag.bindingsFor(sql) };
}
