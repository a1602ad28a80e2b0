// Who may receive an event, in SQL against the replica: PocketBase's realtimeCanAccessRecord for one
// subscription is its CanAccessRecord (the collection's listRule for `*` topics, viewRule for record
// topics, compiled with allowHiddenFields, superusers always pass) followed by the subscription's
// `filter` (compiled without hidden fields; a non-superuser's filter or sort naming @request./@collection.
// gets nothing), with @request.context "realtime", method GET and the subscription's own query and headers.
//
// Plans are compiled per (collection, topic kind, requester, options) by the read path's resolver into
// conditions on the changed record: the rule's and the filter's WHERE applied to it directly when they
// need no join, else EXISTS subqueries correlated with it. Plans that differ only in their parameters
// (the same rule for different requesters) are evaluated together: one statement whose varying
// parameters come from a json_each() row per requester, over all the batch's changed ids at once, each
// record's requesters coming back as one list. So a batch costs one statement per distinct rule shape,
// however many clients and requesters subscribe; the statements and their per-requester values are
// prepared once and reused while the groups and their plans stay the same.
import type Database from 'better-sqlite3';
import { FilterSyntaxError, parseFilter } from '../filter/index.js';
import { ApiError } from '../errors.js';
import { Lru } from '../lru.js';
import type { ReplicaStore } from '../../replica/store.js';
import type { Catalog, CollectionInfo } from '../reads/catalog.js';
import { Unsupported } from '../reads/errors.js';
import { buildFilter } from '../reads/filter-sql.js';
import { newContext } from '../reads/query.js';
import type { RequestInfo } from '../reads/request.js';
import { FieldResolver } from '../reads/resolver.js';
import { col, q, SelectParts } from '../reads/sql.js';

export type Plan =
  | { kind: 'all' }
  | { kind: 'none'; unsupported?: string }
  | {
    kind: 'sql'; table: string; conds: string; values: Map<string, unknown>;
    /** The conditions name the record's table itself (no join needed): no subquery per requester. */
    inline: boolean;
    /** table + conds: plans with equal shapes run as one statement. */
    shape: string;
    /** The parameters the conditions use. */
    names: string[];
  };

export const ALL: Plan = { kind: 'all' };
export const NONE: Plan = { kind: 'none' };

const OUTER = '__hapta_rt';
const shapes = new Lru<string, { shape: string; conds: string; names: string[] }>(1000);
const REQUESTERS = '__hapta_rq';
const SUPERUSER_ONLY = ['@collection.', '@request.'];

/** checkForSuperuserOnlyRuleFields: a plain substring test on filter and sort. */
function superuserOnlyParams(query: Record<string, string>): boolean {
  for (const p of ['filter', 'sort']) {
    const v = query[p];
    if (v && SUPERUSER_ONLY.some((f) => v.includes(f))) return true;
  }
  return false;
}

/** The access plan of one subscription kind on one collection for one requester and options. */
export function planAccess(catalog: Catalog, coll: CollectionInfo, kind: 'list' | 'view', info: RequestInfo): Plan {
  const superuser = info.requester.kind === 'superuser';
  const rule = kind === 'list' ? coll.c.listRule : coll.c.viewRule;
  const filter = info.query.filter ?? '';
  let ruleText = '';
  if (!superuser) {
    if (rule === null || rule === undefined) return NONE;
    ruleText = rule;
  }
  if (filter !== '' && !superuser && superuserOnlyParams(info.query)) return NONE;
  if (ruleText === '' && filter === '') return ALL;
  try {
    const ctx = newContext(catalog, info);
    const table = coll.spec.table;
    const correlate = `${col(table, 'id')} = ${col(OUTER, 'id')}`;
    const built: SelectParts[] = [];
    if (ruleText !== '') {
      const parts = new SelectParts(table);
      const r = new FieldResolver(ctx, coll, true);
      parts.wheres.push(correlate, ctx.buildRule(ruleText, r));
      r.updateQuery(parts);
      built.push(parts);
    }
    if (filter !== '') {
      const parts = new SelectParts(table);
      const r = new FieldResolver(ctx, coll, false);
      parts.wheres.push(correlate, buildFilter(parseFilter(filter), r));
      r.updateQuery(parts);
      built.push(parts);
    }
    // Without joins, EXISTS (SELECT 1 FROM t WHERE t.id = record.id AND w) is w on the record itself.
    const inline = built.every((p) => p.joins.length === 0);
    const text = inline
      ? built.flatMap((p) => p.wheres.slice(1)).map((w) => `(${w})`).join(' AND ')
      : built.map((p) => `EXISTS (${p.select('1')})`).join(' AND ');
    // Every requester's plan of a shape shares its texts (thousands of subscribers, one rule).
    const shape = `${table}\u0000${inline ? 'i' : 'e'}\u0000${text}`;
    let texts = shapes.get(shape);
    if (!texts) shapes.set(shape, (texts = { shape, conds: text, names: [...new Set([...text.matchAll(PARAM)].map((m) => m[1]))] }));
    return { kind: 'sql', table, conds: texts.conds, values: ctx.bag.values, inline, shape: texts.shape, names: texts.names };
  } catch (e) {
    if (e instanceof Unsupported) return { kind: 'none', unsupported: e.reason };
    // PocketBase: a rule or filter that fails to build denies access.
    if (e instanceof ApiError || e instanceof FilterSyntaxError) return NONE;
    throw e;
  }
}

