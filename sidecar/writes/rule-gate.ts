// A collection's create/update/delete rule decided before PocketBase sees the write, with the read path's
// rule compiler (sidecar/reads) run against the replica, the way apis/record_crud.go runs it:
// - create: against a one-row CTE holding the would-be record (the body with PocketBase's casts and
//   zero values, a temporary id, verified unset), with `@request.body` the body after modifiers;
// - update/delete: against the stored row, with `@request.body` the body after modifiers.
// `@request.body.*` is resolved here (the read path has no body); everything else by the read path.
//
// The replica may lag PocketBase, and PocketBase checks the rule first, so two verdicts are computed:
// the rule itself over the replica, and the rule with every comparison that reads replicated data (a
// stored field, a relation, `@collection`, the signed-in record beyond its id) or the clock replaced by
// TRUE. The rule language has no negation above comparisons, so when that second form fails, the rule
// fails whatever the replica's data is: a failure PocketBase gives too ("certain"). Only certain
// failures are answered locally; any other failure goes to PocketBase.
import type { ReplicaStore } from '../../replica/store.js';
import type Database from 'better-sqlite3';
import type { PbCollection, PbField } from '../../replica/schema.js';
import type { CmpNode, FilterNode, Operand } from '../filter/index.js';
import { catalogOf, isMultiValuer, isMultiple, type CollectionInfo } from '../reads/catalog.js';
import { ResolveError } from '../reads/errors.js';
import { buildFilter, parseRule } from '../reads/filter-sql.js';
import { newContext } from '../reads/query.js';
import type { RequestInfo, Requester } from '../reads/request.js';
import { columnify, FieldResolver, NullFallback, splitModifier, type BuildContext, type MultiMatch, type Resolved } from '../reads/resolver.js';
import { col, q, SelectParts } from '../reads/sql.js';
import { Lru } from '../lru.js';
import { goJson, goParseFloat, toStr, toUniqueStrings, UNSURE, type Maybe } from './cast.js';
import { geoJson, type GoValue } from './fields.js';
import type { WriteAction } from './hooks.js';
import type { BodyEntry, Prepared } from './validate.js';

