// Builds and runs the SELECTs of the read path (list page + COUNT, view by id, records by ids for expand
// and the manageRule email check) the way PocketBase's search provider and record queries shape them.
// Statements are prepared once per SQL text (bounded LRU per replica connection); results of
// deterministic queries are cached until the replica applies a change to a table they read.
import { ApiError } from '../errors.js';
import BetterSqlite from 'better-sqlite3';
import type Database from 'better-sqlite3';
import type { PlannerSchema } from '../../replica/change-source.js';
import { SEGMENT_SIZE, segmentOf, type ReplicaStore } from '../../replica/store.js';
import { rowidAlias } from '../../replica/schema.js';
import type { Replicator } from '../../replica/replicator.js';
import { parseFilter, parseSort, FilterSyntaxError, type SortItem } from '../filter/index.js';
import { Lru } from '../lru.js';
import type { Catalog, CollectionInfo } from './catalog.js';
import { isMultiple, ROWID } from './catalog.js';
import { ResolveError, Unsupported } from './errors.js';
import { buildFilter, parseRule } from './filter-sql.js';
import type { RequestInfo } from './request.js';
import { FieldResolver, type BuildContext } from './resolver.js';
import { col, ParamBag, q, SelectParts } from './sql.js';
import { indexTerms } from '../../replica/indexes.js';

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

/** Tables of the collections a batch of changes touched; undefined when the schema changed (all stale). */
function changedTables(store: ReplicaStore | null, changes: readonly { coll: string }[]): string[] | undefined {
  const tables = new Set<string>();
  for (const ch of changes) {
    if (ch.coll === '_collections') return undefined;
    const entry = store?.entry(ch.coll);
    if (entry) tables.add(entry.spec.table);
  }
  return [...tables];
}

const followed = new WeakSet<object>();

/**
 * Bumps the versions of the tables each applied batch changed (once per replicator, whoever asks:
 * the read routes and the feed routes both keep answers under these versions).
 */
export function followReplica(replicator: Pick<Replicator, 'onApplied' | 'store'>): void {
  if (followed.has(replicator) || typeof replicator.onApplied !== 'function') return;
  followed.add(replicator);
  replicator.onApplied((changes) => invalidateResults(changedTables(replicator.store, changes)));
}

/** The table versions at one moment, as data (a read thread runs its queries under the sender's). */
export interface VersionStamp { epoch: number; tables: [string, number][] }

export function versionStamp(): VersionStamp {
  return { epoch, tables: [...versions] };
}

/** On a read thread: the versions of the thread that sent the task replace this thread's. */
export function adoptVersions(stamp: VersionStamp): void {
  epoch = stamp.epoch;
  versions.clear();
  for (const [t, v] of stamp.tables) versions.set(t, v);
}

/** The tables some results were computed from, with their versions at that moment. */
export class ReadSet {
  private epoch = epoch;
  private readonly tables = new Map<string, number>();

  /** `tables` as read under `stamp` (taken before the queries ran). */
  static at(stamp: VersionStamp, tables: readonly string[]): ReadSet {
    const set = new ReadSet();
    set.epoch = stamp.epoch;
    const at = new Map(stamp.tables);
    for (const t of tables) set.tables.set(t, at.get(t) ?? 0);
    return set;
  }