/** One subscription group to evaluate: its plan and the changed ids it cares about. */
export interface AccessGroup {
  plan: Plan;
  ids: ReadonlySet<string>;
}

export interface AccessStats {
  statements: number;
  batchedStatements: number;
  unsupported: number;
}

/** Groups with their statements, ready to run against any batch's ids. */
export interface PreparedAccess {
  /** Groups that see every record (no rule, or superusers). */
  all: AccessGroup[];
  /** Groups whose plan is unsupported (counted per run). */
  unsupported: number;
  statements: Prepared[];
}

type Prepared =
  | { kind: 'single'; group: AccessGroup; sql: string; bindings: Record<string, unknown> }
  /** `rq`: the varying parameter values of every member, as one json_each() argument. */
  | { kind: 'batched'; members: AccessGroup[]; sql: string; bindings: Record<string, unknown>; rq: string };

const PARAM = /@(p\d+)\b/g;

/** A value as JSON whose json_each()/json_extract() gives back the SQLite type the binding would. */
function sqlJson(v: unknown): string | null {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 63n ? v.toString() : null;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    const s = String(v);
    // JS numbers bind as REAL: keep a decimal point or exponent so SQLite reads them as REAL too.
    return /[.eE]/.test(s) ? s : `${s}.0`;
  }
  return null;
}

function same(a: unknown, b: unknown): boolean {
  return typeof a === typeof b && a === b;
}

type SqlPlan = Extract<Plan, { kind: 'sql' }>;

/** The changed record's table in a statement, and its id column. */
function outer(plan: SqlPlan): { from: string; id: string } {
  return plan.inline ? { from: q(plan.table), id: col(plan.table, 'id') } : { from: `${q(plan.table)} AS ${q(OUTER)}`, id: col(OUTER, 'id') };
}

export class AccessRunner {
  private readonly statements = new WeakMap<ReplicaStore, Lru<string, Database.Statement | Error>>();
  readonly stats: AccessStats = { statements: 0, batchedStatements: 0, unsupported: 0 };

  constructor(private readonly maxBatch = 10_000) {}

  private statement(store: ReplicaStore, sql: string): Database.Statement {
    let cache = this.statements.get(store);
    if (!cache) this.statements.set(store, (cache = new Lru(1000)));
    let st = cache.get(sql);
    if (!st) {
      try {
        st = store.db.prepare(sql);
      } catch (e) {
        st = e instanceof Error ? e : new Error(String(e));
      }
      cache.set(sql, st);
    }
    if (st instanceof Error) throw st;
    return st;
  }

  /** The statements of `groups`: one per distinct rule shape (per group where values cannot be batched). */
  prepare(groups: Iterable<AccessGroup>): PreparedAccess {
    const out: PreparedAccess = { all: [], unsupported: 0, statements: [] };
    const buckets = new Map<string, AccessGroup[]>();
    for (const g of groups) {
      const plan = g.plan;
      if (plan.kind === 'all') { out.all.push(g); continue; }
      if (plan.kind === 'none') { if (plan.unsupported) out.unsupported++; continue; }
      let b = buckets.get(plan.shape);
      if (!b) buckets.set(plan.shape, (b = []));
      b.push(g);
    }
    for (const members of buckets.values()) {
      for (let i = 0; i < members.length; i += this.maxBatch) {
        const chunk = members.slice(i, i + this.maxBatch);
        const batched = chunk.length > 1 ? this.batched(chunk) : null;
        if (batched) out.statements.push(batched);
        else for (const g of chunk) out.statements.push(this.single(g));
      }
    }
    return out;
  }