export interface RuleInput {
  store: ReplicaStore;
  collection: PbCollection;
  action: WriteAction;
  /** A non-empty rule text. */
  rule: string;
  /** The caller as the rule sees it (anonymous or an auth record; superusers skip rules). */
  requester: Requester;
  method: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** An inner request of /api/batch (its @request.query/headers/context are PocketBase's to say). */
  batch: boolean;
  /** `@request.body`; null when it is not known (a DELETE that carried a body). */
  body: Map<string, BodyEntry> | null;
  /** create: the prepared write (its dummy row); update/delete: the stored record's id. */
  prepared?: Prepared;
  recordId?: string;
}

export interface RuleJudgement {
  verdict: 'passes' | 'fails' | 'unknown';
  /** A failure that follows from the request alone: PocketBase, whatever its newer data, fails it too. */
  certain: boolean;
  /** The verdict read replicated data (which should include the caller's own writes). */
  readsReplica: boolean;
  /** Why the verdict is unknown (diagnostics). */
  reason?: string;
}

/** PocketBase's answer to a write whose rule fails. */
export function ruleFailure(action: WriteAction): { status: number; message: string } {
  return action === 'create'
    ? { status: 400, message: 'Failed to create record.' }
    : { status: 404, message: "The requested resource wasn't found." };
}

type Purity = 0 | 1 | 2; // pure, reads replicated data, cannot be computed here
const PURE: Purity = 0;
const IMPURE: Purity = 1;
const UNKNOWN: Purity = 2;
const worst = (a: Purity, b: Purity): Purity => (a > b ? a : b);

const PLAIN_AUTH = new Set(['@request.auth.id', '@request.auth.collectionId', '@request.auth.collectionName']);
const VIA = /^\w+_via_\w+$/;

/** A comparison that is always true (stands for one that reads replicated data). */
const TRUE_LEAF: CmpNode = { kind: 'cmp', op: '=', left: { kind: 'number', value: 1, raw: '1', pos: 0 }, right: { kind: 'number', value: 1, raw: '1', pos: 0 }, pos: 0 };

/**
 * The rule's verdict. With `certainOnly` (a valid write: only a certain failure changes what happens to
 * it) the rule over the replica is not run unless it reads nothing replicated.
 */
export function judgeRule(input: RuleInput, certainOnly = false): RuleJudgement {
  let tree: FilterNode;
  try {
    tree = parseRule(input.rule);
  } catch {
    return { verdict: 'unknown', certain: false, readsReplica: false, reason: 'rule syntax' };
  }
  const catalog = catalogOf(input.store);
  const base = catalog.byCollectionId(input.collection.id);
  if (!base) return { verdict: 'unknown', certain: false, readsReplica: false, reason: 'collection' };
  const leaves: Array<{ node: CmpNode; purity: Purity }> = [];
  collectLeaves(tree, (node) => leaves.push({ node, purity: worst(operandPurity(node.left, input, base), operandPurity(node.right, input, base)) }));
  const purity = new Map(leaves.map((l) => [l.node, l.purity]));
  const readsReplica = leaves.some((l) => l.purity === IMPURE);

  // the rule over the replica
  let full: boolean | null = null;
  let reason: string | undefined;
  const allPure = leaves.every((l) => l.purity === PURE);
  if (leaves.every((l) => l.purity !== UNKNOWN) && (!certainOnly || allPure)) {
    const r = run(input, base, tree);
    if (typeof r === 'string') reason = r;
    else full = r;
  } else reason = certainOnly ? 'not asked' : 'uncomputable operand';

  // the rule with what the replica says left open
  let certainFail = false;
  if (leaves.some((l) => l.purity === PURE)) {
    if (allPure) certainFail = full === false;
    else {
      const r = run(input, base, substitute(tree, purity));
      certainFail = r === false;
    }
  }
  if (certainFail) return { verdict: 'fails', certain: true, readsReplica };
  if (full === null) return { verdict: 'unknown', certain: false, readsReplica, reason };
  return { verdict: full ? 'passes' : 'fails', certain: false, readsReplica };
}

function collectLeaves(n: FilterNode, f: (c: CmpNode) => void): void {
  if (n.kind === 'cmp') f(n);
  else for (const item of n.items) collectLeaves(item, f);
}

function substitute(n: FilterNode, purity: Map<CmpNode, Purity>): FilterNode {
  if (n.kind === 'cmp') return purity.get(n) === PURE ? n : TRUE_LEAF;
  return { ...n, items: n.items.map((x) => substitute(x, purity)) };
}

/** Whether an operand's value follows from the request alone. */
function operandPurity(o: Operand, input: RuleInput, base: CollectionInfo): Purity {
  switch (o.kind) {
    case 'string': case 'number': case 'bool': case 'null': return PURE;
    case 'macro': return IMPURE; // the clock moves between here and PocketBase
    case 'call': return o.args.reduce<Purity>((p, a) => worst(p, operandPurity(a, input, base)), PURE);
    case 'identifier': break;
  }
  const name = o.name;
  const path = o.path;
  if (path[0] === '@collection') return IMPURE;
  if (path[0] === '@request') {
    if (name.startsWith('@request.auth.')) {
      if (input.requester.kind === 'anonymous') return PURE;
      return PLAIN_AUTH.has(name) ? PURE : IMPURE;
    }
    if (name.startsWith('@request.body.') && path.length > 2) return bodyPurity(o.name, input, base);
    if (path[1] === 'headers') return UNKNOWN; // the forwarded request's headers are not the client's
    if (path[1] === 'query' || path[1] === 'context' || path[1] === 'method') return input.batch ? UNKNOWN : PURE;
    return PURE; // any other @request.* is NULL
  }
  // a field of the record the rule runs against
  if (input.action !== 'create') return path.length === 1 && path[0] === 'id' ? PURE : IMPURE;
  const field = base.fields.get(path[0]);
  if (!field) return VIA.test(path[0]) ? IMPURE : PURE; // unknown fields fail to compile: PocketBase's call
  const value = input.prepared?.dummy?.get(field.name);
  if (value === UNSURE || value === undefined) return UNKNOWN;
  if (path.length === 1) return PURE;
  if (field.type === 'json' || field.type === 'geoPoint') return PURE;
  if (field.type === 'relation' && !isMultiple(field) && path.length === 2 && path[1] === 'id') return PURE;
  return IMPURE;
}

function bodyPurity(name: string, input: RuleInput, base: CollectionInfo): Purity {
  if (!input.body) return UNKNOWN;
  const props = name.split('.');
  let fname: string;
  let modifier: string;
  try {
    [fname, modifier] = splitModifier(props[2]);
  } catch {
    return PURE; // fails to compile
  }
  const entry = input.body.get(fname);
  const of = (e: BodyEntry | undefined): Purity => (!e ? PURE : e.value === UNSURE ? UNKNOWN : e.pure ? PURE : IMPURE);
  const field = base.fields.get(fname);
  if (field && field.type === 'relation' && props.length > 3) {
    if (!entry) return PURE;
    if (entry.value === UNSURE) return UNKNOWN;
    const ids = idsOf(entry.value);
    if (ids === UNSURE) return UNKNOWN;
    return ids.length === 0 ? of(entry) : IMPURE;
  }
  if (field && props.length === 3 && modifier === 'changed') {
    if (input.action !== 'create') return IMPURE;
    const v = input.prepared?.dummy?.get(field.name);
    return worst(of(entry), v === UNSURE || v === undefined ? UNKNOWN : PURE);
  }
  return of(entry);
}

function idsOf(v: GoValue): Maybe<string[]> {
  if (v && typeof v === 'object' && '$strings' in v) return toUniqueStrings((v as { $strings: string[] }).$strings);
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return toUniqueStrings(v);
  return UNSURE;
}

// --- SQL -----------------------------------------------------------------------------------------

interface Prepared2 { stmt: Database.Statement; params: string[] }
const statements = new WeakMap<Database.Database, Lru<string, Prepared2>>();

/** A statement per SQL text (and the parameters it names), per replica connection. */
function prepare(db: Database.Database, sql: string): Prepared2 {
  let cache = statements.get(db);
  if (!cache) statements.set(db, (cache = new Lru(300)));
  let hit = cache.get(sql);
  if (!hit) cache.set(sql, (hit = { stmt: db.prepare(sql), params: [...new Set([...sql.matchAll(/@(p\d+)/g)].map((m) => m[1]))] }));
  return hit;
}

/** The dummy row's select list (`@p1 AS "id", ...`: the first parameters of a fresh bag), per definition. */
const dummyColumns = new WeakMap<PbCollection, string>();
function dummySelect(c: PbCollection): string {
  let sql = dummyColumns.get(c);
  if (sql === undefined) dummyColumns.set(c, (sql = c.fields.map((f, i) => `@p${i + 1} AS ${q(f.name)}`).join(', ')));
  return sql;
}

/** Runs the rule (or a substituted form); true/false, or why it could not be run. */
function run(input: RuleInput, base: CollectionInfo, tree: FilterNode): boolean | string {
  const info: RequestInfo = { context: 'default', method: input.method, query: input.query, headers: input.headers, requester: input.requester };
  const ctx = newContext(catalogOf(input.store), info);
  try {
    let sql: string;
    if (input.action === 'create') {
      const dummy = input.prepared?.dummy;
      if (!dummy) return 'no dummy';
      const name = `${base.c.name}__pb_create__hapta`;
      const info2: CollectionInfo = { ...base, c: { ...base.c, name, id: `${base.c.id}__pb_create__hapta` }, spec: { ...base.spec, table: name, collectionName: name } };
      // the dummy row has a column for every field
      (info2 as { columns?: Set<string> }).columns = new Set(base.c.fields.map((f) => f.name));
      for (const f of base.c.fields) {
        const v = dummy.get(f.name);
        ctx.bag.add(v === UNSURE || v === undefined ? null : v);
      }
      const r = new WriteResolver(ctx, info2, input);
      const parts = new SelectParts(name);
      parts.wheres.push(buildFilter(tree, r));
      r.updateQuery(parts);
      sql = `WITH ${q(name)} AS (SELECT ${dummySelect(base.c)}) ${parts.select('1')} LIMIT 1`;
    } else {
      const r = new WriteResolver(ctx, base, input);
      const parts = new SelectParts(base.spec.table);
      parts.wheres.push(`${col(base.spec.table, 'id')} = @${ctx.bag.add(input.recordId ?? '')}`);
      parts.wheres.push(buildFilter(tree, r));
      r.updateQuery(parts);
      sql = `${parts.select('1')} LIMIT 1`;
    }
    const p = prepare(input.store.db, sql);
    const bindings: Record<string, unknown> = {};
    for (const name of p.params) bindings[name] = ctx.bag.values.get(name); // stored bindable (booleans as integers)
    return p.stmt.get(bindings) !== undefined;
  } catch (e) {
    return `compile: ${(e as Error).message}`;
  }
}

// --- @request.body -------------------------------------------------------------------------------

class BodyUnsure extends Error {}
/** What the read path's resolver throws for an unknown field, made once (its callers only test the type). */
const LITERAL_MISS = new ResolveError('literal');

/** The read path's resolver, plus PocketBase's `@request.body.*` over the write's body. */
class WriteResolver extends FieldResolver {
  constructor(ctx: BuildContext, base: CollectionInfo, private readonly write: RuleInput) {
    super(ctx, base, true);
  }

