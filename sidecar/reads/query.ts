// Builds and runs the SELECTs of the read path (list page + COUNT, view by id, records by ids for expand
// and the manageRule email check) the way PocketBase's search provider and record queries shape them.
// Statements are prepared once per SQL text (bounded LRU per replica connection); results of
// deterministic queries are cached until the replica applies a change to a table they read.
import { ApiError } from '../errors.js';
import type Database from 'better-sqlite3';
import type { ReplicaStore } from '../../replica/store.js';
import { parseFilter, parseSort, FilterSyntaxError, type SortItem } from '../filter/index.js';
import { Lru } from '../lru.js';
import type { Catalog, CollectionInfo } from './catalog.js';
import { ROWID } from './catalog.js';
import { ResolveError, Unsupported } from './errors.js';
import { buildFilter, parseRule } from './filter-sql.js';
import type { RequestInfo } from './request.js';
import { FieldResolver, type BuildContext } from './resolver.js';
import { col, ParamBag, q, SelectParts } from './sql.js';

export type Row = Record<string, unknown>;

/**
 * Result caching with per-table freshness. Each replica table has a version, bumped when the replica
 * applies a change to it (`invalidateResults(tables)`); `invalidateResults()` makes everything stale
 * (schema changes). A cached result remembers the tables its SQL reads, taken from the SQL text itself:
 * every table the read path names is a quoted identifier, so the quoted identifiers of a statement are a
 * superset of what it reads, and a change to any of them makes the result stale.
 */
let epoch = 0;
const versions = new Map<string, number>();

export function invalidateResults(tables?: Iterable<string>): void {
  if (tables === undefined) { epoch++; return; }
  for (const t of tables) versions.set(t, (versions.get(t) ?? 0) + 1);
}

/** The tables some results were computed from, with their versions at that moment. */
export class ReadSet {
  private epoch = epoch;
  private readonly tables = new Map<string, number>();

  add(tables: readonly string[]): void {
    for (const t of tables) if (!this.tables.has(t)) this.tables.set(t, versions.get(t) ?? 0);
  }

  merge(other: ReadSet): void {
    this.epoch = Math.min(this.epoch, other.epoch);
    for (const [t, v] of other.tables) {
      const mine = this.tables.get(t);
      if (mine === undefined || v < mine) this.tables.set(t, v);
    }
  }

  /** True while none of the tables changed since they were read. */
  fresh(): boolean {
    if (this.epoch !== epoch) return false;
    for (const [t, v] of this.tables) if ((versions.get(t) ?? 0) !== v) return false;
    return true;
  }
}

let tracking: ReadSet | null = null;

/** Runs `fn` and returns what it computed together with every table its queries read. */
export function tracked<T>(fn: () => T): { value: T; reads: ReadSet } {
  const outer = tracking;
  const reads = new ReadSet();
  tracking = reads;
  try {
    return { value: fn(), reads };
  } finally {
    tracking = outer;
    outer?.merge(reads);
  }
}

/** The quoted identifiers of a statement (tables among them). */
function identifiers(sql: string): string[] {
  const out = new Set<string>();
  for (const m of sql.matchAll(/"((?:[^"]|"")*)"/g)) out.add(m[1].replace(/""/g, '"'));
  return [...out];
}

interface Prepared { stmt: Database.Statement; tables: string[] }
interface CachedResult { value: unknown; reads: ReadSet }
interface StoreCache { statements: Lru<string, Prepared>; results: Lru<string, CachedResult> }
const caches = new WeakMap<ReplicaStore, StoreCache>();

function cacheOf(store: ReplicaStore): StoreCache {
  let c = caches.get(store);
  if (!c) caches.set(store, (c = { statements: new Lru(500), results: new Lru(4000) }));
  return c;
}

/** Runs a query; SQLite errors (e.g. a malformed JSON path) become PocketBase's generic 400. */
function run<T>(store: ReplicaStore, sql: string, bag: ParamBag, mode: 'all' | 'get', cacheable: boolean): T {
  const cache = cacheOf(store);
  const bindings = bag.bindingsFor(sql);
  const key = cacheable ? sql + '\u0000' + JSON.stringify(bindings, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) : '';
  if (cacheable) {
    const hit = cache.results.get(key);
    if (hit !== undefined && hit.reads.fresh()) {
      tracking?.merge(hit.reads);
      return hit.value as T;
    }
  }
  let prepared = cache.statements.get(sql);
  try {
    if (!prepared) {
      prepared = { stmt: store.db.prepare(sql), tables: identifiers(sql) };
      cache.statements.set(sql, prepared);
    }
    // The versions are taken before the query runs: a change applied later makes the result stale.
    const reads = new ReadSet();
    reads.add(prepared.tables);
    const out = (mode === 'all' ? prepared.stmt.all(bindings) : prepared.stmt.get(bindings)) as T;
    tracking?.merge(reads);
    if (cacheable) cache.results.set(key, { value: out ?? null, reads });
    return out;
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('SQLITE_') || e instanceof RangeError || e instanceof TypeError) {
      throw new ResolveError(`sqlite: ${(e as Error).message}`);
    }
    throw e;
  }
}