  private single(group: AccessGroup): Prepared {
    const plan = group.plan as SqlPlan;
    const o = outer(plan);
    const sql = `SELECT ${o.id} AS id FROM ${o.from} WHERE ${o.id} IN (SELECT value FROM json_each(@__hapta_ids)) AND ${plan.conds}`;
    const bindings: Record<string, unknown> = {};
    for (const n of plan.names) bindings[n] = plan.values.get(n);
    return { kind: 'single', group, sql, bindings };
  }

  /** One statement for groups whose plans differ only in parameter values; null when that cannot be done. */
  private batched(members: AccessGroup[]): Prepared | null {
    const first = members[0].plan as SqlPlan;
    const names = first.names;
    const varying: string[] = [];
    for (const n of names) {
      const v0 = first.values.get(n);
      if (members.some((g) => !same((g.plan as SqlPlan).values.get(n), v0))) varying.push(n);
    }
    const index = new Map(varying.map((n, i) => [n, i]));
    // One varying value (typically @request.auth.id): a flat array, read as json_each's value.
    const flat = varying.length === 1;
    const rows: string[] = [];
    for (const g of members) {
      const values = (g.plan as SqlPlan).values;
      const cells: string[] = [];
      for (const n of varying) {
        const j = sqlJson(values.get(n));
        if (j === null) return null;
        cells.push(j);
      }
      rows.push(flat ? cells[0] : `[${cells.join(',')}]`);
    }
    const value = col(REQUESTERS, 'value');
    const conds = first.conds.replace(PARAM, (m, name: string) => {
      const i = index.get(name);
      return i === undefined ? m : flat ? value : `json_extract(${value},'$[${i}]')`;
    });
    const o = outer(first);
    const sql = `SELECT ${o.id} AS id, group_concat(${col(REQUESTERS, 'key')}) AS k FROM json_each(@__hapta_rq) AS ${q(REQUESTERS)} ` +
      `JOIN ${o.from} ON ${o.id} IN (SELECT value FROM json_each(@__hapta_ids)) WHERE ${conds} GROUP BY ${o.id}`;
    const bindings: Record<string, unknown> = {};
    for (const n of names) if (!index.has(n)) bindings[n] = first.values.get(n);
    return { kind: 'batched', members, sql, bindings, rq: `[${rows.join(',')}]` };
  }

  /**
   * Calls `visible(group, id)` for every id of a group's `ids` its subscribers may receive, at the
   * store's state. `ids`: every group's ids when they all share them (else each group's own are used).
   */
  run(store: ReplicaStore, prepared: PreparedAccess, visible: (g: AccessGroup, id: string) => void, ids?: ReadonlySet<string>): void {
    for (const g of prepared.all) for (const id of ids ?? g.ids) visible(g, id);
    this.stats.unsupported += prepared.unsupported;
    for (const p of prepared.statements) {
      if (p.kind === 'single') { this.runSingle(store, p.group, p.sql, p.bindings, visible, ids ?? p.group.ids); continue; }
      let all = ids;
      if (!all) {
        const union = new Set<string>();
        for (const g of p.members) for (const id of g.ids) union.add(id);
        all = union;
      }
      if (all.size === 0) continue;
      let result: Array<[string, string]>;
      try {
        const st = this.statement(store, p.sql).raw(true);
        result = st.all({ ...p.bindings, __hapta_ids: JSON.stringify([...all]), __hapta_rq: p.rq }) as Array<[string, string]>;
      } catch {
        // One statement per group instead (each failing on its own denies only that group).
        for (const g of p.members) {
          const one = this.single(g) as Extract<Prepared, { kind: 'single' }>;
          this.runSingle(store, g, one.sql, one.bindings, visible, ids ?? g.ids);
        }
        continue;
      }
      this.stats.statements++;
      this.stats.batchedStatements++;
      for (const [rid, keys] of result) {
        const id = String(rid);
        for (const k of String(keys).split(',')) {
          const g = p.members[Number(k)];
          if (g && (ids || g.ids.has(id))) visible(g, id);
        }
      }
    }
  }

  private runSingle(store: ReplicaStore, g: AccessGroup, sql: string, bindings: Record<string, unknown>, visible: (g: AccessGroup, id: string) => void, ids: ReadonlySet<string>): void {
    if (ids.size === 0) return;
    try {
      this.stats.statements++;
      const st = this.statement(store, sql).pluck(true);
      for (const id of st.all({ ...bindings, __hapta_ids: JSON.stringify([...ids]) }) as string[]) visible(g, String(id));
    } catch {
      // PocketBase: a failing access query denies access.
    }
  }
}