  override resolve(fieldName: string): Resolved {
    // `true`, `false`, `null` are tried as fields first: a miss is the common case, answered cheaply
    if (fieldName.length <= 5 && /^(true|false|null)$/i.test(fieldName) && !this.base.fields.has(fieldName)) throw LITERAL_MISS;
    if (!fieldName.startsWith('@request.body.')) return super.resolve(fieldName);
    if (!/^@request\.body\.[\w.:]*\w+$/.test(fieldName)) return super.resolve(fieldName); // its error
    const props = fieldName.split('.');
    const [name, modifier] = splitModifier(props[2]);
    const field = this.base.fields.get(name);
    if (!field) return this.staticBody(props.slice(1));
    if (field.type === 'relation' && props.length > 3) return this.bodyRelation(field, props);
    if (props.length === 3) {
      switch (modifier) {
        case 'each': return this.bodyEach(field);
        case 'length': {
          if (!isMultiValuer(field)) throw new Error(`field ${name} doesn't support multivalue operations`);
          return { id: String(toSlice(this.entry(name)).length), params: new Map(), nullFallback: NullFallback.Auto };
        }
        case 'lower': {
          const params = new Map<string, unknown>();
          const p = this.ctx.bag.add(castString(this.entry(name)), params);
          return { id: `LOWER(@${p})`, params, nullFallback: NullFallback.Auto };
        }
        case 'changed': {
          const alias = buildFilter(parseRule(`@request.body.${name}:isset = true && @request.body.${name} != ${name}`), this);
          const placeholder = `@changed@${columnify(name)}${this.ctx.bag.suffix().slice(1)}`;
          return { id: placeholder, params: new Map(), nullFallback: NullFallback.Disabled, afterBuild: (sql) => sql.split(placeholder).join(`(${alias})`) };
        }
      }
    }
    return this.staticBody(props.slice(1));
  }