export function newContext(catalog: Catalog, info: RequestInfo): BuildContext {
  return {
    bag: new ParamBag(), catalog, info,
    buildRule: (text, r) => {
      try {
        return buildFilter(parseRule(text), r);
      } catch (e) {
        if (e instanceof FilterSyntaxError) throw new Unsupported('rule_syntax');
        throw e;
      }
    },
  };
}

export interface ListParams {
  page: number;
  perPage: number;
  skipTotal: boolean;
  sort: SortItem[];
  filter: string;
}

/**
 * The WHERE of a list request (listRule compiled for the requester AND the filter) on one resolver, as
 * PocketBase builds it; the caller adds sort/joins and must call resolver.updateQuery(parts) last (it
 * adds the joins and the list rules of joined collections). Also used by the feeds.
 */
export function listWhere(catalog: Catalog, coll: CollectionInfo, info: RequestInfo, filter: string, superuser: boolean): { ctx: BuildContext; parts: SelectParts; resolver: FieldResolver } {
  const ctx = newContext(catalog, info);
  const parts = new SelectParts(coll.spec.table);
  // One resolver for rule, filter and sort, as in PocketBase: their joins are shared by alias.
  const r = new FieldResolver(ctx, coll, true);
  const rule = coll.c.listRule;
  if (!superuser && rule) parts.wheres.push(ctx.buildRule(rule, r));
  r.allowHidden = superuser;
  if (filter !== '') {
    let node;
    try {
      node = parseFilter(filter);
    } catch (e) {
      if (e instanceof FilterSyntaxError) throw new ResolveError(e.message);
      throw e;
    }
    parts.wheres.push(buildFilter(node, r));
  }
  return { ctx, parts, resolver: r };
}

export interface ListResult { rows: Row[]; page: number; perPage: number; totalItems: number; totalPages: number }

/** recordsList: rule AND filter, sort, joins (+ joined collections' list rules), page and COUNT. */
export function listRecords(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, info: RequestInfo, p: ListParams, superuser: boolean): ListResult {
  const { ctx, parts, resolver: r } = listWhere(catalog, coll, info, p.filter, superuser);
  let random = false;
  for (const s of p.sort) {
    if (s.kind === 'random') { random = true; parts.orderBy.push('RANDOM()'); continue; }
    if (s.kind === 'rowid') { parts.orderBy.push(`${col(coll.spec.table, ROWID)} ${s.direction}`); continue; }
    const res = r.resolve(s.field.name);
    if (res.params.size > 0 || res.id === '' || res.id.toLowerCase() === 'null') throw new ResolveError(`invalid sort field ${s.field.name}`);
    parts.orderBy.push(`${res.id} ${s.direction}`);
  }
  r.updateQuery(parts);
  // Without a sort PocketBase returns SQLite's natural (rowid) order; make it explicit. Ties are undefined
  // in PocketBase, but its usual plan for a sort on an indexed column walks that index (ties in rowid
  // order along the walk), so break ties the same way to keep pages identical in the common case.
  const order = [...parts.orderBy, `${col(coll.spec.table, ROWID)} ${tieDirection(coll, p.sort)}`];
  const offset = goIntMul(p.perPage, p.page - 1);
  const itemsSql = `${parts.select(`${q(coll.spec.table)}.*`)} ORDER BY ${order.join(', ')} LIMIT ${p.perPage} OFFSET ${offset}`;
  const rows = run<Row[]>(store, itemsSql, ctx.bag, 'all', !random);
  let totalItems = -1;
  let totalPages = -1;
  if (!p.skipTotal) {
    // Joins may repeat a record; without them each row is one record and COUNT(*) can read an index alone.
    const counted = parts.joins.length === 0 ? 'COUNT(*)' : `COUNT(DISTINCT ${col(coll.spec.table, ROWID)})`;
    const countSql = `SELECT ${counted} AS n${parts.from()}`;
    totalItems = Number(run<{ n: number }>(store, countSql, ctx.bag, 'get', true).n);
    totalPages = Math.ceil(totalItems / p.perPage);
  }
  return { rows, page: p.page, perPage: p.perPage, totalItems, totalPages };
}

