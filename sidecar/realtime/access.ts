// Who may receive an event, in SQL against the replica: PocketBase's realtimeCanAccessRecord for one
// subscription is its CanAccessRecord (the collection's listRule for `*` topics, viewRule for record
// topics, compiled with allowHiddenFields, superusers always pass) followed by the subscription's
// `filter` (compiled without hidden fields; a non-superuser's filter or sort naming @request./@collection.
// gets nothing), with @request.context "realtime", method GET and the subscription's own query and headers.
//
// Plans are compiled per (collection, topic kind, requester, options) by the read path's resolver into
// EXISTS conditions correlated with the changed record. Plans that differ only in their parameters (the
// same rule for different requesters) are evaluated together: one statement whose varying parameters
// come from a json_each() row per requester, over all the batch's changed ids at once. So a batch costs
// one statement per distinct rule shape, however many clients and requesters subscribe.
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
    /** table + conds: plans with equal shapes run as one statement. */
    shape: string;
    /** The parameters the conditions use. */
    names: string[];
  };

export const ALL: Plan = { kind: 'all' };
export const NONE: Plan = { kind: 'none' };

const OUTER = '__hapta_rt';
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
    const conds: string[] = [];
    if (ruleText !== '') {
      const parts = new SelectParts(table);
      const r = new FieldResolver(ctx, coll, true);
      parts.wheres.push(correlate, ctx.buildRule(ruleText, r));
      r.updateQuery(parts);
      conds.push(`EXISTS (${parts.select('1')})`);
    }
    if (filter !== '') {
      const parts = new SelectParts(table);
      const r = new FieldResolver(ctx, coll, false);
      parts.wheres.push(correlate, buildFilter(parseFilter(filter), r));
      r.updateQuery(parts);
      conds.push(`EXISTS (${parts.select('1')})`);
    }
    const text = conds.join(' AND ');
    return { kind: 'sql', table, conds: text, values: ctx.bag.values, shape: `${table}\u0000${text}`, names: [...new Set([...text.matchAll(PARAM)].map((m) => m[1]))] };
  } catch (e) {
    if (e instanceof Unsupported) return { kind: 'none', unsupported: e.reason };
    // PocketBase: a rule or filter that fails to build denies access.
    if (e instanceof ApiError || e instanceof FilterSyntaxError) return NONE;
    throw e;
  }
}

/** One subscription group to evaluate: its plan, the changed ids it cares about, and the answer. */
export interface AccessGroup {
  plan: Plan;
  ids: Set<string>;
  visible: Set<string>;
}

export interface AccessStats {
  statements: number;
  batchedStatements: number;
  unsupported: number;
}

const PARAM = /@(p\d+)\b/g;

/** A value as JSON whose json_extract() gives back the same SQLite type the binding would. */
function sqlJson(v: unknown): string | null {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 63n ? v.toString() : null;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    const s = String(v);
    // JS numbers bind as REAL: keep a decimal point or exponent so json_extract() returns REAL too.
    return /[.eE]/.test(s) ? s : `${s}.0`;
  }
  return null;
}

function same(a: unknown, b: unknown): boolean {
  return typeof a === typeof b && a === b;
}

export class AccessRunner {
  private readonly statements = new WeakMap<ReplicaStore, Lru<string, Database.Statement | Error>>();
  readonly stats: AccessStats = { statements: 0, batchedStatements: 0, unsupported: 0 };

  constructor(private readonly maxBatch = 2000) {}

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

  /** Fills every group's `visible` with the ids of `ids` its subscribers may receive, at the store's state. */
  run(store: ReplicaStore, groups: Iterable<AccessGroup>): void {
    const buckets = new Map<string, AccessGroup[]>();
    for (const g of groups) {
      const plan = g.plan;
      if (g.ids.size === 0) continue;
      if (plan.kind === 'all') { for (const id of g.ids) g.visible.add(id); continue; }
      if (plan.kind === 'none') { if (plan.unsupported) this.stats.unsupported++; continue; }
      let b = buckets.get(plan.shape);
      if (!b) buckets.set(plan.shape, (b = []));
      b.push(g);
    }
    for (const members of buckets.values()) {
      if (members.length === 1) { this.single(store, members[0]); continue; }
      for (let i = 0; i < members.length; i += this.maxBatch) {
        const chunk = members.slice(i, i + this.maxBatch);
        if (!this.batched(store, chunk)) for (const g of chunk) this.single(store, g);
      }
    }
  }

  private single(store: ReplicaStore, g: AccessGroup): void {
    const plan = g.plan as Extract<Plan, { kind: 'sql' }>;
    const sql = `SELECT ${col(OUTER, 'id')} AS id FROM ${q(plan.table)} AS ${q(OUTER)} WHERE ${col(OUTER, 'id')} IN (SELECT value FROM json_each(@__hapta_ids)) AND ${plan.conds}`;
    const bindings: Record<string, unknown> = { __hapta_ids: JSON.stringify([...g.ids]) };
    for (const n of plan.names) bindings[n] = plan.values.get(n);
    try {
      this.stats.statements++;
      for (const row of this.statement(store, sql).all(bindings) as Array<{ id: string }>) g.visible.add(String(row.id));
    } catch {
      // PocketBase: a failing access query denies access.
    }
  }

  /** One statement for groups whose plans differ only in parameter values; false when that cannot be done. */
  private batched(store: ReplicaStore, members: AccessGroup[]): boolean {
    const first = members[0].plan as Extract<Plan, { kind: 'sql' }>;
    const names = first.names;
    const varying: string[] = [];
    for (const n of names) {
      const v0 = first.values.get(n);
      if (members.some((g) => !same((g.plan as typeof first).values.get(n), v0))) varying.push(n);
    }
    const index = new Map(varying.map((n, i) => [n, i]));
    const rows: string[] = [];
    for (const g of members) {
      const values = (g.plan as typeof first).values;
      const cells: string[] = [];
      for (const n of varying) {
        const j = sqlJson(values.get(n));
        if (j === null) return false;
        cells.push(j);
      }
      rows.push(`[${cells.join(',')}]`);
    }
    const conds = first.conds.replace(PARAM, (m, name: string) => {
      const i = index.get(name);
      return i === undefined ? m : `json_extract(${col(REQUESTERS, 'value')},'$[${i}]')`;
    });
    const ids = new Set<string>();
    for (const g of members) for (const id of g.ids) ids.add(id);
    const sql = `SELECT ${col(REQUESTERS, 'key')} AS k, ${col(OUTER, 'id')} AS id FROM json_each(@__hapta_rq) AS ${q(REQUESTERS)} ` +
      `JOIN ${q(first.table)} AS ${q(OUTER)} ON ${col(OUTER, 'id')} IN (SELECT value FROM json_each(@__hapta_ids)) WHERE ${conds}`;
    const bindings: Record<string, unknown> = { __hapta_ids: JSON.stringify([...ids]), __hapta_rq: `[${rows.join(',')}]` };
    for (const n of names) if (!index.has(n)) bindings[n] = first.values.get(n);
    let result: Array<{ k: number; id: string }>;
    try {
      result = this.statement(store, sql).all(bindings) as Array<{ k: number; id: string }>;
    } catch {
      return false;
    }
    this.stats.statements++;
    this.stats.batchedStatements++;
    for (const row of result) {
      const g = members[Number(row.k)];
      const id = String(row.id);
      if (g && g.ids.has(id)) g.visible.add(id);
    }
    return true;
  }
}