  /** The body value of a key (null when absent); not computable: the whole rule is PocketBase's. */
  private entry(key: string): GoValue {
    const e = this.write.body?.get(key);
    if (!this.write.body) throw new BodyUnsure('body unknown');
    if (!e) return null;
    if (e.value === UNSURE) throw new BodyUnsure(`body ${key}`);
    return e.value;
  }

  private get alias(): string {
    return this.baseAlias || columnify(this.base.c.name);
  }

  /** resolveStaticRequestField over ["body", ...]. */
  private staticBody(path: string[]): Resolved {
    path = path.slice();
    const [last, modifier] = splitModifier(path[path.length - 1]);
    path[path.length - 1] = last;
    if (!this.write.body) throw new BodyUnsure('body unknown');
    let found = true;
    let value: GoValue = null;
    const first = this.write.body.get(path[1]);
    if (!first) found = false;
    else {
      if (first.value === UNSURE) throw new BodyUnsure(`body ${path[1]}`);
      value = first.value;
      for (const key of path.slice(2)) {
        const next = child(value, key);
        if (next === UNSURE) throw new BodyUnsure('body path');
        if (next === undefined) {
          found = false;
          value = null;
          break;
        }
        value = next;
      }
    }
    if (!found) value = null;
    const lit = (id: string): Resolved => ({ id, params: new Map(), nullFallback: NullFallback.Auto });
    if (modifier === 'isset') return lit(found ? 'TRUE' : 'FALSE');
    let param: unknown;
    if (value === null) param = null;
    else if (typeof value === 'string') {
      param = value;
      const f = this.base.fields.get(last);
      if (f && f.type === 'number') {
        const n = goParseFloat(value);
        if (n === UNSURE || (typeof n === 'number' && !Number.isFinite(n))) throw new BodyUnsure('number text');
        if (typeof n === 'number') param = n;
      }
    } else if (typeof value === 'number' || typeof value === 'boolean') param = value;
    else {
      const s = stringOf(value);
      if (s === UNSURE) throw new BodyUnsure('body value');
      param = s;
    }
    if (modifier !== '' && modifier !== 'lower') throw new Error(`invalid modifier sequence ${last}:${modifier}`);
    if (param === null) return lit('NULL');
    if (typeof param === 'number' && !Number.isFinite(param)) throw new BodyUnsure('number');
    const params = new Map<string, unknown>();
    const p = this.ctx.bag.add(param, params);
    return { id: modifier === 'lower' ? `LOWER(@${p})` : `@${p}`, params, nullFallback: NullFallback.Auto };
  }