  tableNames(): string[] {
    return [...this.tables.keys()];
  }

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
export function quotedIdentifiers(sql: string): string[] {
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

/** The key of a statement's result with these values in a store's result cache. */
function resultKey(sql: string, bindings: Record<string, unknown>): string {
  return sql + '\u0000' + JSON.stringify(bindings, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** A kept result still fresh (none of the tables it read changed), counted as read by the caller. */
function freshResult(store: ReplicaStore, key: string): CachedResult | undefined {
  const hit = cacheOf(store).results.get(key);
  if (hit === undefined || !hit.reads.fresh()) return undefined;
  tracking?.merge(hit.reads);
  return hit;
}

/** A statement of the read path, prepared once per text. */
function prepared(store: ReplicaStore, sql: string): Prepared {
  const cache = cacheOf(store);
  let p = cache.statements.get(sql);
  if (!p) cache.statements.set(sql, (p = { stmt: store.db.prepare(sql), tables: quotedIdentifiers(sql) }));
  return p;
}

/** SQLite's errors (e.g. a malformed JSON path) become PocketBase's generic 400; others are rethrown. */
function sqliteFailure(e: unknown): never {
  if ((e as { code?: string }).code?.startsWith('SQLITE_') || e instanceof RangeError || e instanceof TypeError) {
    throw new ResolveError(`sqlite: ${(e as Error).message}`);
  }
  throw e;
}

/** Runs a query; SQLite errors (e.g. a malformed JSON path) become PocketBase's generic 400. */
function run<T>(store: ReplicaStore, sql: string, bag: ParamBag, mode: 'all' | 'get', cacheable: boolean): T {
  const bindings = bag.bindingsFor(sql);
  const key = cacheable ? resultKey(sql, bindings) : '';
  if (cacheable) {
    const hit = freshResult(store, key);
    if (hit !== undefined) return hit.value as T;
  }
  try {
    const p = prepared(store, sql);
    // The versions are taken before the query runs: a change applied later makes the result stale.
    const reads = new ReadSet();
    reads.add(p.tables);
    const out = (mode === 'all' ? p.stmt.all(bindings) : p.stmt.get(bindings)) as T;
    tracking?.merge(reads);
    if (cacheable) cacheOf(store).results.set(key, { value: out ?? null, reads });
    return out;
  } catch (e) {
    return sqliteFailure(e);
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
export function listWhere(catalog: Catalog, coll: CollectionInfo, info: RequestInfo, filter: string, superuser: boolean): { ctx: BuildContext; parts: SelectParts; resolver: FieldResolver; rule: string | null } {
  const ctx = newContext(catalog, info);
  const parts = new SelectParts(coll.spec.table);
  // One resolver for rule, filter and sort, as in PocketBase: their joins are shared by alias.
  const r = new FieldResolver(ctx, coll, true);
  const rule = coll.c.listRule;
  const ruleSql = !superuser && rule ? ctx.buildRule(rule, r) : null;
  if (ruleSql !== null) parts.wheres.push(ruleSql);
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
  return { ctx, parts, resolver: r, rule: ruleSql };
}

export interface ListResult { rows: Row[]; page: number; perPage: number; totalItems: number; totalPages: number }

/** recordsList: rule AND filter, sort, joins (+ joined collections' list rules), page and COUNT. */
export function listRecords(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, info: RequestInfo, p: ListParams, superuser: boolean): ListResult {
  const { ctx, parts, resolver: r, rule } = listWhere(catalog, coll, info, p.filter, superuser);
  let random = false;
  for (const s of p.sort) {
    if (s.kind === 'random') { random = true; parts.orderBy.push('RANDOM()'); continue; }
    if (s.kind === 'rowid') { parts.orderBy.push(`${col(coll.spec.table, ROWID)} ${s.direction}`); continue; }
    const res = r.resolve(s.field.name);
    if (res.params.size > 0 || res.id === '' || res.id.toLowerCase() === 'null') throw new ResolveError(`invalid sort field ${s.field.name}`);
    parts.orderBy.push(`${res.id} ${s.direction}`);
  }
  r.updateQuery(parts);
  const offset = goIntMul(p.perPage, p.page - 1);
  // PocketBase leaves the order of rows without a sort, and of ties, to SQLite's plan: rows come in the
  // order of the plan's outer loop. Mirror that plan (see arrivalOrder); where it cannot be mirrored,
  // rowid order, with ties walked the way an index on the sort column would be.
  const pbShape = `${parts.select(`${q(coll.spec.table)}.*`)}${parts.orderBy.length ? ` ORDER BY ${parts.orderBy.join(', ')}` : ''} LIMIT ${p.perPage} OFFSET ${offset}`;
  const arrival = random || totalOrder(coll, p.sort) ? null : arrivalOrder(store, catalog, coll, parts, pbShape, ctx);
  const order = [...parts.orderBy, ...(arrival ?? [`${col(coll.spec.table, ROWID)} ${tieDirection(coll, p.sort)}`])];
  let totalItems = -1;
  let totalPages = -1;
  if (!p.skipTotal) {
    totalItems = countMatches(store, coll, parts, ctx, rule);
    totalPages = Math.ceil(totalItems / p.perPage);
  }
  const itemsSql = (walk?: string) => `${parts.select(`${q(coll.spec.table)}.*`, walk)}${order.length ? ` ORDER BY ${order.join(', ')}` : ''} LIMIT ${p.perPage} OFFSET ${offset}`;
  // Where the ORDER BY ends in the rowid every plan gives the same page, and the one to run is the
  // cheapest; where it is PocketBase's statement as it is (arrival `[]`), the replica's plan is the order.
  const total = order.length > 0 && order[order.length - 1].startsWith(`${col(coll.spec.table, ROWID)} `);
  const walk = random || totalItems < 0 || !total ? null : sortWalk(store, coll, parts, totalItems, Number(offset) + p.perPage);
  if (walk) {
    try {
      const rows = run<Row[]>(store, itemsSql(walk), ctx.bag, 'all', true);
      planStats.sortWalks++;
      return { rows, page: p.page, perPage: p.perPage, totalItems, totalPages };
    } catch (e) {
      if (!(e instanceof ResolveError)) throw e;
      // no plan reads that index for this statement: the planner's own choice below
    }
  }
  const rows = run<Row[]>(store, itemsSql(), ctx.bag, 'all', !random);
  return { rows, page: p.page, perPage: p.perPage, totalItems, totalPages };
}

/**
 * The list's total. A list rule that is an OR of terms (`published = true || author = @request.auth.id`)
 * is counted as disjoint parts, each term's rows that no earlier term matched: Σ COUNT(Tᵢ AND (T₁ OR … OR
 * Tᵢ₋₁) IS NOT TRUE AND the rest), equal to COUNT((T₁ OR … OR Tₖ) AND the rest) whatever the NULLs. A term
 * without the requester in it (`published = true`) is then one cached result for every requester, and a
 * term with it (`author = @p1`) reads its index instead of scanning the table for each requester. Only
 * without joins: with them a record's terms may hold on different joined rows.
 */
function countMatches(store: ReplicaStore, coll: CollectionInfo, parts: SelectParts, ctx: BuildContext, rule: string | null): number {
  // Joins may repeat a record; without them each row is one record and COUNT(*) can read an index alone.
  if (parts.joins.length > 0) {
    return Number(run<{ n: number }>(store, `SELECT COUNT(DISTINCT ${col(coll.spec.table, ROWID)}) AS n${parts.from()}`, ctx.bag, 'get', true).n);
  }
  const at = rule === null ? -1 : parts.wheres.indexOf(rule);
  const terms = at < 0 ? undefined : ctx.orGroups?.find((items) => `(${items.join(' OR ')})` === rule);
  if (!terms || terms.length > MAX_COUNT_TERMS) return countRows(store, coll, parts, parts.wheres, ctx);
  let n = 0;
  for (let i = 0; i < terms.length; i++) {
    const own = i === 0 ? [terms[0]] : [terms[i], `(${terms.slice(0, i).join(' OR ')}) IS NOT TRUE`];
    const wheres = [...parts.wheres.slice(0, at), ...own, ...parts.wheres.slice(at + 1)];
    n += countRows(store, coll, parts, wheres, ctx);
  }
  planStats.countSplits++;
  return n;
}

/**
 * Counts by segment, per statement and values (sql, bindings), per catalog: each segment's version and
 * count (16 bytes a segment: 40 KB for a table of 10M rows; a few hundred statements kept).
 */
interface SegmentCounts { v: Float64Array; n: Float64Array }
const segmentCounts = new WeakMap<object, Lru<string, SegmentCounts>>();

/**
 * COUNT(*) of the base table's rows matching `wheres`, without joins. Cached whole until the table
 * changes, like every result; and where SQLite's plan reads the whole table for it (a `tags ~ 'x'`
 * filter, a LIKE no index serves), also per segment of rowids (replica/store.ts, SEGMENT_SIZE): once the
 * table changes, only the segments a batch touched are counted again, in the same read transaction
 * as the segments' versions. A segment's count depends on its own rows alone when the statement reads
 * no other table and its plan is that one scan (no subquery), which is checked first.
 */
function countRows(store: ReplicaStore, coll: CollectionInfo, parts: SelectParts, wheres: string[], ctx: BuildContext): number {
  const sql = `SELECT COUNT(*) AS n${parts.from(undefined, wheres)}`;
  const table = coll.spec.table;
  const alias = rowidAlias(coll.spec);
  const bindings = ctx.bag.bindingsFor(sql);
  const key = resultKey(sql, bindings);
  const hit = freshResult(store, key);
  if (hit !== undefined) return Number((hit.value as { n: number }).n);
  if (alias === null || !scansWhole(store, ctx.catalog, table, sql, ctx.bag)) return Number(run<{ n: number }>(store, sql, ctx.bag, 'get', true).n);
  let counts = segmentCounts.get(ctx.catalog);
  if (!counts) segmentCounts.set(ctx.catalog, (counts = new Lru(500)));
  try {
    // The versions are taken before the queries run: a change applied later makes the result stale.
    const reads = new ReadSet();
    reads.add([table]);
    const versions = new Map<number, number>();
    for (const r of segmentVersions(store).all(table) as { seg: number; v: number }[]) versions.set(r.seg, r.v);
    const top = Number((store.prepared(`SELECT MAX(${alias}) AS r FROM ${q(table)}`).get() as { r: number | null }).r ?? -1);
    const bySegment = prepared(store, `SELECT COUNT(*) AS n${parts.from(undefined, [...wheres, `${q(table)}.${alias} BETWEEN @seg_lo AND @seg_hi`])}`).stmt;
    const kept = counts.get(key);
    const segments = top < 0 ? 0 : segmentOf(top) + 1;
    const now: SegmentCounts = { v: new Float64Array(segments), n: new Float64Array(segments) };
    let n = 0;
    for (let seg = 0; seg < segments; seg++) {
      const v = versions.get(seg) ?? 0;
      if (kept !== undefined && seg < kept.v.length && kept.v[seg] === v) now.n[seg] = kept.n[seg];
      else {
        now.n[seg] = Number((bySegment.get({ ...bindings, seg_lo: seg * SEGMENT_SIZE, seg_hi: (seg + 1) * SEGMENT_SIZE - 1 }) as { n: number }).n);
        planStats.segmentsCounted++;
      }
      now.v[seg] = v;
      n += now.n[seg];
    }
    counts.set(key, now);
    planStats.segmentedCounts++;
    tracking?.merge(reads);
    cacheOf(store).results.set(key, { value: { n }, reads });
    return n;
  } catch (e) {
    return sqliteFailure(e);
  }
}

/** Per catalog and statement text: whether its count is kept by segment (scansWhole). */
const wholeScans = new WeakMap<object, Lru<string, boolean>>();

/**
 * Whether a count reads `table` whole and nothing else: no other table named, and SQLite's plan one SCAN
 * of it (no index, no subquery). Decided once per statement text, on its first values: a subquery is
 * the text's, not a value's, and a value that would let an index serve the count (a LIKE prefix) only
 * makes counting by segment the slower choice, never a wrong one.
 */
function scansWhole(store: ReplicaStore, catalog: Catalog, table: string, sql: string, bag: ParamBag): boolean {
  let known = wholeScans.get(catalog);
  if (!known) wholeScans.set(catalog, (known = new Lru(2000)));
  let whole = known.get(sql);
  if (whole === undefined) {
    const tables = new Set(catalog.store.collections().map((c) => c.name));
    const plan = quotedIdentifiers(sql).some((id) => id !== table && tables.has(id)) ? null : explain(catalog, store.db, sql, bag);
    whole = plan !== null && plan.length === 1 && plan[0].detail === `SCAN ${table}`;
    known.set(sql, whole);
  }
  return whole;
}

const segmentStatements = new WeakMap<Database.Database, Database.Statement>();
function segmentVersions(store: ReplicaStore): Database.Statement {
  let st = segmentStatements.get(store.db);
  if (!st) segmentStatements.set(store.db, (st = store.db.prepare('SELECT seg, v FROM _hapta_segments WHERE tbl = ?')));
  return st;
}

/** Rules with more OR terms are counted whole. */
const MAX_COUNT_TERMS = 4;

/**
 * The replica index to walk for a page whose sort starts with an indexed column of the base table,
 * where walking it costs less than what SQLite's planner tends to choose: finding every matching row by
 * the filter's index and sorting them all. SQLite does not weigh the LIMIT there; the count of matching
 * rows (`matching`, known from the total) does: the walk visits about (offset + perPage) * rows /
 * matching index entries before the page is full, the sort reads all `matching` rows. Null when the
 * walk would not be cheaper, or no index starts with the sort's first column.
 */
function sortWalk(store: ReplicaStore, coll: CollectionInfo, parts: SelectParts, matching: number, needed: number): string | null {
  if (parts.orderBy.length === 0 || parts.joins.length > 0 || matching < 256) return null;
  const table = coll.spec.table;
  const first = new RegExp(`^${escapeRe(q(table))}\\.("(?:[^"]|"")+") (ASC|DESC)$`).exec(parts.orderBy[0]);
  if (!first) return null;
  const index = (coll.c.indexes ?? []).map((def) => indexTerms(coll.spec, def)).find((x) => x && /^("(?:[^"]|"")+")(?: (?:ASC|DESC))?$/.exec(x.terms[0])?.[1] === first[1]);
  if (!index) return null;
  const rows = Number(run<{ n: number | null }>(store, `SELECT MAX(rowid) AS n FROM ${q(table)}`, new ParamBag(), 'get', false).n ?? 0);
  if (needed * (rows / matching) * 4 > matching) return null;
  return `_hapta_ix_${table}__${index.name}`;
}

/**
 * How often a page was read by walking its sort's index (sortWalk), a total counted in parts
 * (countMatches), a plan explained rather than found kept (explain), a count summed from segments and a
 * segment counted (countRows), for tests and diagnostics.
 */
export const planStats = { sortWalks: 0, countSplits: 0, explains: 0, segmentedCounts: 0, segmentsCounted: 0 };

/** A sort that already orders every row (it names the id or the rowid): no plan to mirror. */
function totalOrder(coll: CollectionInfo, sort: SortItem[]): boolean {
  return sort.some((s) => s.kind === 'rowid' || (s.kind === 'field' && s.field.name === 'id'));
}

interface PlanRow { id: number; parent: number; detail: string }
/** Per owner: the replica's catalog (a new one comes with every schema change, and new statistics), or a
 * copy of PocketBase's schema. */
const plans = new WeakMap<object, Lru<string, PlanRow[] | null>>();

/**
 * EXPLAIN QUERY PLAN of a statement with its values on one database, cached; null when the statement
 * does not prepare there. Both SQLites are built with STAT4, so a plan may depend on the values bound:
 * through an index's STAT4 samples (the replica deletes its own, but anyone may ANALYZE the replica
 * file), or through the LIKE and GLOB optimisations. `sampled: false` says the database has no STAT4 samples (PocketBase's statistics, which
 * are sqlite_stat1 alone): its plan of a statement without LIKE or GLOB is then one for every value,
 * kept once per text.
 */
function explain(owner: object, db: Database.Database, sql: string, bag: ParamBag, text = sql, sampled = true): PlanRow[] | null {
  let cache = plans.get(owner);
  if (!cache) plans.set(owner, (cache = new Lru(4000)));
  const bindings = bag.bindingsFor(sql);
  const key = !sampled && !PATTERN_OPERATOR.test(text) ? text : text + '\u0000' + JSON.stringify(bindings, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  let plan: PlanRow[] | null = null;
  try {
    let statements = explainStatements.get(db);
    if (!statements) explainStatements.set(db, (statements = new Lru(500)));
    let stmt = statements.get(text);
    if (!stmt) statements.set(text, (stmt = db.prepare(`EXPLAIN QUERY PLAN ${text}`)));
    plan = stmt.all(bindings) as PlanRow[];
    planStats.explains++;
  } catch {
    plan = null;
  }
  cache.set(key, plan);
  return plan;
}

/** An operator whose bound pattern SQLite may plan by (the LIKE and GLOB optimisations), in any case. */
const PATTERN_OPERATOR = /\b(?:LIKE|GLOB)\b/i;

/** The EXPLAIN statements of each database, prepared once per text (each set of values is run on it). */
const explainStatements = new WeakMap<Database.Database, Lru<string, Database.Statement>>();

const indexColumns = new WeakMap<ReplicaStore, Map<string, string[]>>();

/** Key columns of a replica index, in order. */
function keysOf(store: ReplicaStore, index: string): string[] {
  let cache = indexColumns.get(store);
  if (!cache) indexColumns.set(store, (cache = new Map()));
  let keys = cache.get(index);
  if (!keys) {
    const rows = store.db.prepare(`PRAGMA index_xinfo(${q(index)})`).all() as Array<{ name: string | null; key: number }>;
    cache.set(index, (keys = rows.filter((x) => x.key === 1).map((x) => x.name ?? '')));
  }
  return keys;
}

const UNIQUE_INDEX = /^\s*CREATE\s+UNIQUE\s+INDEX/i;

interface DifferingIndexes {
  /** Columns named by PocketBase's partial and expression indexes, which the replica does not hold. */
  columns: Set<string>;
  /**
   * Key terms of PocketBase's unique indexes, which the replica holds as plain ones in the same
   * order (the rowid after the columns; unique keys have no ties to break). The planners differ only
   * where uniqueness itself counts: a DISTINCT a unique index can answer, and equality on every column.
   */
  unique: string[][];
}

const differing = new WeakMap<CollectionInfo, DifferingIndexes>();
function differingIndexes(c: CollectionInfo): DifferingIndexes {
  const known = differing.get(c);
  if (known) return known;
  const out: DifferingIndexes = { columns: new Set(), unique: [] };
  for (const def of c.c.indexes ?? []) {
    const held = indexTerms(c.spec, def);
    if (held) {
      if (UNIQUE_INDEX.test(def)) out.unique.push(held.terms);
      continue;
    }
    const body = /\((.*)\)/s.exec(def)?.[1] ?? '';
    for (const n of body.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) if (c.fields.has(n[0])) out.columns.add(n[0]);
  }
  differing.set(c, out);
  return out;
}

/**
 * The order SQLite gives PocketBase's list query where the sort leaves it open (no sort, or ties): the
 * order in which the plan's outer loop visits the base table, kept by the stable sorter of an ORDER BY.
 * PocketBase's plan comes from an empty copy of PocketBase's schema and statistics (shadowOf); where the
 * replica's plan differs, the order is written from PocketBase's plan (orderOfPlan). Where they agree (or
 * PocketBase's schema is unknown), the replica's plan is read: it holds PocketBase's rowids, its id index
 * and its plain indexes (each ending in the rowid) and runs the same SQLite. When that plan walks an index of the base table (the id index
 * DISTINCT scans use, or an index a filter or the sort uses, forwards or backwards), running
 * PocketBase's statement as it is gives PocketBase's order: `[]`. When it scans the table, the scan is
 * in PocketBase's rowid order: the rowid. Null (rowid order as a guess) where the planners may differ:
 * PocketBase has a partial or expression index the statement could use (or a unique one answers a DISTINCT
 * some other way than the id index's walk here), the requester's auth row
 * is a derived table, or the plan is one this does not read; where PocketBase's plan is known, a plan
 * the replica's cannot be read for (another table as the outer loop, say) is read from PocketBase's.
 */
function arrivalOrder(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, parts: SelectParts, sql: string, ctx: BuildContext): string[] | null {
  if (ctx.authSource?.single) return null;
  const table = coll.spec.table;
  const aliases = new Map<string, CollectionInfo>([[table, coll]]);
  for (const j of parts.joins) {
    const m = /^"((?:[^"]|"")+)"$/.exec(j.table);
    const c = m ? catalog.find(m[1].replace(/""/g, '"')) : null;
    if (c) aliases.set(j.alias, c);
  }
  const rows = explain(catalog, store.db, sql, ctx.bag);
  if (!rows) return null;
  // PocketBase's plan, from its own schema and statistics: where the replica's differs, its order is
  // rebuilt from PocketBase's plan; where they agree, the replica's plan is read as below.
  const theirs = pocketBasePlan(store, sql, ctx.bag);
  if (theirs && !samePlan(rows, theirs)) return orderOfPlan(theirs, coll, parts, ctx.orGroups ?? [], aliases);
  return replicaPlanOrder(store, coll, parts, sql, rows, theirs, aliases) ?? (theirs ? orderOfPlan(theirs, coll, parts, ctx.orGroups ?? [], aliases) : null);
}

/**
 * The order of the replica's own plan where it is PocketBase's (or PocketBase's is unknown): see
 * arrivalOrder. Null where it cannot be read.
 */
function replicaPlanOrder(store: ReplicaStore, coll: CollectionInfo, parts: SelectParts, sql: string, rows: PlanRow[], theirs: PlanRow[] | null, aliases: ReadonlyMap<string, CollectionInfo>): string[] | null {
  const table = coll.spec.table;
  if (!theirs) {
    // Without PocketBase's schema, guesses: indexes the replica does not hold as they are may make the
    // two planners choose differently.
    for (const [alias, c] of aliases) {
      const diff = differingIndexes(c);
      for (const name of diff.columns) if (sql.includes(col(alias, name))) return null;
    }
  }
  const outerLoop = outerLoopOf(rows);
  if (!outerLoop) return null;
  const { top, first } = outerLoop;
  const ours = (index: string | undefined) => index === undefined || index === `sqlite_autoindex_${table}_1` || index.startsWith(`_hapta_ix_${table}__`) || index === `${table}__pb_rowid`;

  // A union of index searches on the base table: visited search by search, as PocketBase does.
  if (top[first].detail === 'MULTI-INDEX OR') {
    const searches = planUnder(rows, top[first].id).filter((x) => /^(SCAN|SEARCH) /.test(x.detail)).map((x) => LOOP.exec(x.detail));
    return searches.length > 0 && searches.every((m) => m && m[1] === table && m[2] !== undefined && m[2] !== `${table}__pb_rowid` && ours(m[2])) ? [] : null;
  }
  const m = LOOP.exec(top[first].detail);
  if (!m) return null;
  const unique = differingIndexes(coll).unique;
  if (!theirs && parts.distinct && unique.length > 0) {
    // A DISTINCT that walks the id index here walks PocketBase's unique index there: any unique index
    // over selected columns answers it, and SQLite takes the one declared last (new indexes go first in
    // its list). Its key order is known; other plans with a unique index in play are not.
    if (m[1] !== table || m[2] !== `sqlite_autoindex_${table}_1` || m[3]) return null;
    return [...unique[unique.length - 1].map((term) => `${q(table)}.${term}`), `${col(table, ROWID)} ASC`];
  }
  if (m[1] === table) {
    // A scan of the table is in PocketBase's rowid order; an index walk is the same walk there.
    if (!m[2] || m[2] === `${table}__pb_rowid`) return [`${col(table, ROWID)} ASC`];
    if (!ours(m[2])) return null;
    // Under a sorter for the whole ORDER BY the walk gives no order and runs forwards: its order written
    // out (the index's key terms, then the rowid) is the same page by any plan, so the page may be read by
    // walking the sort's index instead (sortWalk: one author's posts by date, say).
    const prefix = `_hapta_ix_${table}__`;
    if (parts.joins.length === 0 && m[2].startsWith(prefix) && top.some((x) => x.detail === 'USE TEMP B-TREE FOR ORDER BY')) {
      const written = walkOrder(coll, table, m[2].slice(prefix.length), parts, false);
      if (written) return written;
    }
    return [];
  }
  // The target of a single relation scanned first (a filter on it made the join an inner one), then the
  // base table's rows of each target, found by an index that the relation column (and the rowid) ends.
  const outer = aliases.get(m[1]);
  const join = parts.joins.find((j) => j.alias === m[1]);
  const rel = join?.on && new RegExp(`^${escapeRe(col(m[1], 'id'))} = "${escapeRe(table)}"\\."([^"]+)"$`).exec(join.on);
  const sorter = top.some((x) => /^USE TEMP B-TREE FOR (ORDER BY|RIGHT PART OF ORDER BY|LAST (\d+ TERMS|TERM) OF ORDER BY)$/.test(x.detail));
  const next = top.findIndex((x, i) => i > first && /^(SCAN|SEARCH) /.test(x.detail));
  if (!outer || !rel || m[2] || next === -1 || (parts.orderBy.length > 0 && !sorter)) return null;
  if (top.slice(first + 1, next).some((x) => !/^BLOOM FILTER /.test(x.detail))) return null;
  const inner = LOOP.exec(top[next].detail);
  if (!inner || inner[1] !== table || !inner[2] || !inner[2].startsWith(`_hapta_ix_${table}__`)) return null;
  const keys = keysOf(store, inner[2]);
  const fixed = (inner[3] ?? '').split(' AND ').map((c) => /^(\w+)=\?$/.exec(c)?.[1]);
  if (keys[keys.length - 1] !== ROWID || keys.length - 1 !== fixed.length || !fixed.every((c, i) => c === keys[i]) || !fixed.includes(rel[1])) return null;
  return [`${col(m[1], ROWID)} ASC`, `${col(table, ROWID)} ASC`];
}

const shadows = new WeakMap<ReplicaStore, { schema: PlannerSchema; db: Database.Database | null }>();

/**
 * An empty database with PocketBase's own tables, indexes (unique, partial, expression, as declared) and
 * planner statistics: SQLite plans a statement there as PocketBase's SQLite does, data aside (plans read
 * statistics, not rows). Null without PocketBase's schema (hooks that predate it) or if it cannot be built.
 */
function shadowOf(store: ReplicaStore): Database.Database | null {
  const schema = store.plannerSchema;
  if (!schema) return null;
  let s = shadows.get(store);
  if (!s || s.schema !== schema) {
    s?.db?.close();
    let db: Database.Database | null = new BetterSqlite(':memory:');
    try {
      for (const r of schema.schema) if (r.type === 'table') db.exec(r.sql);
      for (const r of schema.schema) if (r.type === 'index') db.exec(r.sql);
      if (schema.stats.length > 0) {
        db.exec('ANALYZE');
        db.exec('DELETE FROM sqlite_stat1');
        const put = db.prepare('INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)');
        for (const st of schema.stats) put.run(st.tbl, st.idx || null, st.stat);
        db.exec('ANALYZE sqlite_schema');
      }
    } catch {
      db.close();
      db = null;
    }
    shadows.set(store, (s = { schema, db }));
  }
  return s.db;
}

/** PocketBase's plan of one of its statements (the replica's rowid column is its rowid), or null. */
function pocketBasePlan(store: ReplicaStore, sql: string, bag: ParamBag): PlanRow[] | null {
  const db = shadowOf(store);
  // The shadow's statistics are PocketBase's sqlite_stat1 rows alone (shadowOf): no STAT4 samples.
  return db ? explain(db, db, sql, bag, sql.replaceAll(q(ROWID), '"_rowid_"'), false) : null;
}

/** The two plans loop the same way, the replica's index names read as PocketBase's. */
function samePlan(ours: PlanRow[], theirs: PlanRow[]): boolean {
  if (ours.length !== theirs.length) return false;
  const rowidIndex = new RegExp(`^(SCAN \\S+) USING INDEX \\S+__pb_rowid$`);
  const norm = (d: string) => d.replace(/_hapta_ix_[A-Za-z0-9_]+?__/g, '').replace(rowidIndex, '$1');
  return ours.every((x, i) => norm(x.detail) === theirs[i].detail);
}

const DESC = /\sDESC$/i;

/** The key terms (`"col" COLLATE X DESC`) of PocketBase index `index` of a collection: none for a scan. */
function keyTerms(c: CollectionInfo, index: string | undefined): string[] | null {
  if (index === undefined) return [];
  if (index === `sqlite_autoindex_${c.spec.table}_1`) return [q('id')];
  // null for an expression or partial index: its order is not written here
  return (c.c.indexes ?? []).map((def) => indexTerms(c.spec, def)).find((x) => x?.name === index)?.terms ?? null;
}

/**
 * The order of PocketBase's plan, written as ORDER BY terms for the replica. Rows come in the order of
 * the plan's loops, outermost first; a DISTINCT keeps each record's first arrival and an ORDER BY's
 * sorter keeps arrivals in order between ties. Two shapes are written:
 * - the outer loop walks the base table: a scan in rowid order, or an index walked forwards or
 *   backwards (backwards when the walk gives an ORDER BY in the opposite direction), ties in the rowid;
 * - the outer loop walks a joined collection and the next loop finds the base table's records of each of
 *   its rows (joinFirstOrder).
 * Null for anything else.
 */
function orderOfPlan(plan: PlanRow[], coll: CollectionInfo, parts: SelectParts, orGroups: readonly string[][], aliases: ReadonlyMap<string, CollectionInfo>): string[] | null {
  const table = coll.spec.table;
  const outerLoop = outerLoopOf(plan);
  if (!outerLoop) return null;
  const { top, first } = outerLoop;
  // A sorter for the whole ORDER BY leaves only ties to the loops; a partial one (the walk gives the
  // first terms) sorts within runs of the walk, which runs in the direction of the first term.
  const sorter = top.some((x) => x.detail === 'USE TEMP B-TREE FOR ORDER BY');
  const walkSorts = parts.orderBy.length > 0 && !sorter;
  if (top[first].detail === 'MULTI-INDEX OR') {
    if (walkSorts) return null;
    const alias = orAlias(plan, top[first].id);
    if (alias === table) return orSplitOrder(plan, top[first].id, coll, table, orGroups);
    return alias ? joinFirstOrder(plan, top, first, coll, parts, aliases, walkSorts, orGroups) : null;
  }
  const m = LOOP.exec(top[first].detail);
  if (!m) return null;
  if (m[1] !== table) return joinFirstOrder(plan, top, first, coll, parts, aliases, walkSorts, orGroups);
  return walkOrder(coll, table, m[2], parts, walkSorts);
}

/** A plan's top-level rows and its outer loop among them (only bloom filters before it), or null. */
function outerLoopOf(plan: PlanRow[]): { top: PlanRow[]; first: number } | null {
  const top = plan.filter((x) => x.parent === 0);
  const first = top.findIndex((x) => /^(SCAN|SEARCH|MULTI-INDEX OR)/.test(x.detail));
  return first === -1 || top.slice(0, first).some((x) => !/^BLOOM FILTER /.test(x.detail)) ? null : { top, first };
}

/** One loop of a plan: alias, index, constraints. */
const LOOP = /^(?:SCAN|SEARCH) (\S+)(?: USING (?:COVERING )?INDEX (\S+))?(?: \((.*)\))?(?: LEFT-JOIN)?$/;

/**
 * The order of a walk of `alias` (a table of collection `c`) by `index` (none: a scan): its key terms and
 * the rowid, reversed when the walk runs backwards to give the ORDER BY (`walkSorts`: no sorter for the
 * first term). Null when the index's order is not known here or the ORDER BY does not start on it.
 */
function walkOrder(c: CollectionInfo, alias: string, index: string | undefined, parts: SelectParts, walkSorts: boolean): string[] | null {
  const terms = keyTerms(c, index);
  if (!terms) return null;
  let backward = false;
  if (walkSorts) {
    const o = new RegExp(`^${escapeRe(q(alias))}\\.("(?:[^"]|"")+")\\s+(ASC|DESC)$`, 'i').exec(parts.orderBy[0]);
    const term = o && terms.find((t) => t === o[1] || t.startsWith(`${o[1]} `));
    if (!o || !term) return null;
    backward = (o[2].toUpperCase() === 'DESC') !== DESC.test(term);
  }
  const flip = (t: string) => (DESC.test(t) ? t.replace(DESC, ' ASC') : `${t.replace(/\sASC$/i, '')} DESC`);
  return [...terms.map((t) => `${q(alias)}.${backward ? flip(t) : t}`), `${col(alias, ROWID)} ${backward ? 'DESC' : 'ASC'}`];
}

/**
 * A plan whose outer loop walks a joined collection J (a filter on it made the join an inner one) and
 * whose next loop finds base records for each J row (a scan, an index walk, or a search by the relation).
 * A record arrives first with the first J row it matches, so its key is J's walk key at the smallest
 * matching J row, then the base loop's own key. J a single relation's target: one J row per record, its
 * key is read off the joined row. J reached any other way (multiple relations, back-relations): the
 * smallest key among the record's joined rows, as a window over the record's rows, where J's walk key is
 * one value (a scan, or an index search fixing every key column: the rowid); a unique index fixed
 * entirely gives at most one J row, which orders nothing.
 */
function joinFirstOrder(plan: PlanRow[], top: PlanRow[], first: number, coll: CollectionInfo, parts: SelectParts, aliases: ReadonlyMap<string, CollectionInfo>, walkSorts: boolean, orGroups: readonly string[][]): string[] | null {
  const table = coll.spec.table;
  // The outer loop: one walk of J, or an OR split across J's indexes (a single relation's target only).
  const split = top[first].detail === 'MULTI-INDEX OR';
  const walk = split ? null : LOOP.exec(top[first].detail);
  const alias = split ? orAlias(plan, top[first].id) : walk?.[1];
  const j = alias ? aliases.get(alias) : undefined;
  const next = top.findIndex((x, i) => i > first && /^(SCAN|SEARCH) /.test(x.detail));
  if (!alias || !j || next === -1) return null;
  if (top.slice(first + 1, next).some((x) => !/^(BLOOM FILTER |CORRELATED )/.test(x.detail))) return null;
  const inner = LOOP.exec(top[next].detail);
  if (!inner || inner[1] !== table) return null;
  // The base loop: a search by the unique id gives one record per J row; otherwise its walk's key.
  const baseKey = inner[2] === `sqlite_autoindex_${table}_1` && inner[3] === 'id=?' ? [] : walkOrder(coll, table, inner[2], parts, false);
  if (!baseKey) return null;
  const joined = parts.joins.find((x) => x.alias === alias);
  const single = joined?.on && new RegExp(`^${escapeRe(col(alias, 'id'))} = ${escapeRe(q(table))}\\."([^"]+)"$`).exec(joined.on);
  const rel = single ? coll.fields.get(single[1].replace(/""/g, '"')) : undefined;
  if (rel && rel.type === 'relation' && !isMultiple(rel)) {
    const jKey = walk ? walkOrder(j, alias, walk[2], parts, walkSorts) : orSplitOrder(plan, top[first].id, j, alias, orGroups);
    return jKey ? [...jKey, ...baseKey] : null;
  }
  if (!walk || walkSorts) return null;
  const fixed = new Set((walk[3] ?? '').split(' AND ').map((x) => /^(\w+)=\?$/.exec(x)?.[1]).filter((x): x is string => !!x));
  const terms = keyTerms(j, walk[2]);
  if (!terms || !terms.every((t) => fixed.has(/^"((?:[^"]|"")+)"/.exec(t)?.[1].replace(/""/g, '"') ?? ''))) return null;
  const unique = walk[2] === `sqlite_autoindex_${j.spec.table}_1` || (j.c.indexes ?? []).some((def) => UNIQUE_INDEX.test(def) && indexTerms(j.spec, def)?.name === walk[2]);
  if (walk[2] !== undefined && unique) return baseKey;
  return [`MIN(${col(alias, ROWID)}) OVER (PARTITION BY ${col(table, ROWID)}) ASC`, ...baseKey];
}

/**
 * An OR split on the base table: SQLite runs one index search per branch of an OR, in the branches'
 * order, and skips rows an earlier branch gave. Written as: the first branch a row satisfies, then the
 * key of that branch's index, then the rowid. The OR is found among those the statement was built from
 * by its branches: each names (as `table.column`) only columns its search constrains.
 */
function orSplitOrder(plan: PlanRow[], id: number, coll: CollectionInfo, table: string, orGroups: readonly string[][]): string[] | null {
  const searches = planUnder(plan, id).filter((x) => /^(SCAN|SEARCH) /.test(x.detail))
    .map((x) => /^SEARCH (\S+) USING (?:COVERING )?INDEX (\S+) \((.*)\)$/.exec(x.detail) ?? /^SCAN (\S+)()()$/.exec(x.detail));
  if (searches.length < 2 || searches.some((m) => !m || m[1] !== table)) return null;
  // A branch no index serves is a scan of the table in rowid order, testing the branch on every row.
  const constrained = searches.map((m) => (m![2] ? new Set(m![3].split(' AND ').map((c) => /^(\w+)[=<>]/.exec(c)?.[1] ?? '')) : null));
  const named = new RegExp(`${escapeRe(q(table))}\\."((?:[^"]|"")+)"`, 'g');
  const group = orGroups.find((g) => g.length === searches.length && g.every((branch, k) => {
    const cols = [...branch.matchAll(named)].map((x) => x[1]);
    return cols.length > 0 && cols.every((c) => constrained[k]?.has(c) ?? true);
  }));
  if (!group) return null;
  const keys: string[] = [`CASE ${group.map((b, k) => `WHEN ${b} THEN ${k}`).join(' ')} ELSE ${group.length} END`];
  for (let k = 0; k < group.length; k++) {
    const terms = keyTerms(coll, searches[k]![2] || undefined);
    if (!terms) return null;
    for (const t of terms) {
      const m = /^("(?:[^"]|"")+")(\s+COLLATE\s+\w+)?(\s+(?:ASC|DESC))?$/i.exec(t);
      if (!m) return null;
      // Only rows of branch k (none of the earlier branches holds) are keyed by its index.
      const earlier = group.slice(0, k).map((b) => `WHEN ${b} THEN NULL `).join('');
      keys.push(`CASE ${earlier}WHEN ${group[k]} THEN ${q(table)}.${m[1]} END${m[2] ?? ''}${m[3] ?? ''}`);
    }
  }
  return [...keys, `${col(table, ROWID)} ASC`];
}

/** The rows of a plan under row `id`, depth first. */
function planUnder(plan: PlanRow[], id: number): PlanRow[] {
  return plan.filter((x) => x.parent === id).flatMap((x) => [x, ...planUnder(plan, x.id)]);
}

/** The one table an OR split's searches read, or null. */
function orAlias(plan: PlanRow[], id: number): string | null {
  const names = new Set(planUnder(plan, id).filter((x) => /^(SCAN|SEARCH) /.test(x.detail)).map((x) => /^(?:SCAN|SEARCH) (\S+)/.exec(x.detail)![1]));
  return names.size === 1 ? [...names][0] : null;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
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