function tieDirection(coll: CollectionInfo, sort: SortItem[]): 'ASC' | 'DESC' {
  const first = sort[0];
  if (!first || first.kind !== 'field' || first.direction !== 'DESC') return 'ASC';
  const name = first.field.name;
  const indexed = (coll.c.indexes ?? []).some((idx) => {
    const m = /\(\s*[`"'[]?(\w+)/.exec(idx);
    return m !== null && m[1] === name;
  });
  return indexed || name === 'id' ? 'DESC' : 'ASC';
}

/** Go's int64 multiplication wraps; SQLite treats a negative OFFSET as 0. */
function goIntMul(a: number, b: number): string {
  const x = BigInt.asIntN(64, BigInt(a) * BigInt(b));
  return x.toString();
}

/** recordView / expand fetch: records by id under a view rule (null rule: superusers only). */
export function findByIds(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, info: RequestInfo, ids: string[], superuser: boolean): Row[] {
  if (ids.length === 0) return [];
  const ctx = newContext(catalog, info);
  const parts = new SelectParts(coll.spec.table);
  const idsParam = ctx.bag.add(JSON.stringify(ids));
  parts.wheres.push(`${col(coll.spec.table, 'id')} IN (SELECT value FROM json_each(@${idsParam}))`);
  const rule = coll.c.viewRule;
  if (!superuser) {
    if (rule === null || rule === undefined) throw new ApiError(403, 'Only superusers can perform this action.');
    if (rule !== '') {
      const r = new FieldResolver(ctx, coll, true);
      parts.wheres.push(ctx.buildRule(rule, r));
      r.updateQuery(parts);
    }
  }
  return run<Row[]>(store, `${parts.select(`${q(coll.spec.table)}.*`)}`, ctx.bag, 'all', true);
}

/** Ids among `ids` that the requester may manage (the manageRule of an auth collection). */
export function managedIds(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, info: RequestInfo, ids: string[]): Set<string> {
  const rule = coll.c.manageRule;
  if (rule === null || rule === undefined || rule === '' || ids.length === 0) return new Set();
  const ctx = newContext(catalog, info);
  const parts = new SelectParts(coll.spec.table);
  const idsParam = ctx.bag.add(JSON.stringify(ids));
  parts.wheres.push(`${col(coll.spec.table, 'id')} IN (SELECT value FROM json_each(@${idsParam}))`);
  const r = new FieldResolver(ctx, coll, true);
  parts.wheres.push(ctx.buildRule(rule, r));
  r.updateQuery(parts);
  const rows = run<Row[]>(store, parts.select(`${col(coll.spec.table, 'id')} AS id`), ctx.bag, 'all', true);
  return new Set(rows.map((x) => String(x.id)));
}

/** Back-relation ids for expand: up to 1000 records of `back` pointing at `id`, in rowid order. */
export function backRelationIds(store: ReplicaStore, back: CollectionInfo, field: string, multiple: boolean, id: string): string[] {
  const bag = new ParamBag();
  const p = bag.add(id);
  const t = q(back.spec.table);
  const where = multiple
    ? `EXISTS (SELECT 1 FROM json_each(CASE WHEN iif(json_valid(${q(field)}), json_type(${q(field)})='array', FALSE) THEN ${q(field)} ELSE json_array(${q(field)}) END) je WHERE je.value = @${p})`
    : `${q(field)} = @${p}`;
  const order = multiple ? [] : indexTail(back, field).filter((c) => back.fields.has(c)).map((c) => `${q(c)} ASC`);
  const sql = `SELECT id FROM ${t} WHERE ${where} ORDER BY ${[...order, `${q(ROWID)} ASC`].join(', ')} LIMIT 1000`;
  const rows = run<Row[]>(store, sql, bag, 'all', true);
  return rows.map((x) => String(x.id));
}

/**
 * PocketBase runs this lookup without ORDER BY: SQLite walks an index led by the field when there is one,
 * so rows come in the order of that index's remaining columns (then rowid). Mirror the first such index.
 */
function indexTail(coll: CollectionInfo, field: string): string[] {
  for (const idx of coll.c.indexes ?? []) {
    const m = /\bON\b[^(]*\((.*)\)/is.exec(idx);
    if (!m) continue;
    const cols = m[1].split(',').map((c) => c.trim().split(/\s+/)[0].replace(/^[`"'[]|[`"'\]]$/g, ''));
    if (cols[0] === field) return cols.slice(1);
  }
  return [];
}

export function parseSortParam(raw: string): SortItem[] {
  try {
    return parseSort(raw);
  } catch (e) {
    if (e instanceof FilterSyntaxError) throw new ResolveError(e.message);
    throw e;
  }
}