  /** `@request.body.rel.x`: the related records the body names, joined by id. */
  private bodyRelation(field: PbField, props: string[]): Resolved {
    const ids = idsOf(this.entry(field.name));
    if (ids === UNSURE) throw new BodyUnsure('relation ids');
    if (ids.length === 0) return { id: 'NULL', params: new Map(), nullFallback: NullFallback.Auto };
    const rel = this.ctx.catalog.byCollectionId(String(field.collectionId ?? ''));
    if (!rel) throw new BodyUnsure('relation collection');
    // resolved as an aliased @collection join, whose ON then becomes "id IN (the body's ids)"
    const tag = `hapta_body_${columnify(field.name)}`;
    const res = super.resolve(`@collection.${rel.c.name}:${tag}.${props.slice(3).join('.')}`);
    const alias = columnify(`__collection_alias_${tag}`) + this.suffix;
    const idsJson = JSON.stringify(ids);
    this.registerJoin(q(columnify(rel.c.name)), alias, `${col(alias, 'id')} IN (SELECT value FROM json_each(@${this.ctx.bag.add(idsJson)}))`, rel);
    const mmJoin = res.mm?.joins.find((j) => j.alias === `__mm_${alias}`);
    if (mmJoin) mmJoin.on = `${col(mmJoin.alias, 'id')} IN (SELECT value FROM json_each(@${this.ctx.bag.add(idsJson)}))`;
    return res;
  }

  /** `@request.body.field:each`: a json_each over the body's items. */
  private bodyEach(field: PbField): Resolved {
    if (!isMultiValuer(field)) throw new Error(`field ${field.name} doesn't support multivalue operations`);
    const items = toSlice(this.entry(field.name)).map((x) => unwrap(x));
    const json = items.includes(UNSURE) ? UNSURE : goJson(items);
    if (json === UNSURE) throw new BodyUnsure('each');
    const params = new Map<string, unknown>();
    const p1 = this.ctx.bag.add(json, params);
    const je = `__dataEach_je_${columnify(field.name)}${this.suffix}`;
    this.registerJoin(`json_each(@${p1})`, je, null, null);
    const res: Resolved = { id: col(je, 'value'), params, nullFallback: NullFallback.Auto };
    if (isMultiple(field)) {
      const p2 = this.ctx.bag.add(json);
      const mm: MultiMatch = {
        targetAlias: this.alias, fromTable: q(columnify(this.base.c.name)), fromAlias: `__mm_${this.alias}`,
        valueId: col(`__mm_${je}`, 'value'), joins: [{ table: `json_each(@${p2})`, alias: `__mm_${je}`, on: null }],
      };
      res.mm = mm;
    }
    return res;
  }
}

/** A value's member (extractNestedVal): undefined when Go finds none. */
function child(v: GoValue, key: string): GoValue | undefined | typeof UNSURE {
  if (v === null || typeof v !== 'object') return undefined;
  if ('$strings' in v && Object.keys(v).length === 1) return index((v as { $strings: string[] }).$strings, key);
  if ('$geo' in v && Object.keys(v).length === 1) {
    const g = (v as { $geo: { lon: number; lat: number } }).$geo;
    return key === 'lon' ? g.lon : key === 'lat' ? g.lat : undefined;
  }
  if ('$jsonraw' in v && Object.keys(v).length === 1) {
    const raw = (v as { $jsonraw: string }).$jsonraw;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return undefined;
    }
    return child(parsed as GoValue, key);
  }
  if ('$date' in v && Object.keys(v).length === 1) return undefined;
  if (Array.isArray(v)) return index(v, key);
  return Object.prototype.hasOwnProperty.call(v, key) ? (v as Record<string, GoValue>)[key] : undefined;
}

function index<T>(list: T[], key: string): T | undefined | typeof UNSURE {
  if (!/^[0-9]+$/.test(key)) return undefined;
  if (key.length > 18) return UNSURE;
  const i = Number(key);
  return i < list.length ? list[i] : undefined;
}

/** A wrapped Go value as plain JSON data (for encoding; raw JSON is not re-encoded here). */
function unwrap(v: GoValue): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    if ('$strings' in v) return (v as { $strings: string[] }).$strings;
    if ('$date' in v) return (v as { $date: string }).$date;
    if ('$geo' in v || '$jsonraw' in v) return UNSURE; // (their strings come from stringer())
  }
  return v;
}

/** encoding/json of a body value, or UNSURE. */
function encode(v: unknown): Maybe<string> {
  return v === UNSURE ? UNSURE : goJson(v);
}

/** toSlice: nil is empty, a slice its items, anything else one item. */
function toSlice(v: GoValue): GoValue[] {
  if (v === null) return [];
  if (Array.isArray(v)) return v;
  if (typeof v === 'object' && '$strings' in v) return (v as { $strings: string[] }).$strings;
  return [v];
}

/** cast.ToString of a body value (Stringers: dates, geo points, raw JSON; slices and maps: ""). */
function castString(v: GoValue): string {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return toStr(v);
  const s = stringer(v);
  return s === undefined ? '' : s === UNSURE ? (() => { throw new BodyUnsure('string'); })() : s;
}

function stringer(v: GoValue): string | undefined | typeof UNSURE {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    if ('$date' in v) return (v as { $date: string }).$date;
    if ('$jsonraw' in v) return (v as { $jsonraw: string }).$jsonraw || 'null';
    if ('$geo' in v) return geoJson((v as { $geo: { lon: number; lat: number } }).$geo);
  }
  return undefined;
}

/** A non-plain static value as resolveStaticRequestField turns it into a string (Stringer or JSON). */
function stringOf(v: GoValue): Maybe<string> {
  const s = stringer(v);
  if (s !== undefined) return s;
  return encode(unwrap(v));
}

