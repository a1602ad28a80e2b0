// PocketBase's RecordFieldResolver (core/record_field_resolver*.go) rebuilt over the replica: turns one
// field name of a filter, sort or rule into a SQL operand, registering the LEFT JOINs, multi-match
// subqueries and list-rule joins PocketBase would. Every identifier comes from the catalog; values are
// bound parameters. Join aliases follow PocketBase's so shared paths share joins exactly as they do there.
import { encodeRecord, type PbField } from '../../replica/schema.js';
import type { Catalog, CollectionInfo } from './catalog.js';
import { collectionInfo, hasSingleColumnUniqueIndex, isMultiValuer, isMultiple } from './catalog.js';
import { ResolveError, Unsupported } from './errors.js';
import { goParseFloat, type RequestInfo } from './request.js';
import { col, jsonArrayLength, jsonEach, jsonExtract, q, type Join, type ParamBag, type Params, type SelectParts } from './sql.js';

export const NullFallback = { Auto: 0, Disabled: 1, Enforced: 2 } as const;
export type NullFallback = 0 | 1 | 2;

export interface MultiMatch {
  targetAlias: string;
  fromTable: string;
  fromAlias: string;
  valueId: string;
  joins: Join[];
}

export interface Resolved {
  id: string;
  params: Params;
  nullFallback: NullFallback;
  mm?: MultiMatch;
  afterBuild?: (sql: string) => string;
}

/** Everything one query build shares: parameters, catalog and the request. */
export interface BuildContext {
  bag: ParamBag;
  catalog: Catalog;
  info: RequestInfo;
  /** Builds a rule/filter text against a resolver (filter-sql.ts; injected to avoid an import cycle). */
  buildRule(text: string, r: FieldResolver): string;
  /** The requester's auth table, once a field needs it (see FieldResolver.authSource). */
  authSource?: AuthSource;
  /** The SQL of each branch of every OR built, in order (query.ts reads an OR split of the plan with it). */
  orGroups?: string[][];
}

/** What `@request.auth.<field>` joins: the auth collection's table, or a one-row table of the requester. */
export interface AuthSource {
  info: CollectionInfo;
  /** SQL of the joined table: a replica table, or `(SELECT ... )` holding the requester's record. */
  table: string;
  /** The requester's own record only: relation paths cannot come back into this collection through it. */
  single: boolean;
}

/** Definitions of collections the replica does not hold, per definition object. */
const foreignInfos = new WeakMap<object, CollectionInfo>();

const ALLOWED = [
  /^\w+[\w.:]*$/, /^@request\.context$/, /^@request\.method$/, /^@request\.auth\.[\w.:]*\w+$/,
  /^@request\.body\.[\w.:]*\w+$/, /^@request\.query\.[\w.:]*\w+$/, /^@request\.headers\.[\w.:]*\w+$/,
  /^@collection\.\w+(:\w+)?\.[\w.:]*\w+$/,
];
const PLAIN_AUTH = new Set(['id', 'collectionId', 'collectionName', 'email', 'emailVisibility', 'verified'].map((f) => '@request.auth.' + f));
/** Plain auth fields a session knows without its record. */
const SESSION_AUTH = new Set(['id', 'collectionId', 'collectionName'].map((f) => '@request.auth.' + f));
const MODIFIERS = new Set(['isset', 'each', 'length', 'lower', 'changed']);
const MAX_NESTED_RELS = 6;
const VIA = /^(\w+)_via_(\w+)$/;

/** inflector.Columnify: names reaching here are already word characters; this drops the rest (':'). */
export function columnify(s: string): string {
  return s.replace(/[^\w.*\-@#]+/g, '');
}

/** splitModifier: [name, modifier]; exactly one ':' with a known modifier, else the whole text. */
export function splitModifier(combined: string): [string, string] {
  const parts = combined.split(':');
  if (parts.length !== 2) return [combined, ''];
  if (MODIFIERS.has(parts[1])) return [parts[0], parts[1]];
  throw new ResolveError(`unknown modifier in ${combined}`);
}

export class FieldResolver {
  joins: Join[] = [];
  ruleJoins: Array<{ c: CollectionInfo; alias: string }> = [];

  constructor(
    readonly ctx: BuildContext,
    public base: CollectionInfo,
    public allowHidden: boolean,
    public baseAlias = '',
    public suffix = '',
  ) {}

  resolve(fieldName: string): Resolved {
    if (!ALLOWED.some((re) => re.test(fieldName))) throw new ResolveError(`failed to resolve field ${fieldName}`);
    return new Runner(this, fieldName).run();
  }

  loadCollection(nameOrId: string): CollectionInfo {
    const b = this.base.c;
    if (nameOrId === b.name || nameOrId === b.id) return this.base;
    return this.ctx.catalog.need(nameOrId);
  }

  /** registerJoin: a collection join by a non-superuser also brings that collection's listRule. */
  registerJoin(table: string, alias: string, on: string | null, collection: CollectionInfo | null): void {
    if (!this.allowHidden && collection) {
      if (collection.c.listRule === null || collection.c.listRule === undefined) {
        throw new ResolveError(`${collection.c.name} fields can be accessed only by superusers`);
      }
      const existing = this.ruleJoins.find((j) => j.alias === alias);
      if (existing) existing.c = collection;
      else this.ruleJoins.push({ c: collection, alias });
    }
    const join: Join = { table, alias, on };
    const i = this.joins.findIndex((j) => j.alias === alias);
    if (i !== -1) this.joins[i] = join;
    else this.joins.push(join);
  }

  /** UpdateQuery: the joins, deduplication and the list rules of joined collections. */
  updateQuery(parts: SelectParts): void {
    if (this.joins.length > 0) {
      parts.distinct = true;
      parts.joins.push(...this.joins);
    }
    for (const rj of this.ruleJoins) this.applyCollectionListRule(rj.c, rj.alias, parts);
  }

  private applyCollectionListRule(c: CollectionInfo, alias: string, parts: SelectParts): void {
    const rule = c.c.listRule;
    if (this.allowHidden || rule === null || rule === undefined || rule === '') return;
    const clone = new FieldResolver(this.ctx, c, true, alias, this.ctx.bag.suffix());
    // "id='' ||" keeps filters over empty relations meaningful, as PocketBase does.
    parts.wheres.push(this.ctx.buildRule(`id='' || (\n${rule}\n)`, clone));
    if (clone.joins.length > 0) {
      parts.distinct = true;
      parts.joins.push(...clone.joins);
    }
  }

  /** The requester as @request.auth sees it (PublicExport with everything visible). */
  staticAuth(): Record<string, unknown> | null {
    const rq = this.ctx.info.requester;
    if (rq.kind === 'anonymous') return null;
    const coll = rq.collection ?? this.ctx.catalog.byCollectionId(authCollectionId(rq))?.c;
    return { ...rq.record, collectionId: rq.record.collectionId ?? coll?.id, collectionName: rq.record.collectionName ?? coll?.name };
  }

  /**
   * The table `@request.auth.<field>` joins (as PocketBase joins the requester's auth collection on its
   * id): the replica's table when it holds the collection; otherwise a one-row table built from the
   * requester's record and its collection's definition (exactly the row PocketBase's join finds, minus
   * password and tokenKey, which resolve as not replicated). Unknown record or definition: Unsupported.
   */
  authSource(): AuthSource {
    const ctx = this.ctx;
    if (ctx.authSource) return ctx.authSource;
    const rq = ctx.info.requester;
    if (rq.kind === 'anonymous') throw new Error('no requester');
    const replicated = ctx.catalog.byCollectionId(authCollectionId(rq));
    if (replicated) return (ctx.authSource = { info: replicated, table: q(columnify(replicated.c.name)), single: false });
    if (!rq.collection || rq.partial) throw new Unsupported(rq.kind === 'superuser' ? 'superuser_record_unavailable' : 'auth_record_not_replicated');
    let info = foreignInfos.get(rq.collection);
    if (!info) foreignInfos.set(rq.collection, (info = collectionInfo(rq.collection)));
    const values = encodeRecord(info.spec, rq.record, 0);
    // CAST gives each column the affinity of the replica's column of that type, so comparisons coerce alike.
    const cols = info.spec.columns.map((c, i) => `CAST(@${ctx.bag.add(values[i])} AS ${c.sqlType}) AS ${q(c.name)}`);
    return (ctx.authSource = { info, table: `(SELECT ${cols.join(', ')})`, single: true });
  }
}

function authCollectionId(rq: Exclude<RequestInfo['requester'], { kind: 'anonymous' }>): string {
  return rq.kind === 'record' ? rq.collectionId : String(rq.record.collectionId ?? rq.collection?.id ?? '');
}

/** A field the replica has no column for (password, tokenKey): only PocketBase can compare it. */
function needColumn(collection: CollectionInfo, field: PbField): void {
  if (!collection.columns.has(field.name)) throw new Unsupported('field_not_replicated');
}

class Runner {
  private props: string[];
  private activeCollection: string;
  private activeAlias: string;
  private nullify: boolean;
  private withMM = false;
  private mm: MultiMatch;
  private mmAlias: string;
  /** The one-row requester table joined by @request.auth.*: the first prop resolves against it. */
  private pinned: CollectionInfo | null = null;
  private readonly bag: ParamBag;

  constructor(private readonly r: FieldResolver, private readonly fieldName: string) {
    this.bag = r.ctx.bag;
    this.props = fieldName.split('.');
    this.activeCollection = r.base.c.name;
    this.activeAlias = r.baseAlias || columnify(this.activeCollection);
    this.nullify = this.props[0] === '@request';
    this.mm = { targetAlias: this.activeAlias, fromTable: q(columnify(this.activeCollection)), fromAlias: '__mm_' + this.activeAlias, valueId: '', joins: [] };
    this.mmAlias = this.mm.fromAlias;
  }

  private result(id: string, extra: Partial<Resolved> = {}): Resolved {
    return { id, params: new Map(), nullFallback: NullFallback.Auto, ...extra };
  }

  private param(value: unknown, wrap?: (p: string) => string): Resolved {
    const params: Params = new Map();
    const name = this.bag.add(value, params);
    return { id: wrap ? wrap(`@${name}`) : `@${name}`, params, nullFallback: NullFallback.Auto };
  }

  run(): Resolved {
    const p0 = this.props[0];
    if (p0 === '@collection') return this.collectionField();
    if (p0 === '@request') {
      if (this.fieldName.startsWith('@request.auth.')) return this.authField();
      if (this.fieldName.startsWith('@request.body.') && this.props.length > 2) return this.bodyField();
      return this.staticField(this.props.slice(1));
    }
    return this.activeProps();
  }

  private collectionField(): Resolved {
    if (this.props.length < 3) throw new ResolveError(`invalid @collection field path in ${this.fieldName}`);
    const seg = this.props[1];
    const colon = seg.indexOf(':');
    const parts = colon === -1 ? [seg] : [seg.slice(0, colon), seg.slice(colon + 1)];
    const c = this.r.loadCollection(parts[0]);
    this.activeCollection = c.c.name;
    this.activeAlias = (parts.length === 2 && parts[1] !== '' ? columnify('__collection_alias_' + parts[1]) : columnify('__collection_' + c.c.name)) + this.r.suffix;
    this.withMM = true;
    this.r.registerJoin(q(columnify(c.c.name)), this.activeAlias, null, c);
    this.mmAlias = '__mm_' + this.activeAlias;
    this.mm.joins.push({ table: q(columnify(c.c.name)), alias: this.mmAlias, on: null });
    this.props = this.props.slice(2);
    return this.activeProps();
  }

  private authField(): Resolved {
    const rq = this.r.ctx.info.requester;
    if (rq.kind === 'anonymous') return this.result('NULL');
    if (PLAIN_AUTH.has(this.fieldName)) {
      if (rq.partial && !SESSION_AUTH.has(this.fieldName)) throw new Unsupported('auth_record_not_replicated');
      return this.staticField(this.props.slice(1));
    }
    const source = this.r.authSource();
    const c = source.info;
    const authId = String(rq.record.id ?? '');
    this.activeCollection = c.c.name;
    this.activeAlias = '__auth_' + columnify(c.c.name) + this.r.suffix;
    this.r.registerJoin(source.table, this.activeAlias, `${col(this.activeAlias, 'id')} = @${this.bag.add(authId)}`, c);
    this.mmAlias = '__mm_' + this.activeAlias;
    this.mm.joins.push({ table: source.table, alias: this.mmAlias, on: `${col(this.mmAlias, 'id')} = @${this.bag.add(authId)}` });
    if (source.single) this.pinned = c;
    this.props = this.props.slice(2);
    return this.activeProps();
  }

  /** @request.body.*: a GET carries no body (requests with one are not answered here). */
  private bodyField(): Resolved {
    const [name, modifier] = splitModifier(this.props[2]);
    const field = this.r.base.fields.get(name);
    if (!field) return this.staticField(this.props.slice(1));
    if (field.type === 'relation' && this.props.length > 3) return this.result('NULL');
    if (this.props.length === 3) {
      switch (modifier) {
        case 'each': case 'changed': throw new Unsupported(`body_${modifier}`);
        case 'length':
          if (!isMultiValuer(field)) throw new ResolveError(`field ${name} doesn't support multivalue operations`);
          return this.result('0');
        case 'lower': return this.param('', (p) => `LOWER(${p})`);
      }
    }
    return this.staticField(this.props.slice(1));
  }

  /** resolveStaticRequestField over {context, method, query, headers, body, auth}. */
  private staticField(path: string[]): Resolved {
    path = path.slice();
    const [last, modifier] = splitModifier(path[path.length - 1]);
    path[path.length - 1] = last;
    const info = this.r.ctx.info;
    const root: Record<string, unknown> = {
      context: info.context, method: info.method, query: info.query, headers: info.headers, body: {}, auth: this.r.staticAuth(),
    };
    let value: unknown = root;
    let found = true;
    for (const key of path) {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.prototype.hasOwnProperty.call(value, key)) {
        if (Array.isArray(value)) throw new Unsupported('static_array');
        found = false;
        value = undefined;
        break;
      }
      value = (value as Record<string, unknown>)[key];
    }
    if (found && path[0] === 'auth' && value === undefined) throw new Unsupported('auth_field_missing');
    if (modifier === 'isset') return this.result(found ? 'TRUE' : 'FALSE');
    if (typeof value === 'string') {
      const field = this.r.base.fields.get(last);
      if (field && field.type === 'number') {
        const n = goParseFloat(value);
        if (n !== null) value = n;
      }
    } else if (value !== null && value !== undefined && typeof value !== 'boolean' && typeof value !== 'number') {
      throw new Unsupported('static_non_plain');
    }
    if (modifier !== '' && modifier !== 'lower') throw new ResolveError(`invalid modifier sequence ${last}:${modifier}`);
    if (value === null || value === undefined) return this.result('NULL');
    return this.param(value, modifier === 'lower' ? (p) => `LOWER(${p})` : undefined);
  }

  private activeProps(): Resolved {
    const total = this.props.length;
    for (let i = 0; i < total; i++) {
      const prop = this.props[i];
      const collection = i === 0 && this.pinned ? this.pinned : this.r.loadCollection(this.activeCollection);
      if (i === total - 1) return this.finalize(collection, prop);
      const field = collection.fields.get(prop);
      if (field && field.hidden && !this.r.allowHidden) throw new ResolveError(`non-filterable field ${prop}`);
      if (field && (field.type === 'json' || field.type === 'geoPoint')) {
        needColumn(collection, field);
        return this.jsonPath(field, i);
      }
      if (i >= MAX_NESTED_RELS) throw new ResolveError(`max nested relations reached for field ${prop}`);
      if (!field) {
        const done = this.backRelation(collection, prop);
        if (done) return done;
        continue;
      }
      if (field.type !== 'relation') throw new ResolveError(`field ${prop} is not a valid relation`);
      const rel = this.r.loadCollection(String(field.collectionId ?? ''));
      const multiple = isMultiple(field);
      if (!multiple && i === total - 2 && this.props[i + 1] === 'id') return this.finalize(collection, field.name);
      needColumn(collection, field);
      this.directRelation(field, rel, multiple);
    }
    throw new ResolveError(`failed to resolve field ${this.fieldName}`);
  }

  private jsonPath(field: PbField, i: number): Resolved {
    let path = '';
    this.props.slice(i + 1).forEach((p, j) => {
      if (/^[0-9]+$/.test(p) && BigInt(p) <= 9223372036854775807n) path += '[' + columnify(p) + ']';
      else path += (j > 0 ? '.' : '') + columnify(p);
    });
    const res = this.result(jsonExtract(this.bag, col(this.activeAlias, columnify(field.name)), path), { nullFallback: NullFallback.Disabled });
    if (this.withMM) {
      this.mm.valueId = jsonExtract(this.bag, col(this.mmAlias, columnify(field.name)), path);
      res.mm = this.mm;
    }
    return res;
  }

  /** `x_via_y`; returns a result only when the path resolves to NULL (missing @request.auth relation). */
  private backRelation(collection: CollectionInfo, prop: string): Resolved | null {
    const m = VIA.exec(prop);
    const missing = (why: string) => {
      if (this.nullify) return this.result('NULL');
      throw new ResolveError(why);
    };
    if (!m) return missing(`failed to resolve field ${prop}`);
    const back = this.r.loadCollection(m[1]);
    const backField = back.fields.get(m[2]);
    if (!backField) return missing(`missing back relation field ${m[2]}`);
    if (backField.type !== 'relation') return missing(`invalid back relation field ${m[2]}`);
    if (backField.hidden && !this.r.allowHidden) throw new ResolveError(`non-filterable back relation field ${m[2]}`);
    if (backField.collectionId !== collection.c.id) return missing(`invalid collection reference of ${m[2]}`);
    needColumn(back, backField);

    const cleanProp = columnify(prop);
    const cleanBack = columnify(backField.name);
    const newAlias = this.activeAlias + '_' + cleanProp + this.r.suffix;
    const newName = columnify(back.c.name);
    const multiple = isMultiple(backField);
    if (!multiple) {
      this.r.registerJoin(q(newName), newAlias, `${col(newAlias, cleanBack)} = ${col(this.activeAlias, 'id')}`, back);
    } else {
      const je = '__je_' + newAlias;
      this.r.registerJoin(q(newName), newAlias,
        `${col(this.activeAlias, 'id')} IN (SELECT ${col(je, 'value')} FROM ${jsonEach(col(newAlias, cleanBack))} ${q(je)})`, back);
    }
    this.activeCollection = newName;
    this.activeAlias = newAlias;

    if (multiple) this.withMM = true;
    else if (!this.withMM) this.withMM = !hasSingleColumnUniqueIndex(back.c, backField.name);
    const newAlias2 = this.mmAlias + '_' + cleanProp + this.r.suffix;
    if (!multiple) {
      this.mm.joins.push({ table: q(newName), alias: newAlias2, on: `${col(newAlias2, cleanBack)} = ${col(this.mmAlias, 'id')}` });
    } else {
      const je2 = '__je_' + newAlias2;
      this.mm.joins.push({ table: q(newName), alias: newAlias2,
        on: `${col(this.mmAlias, 'id')} IN (SELECT ${col(je2, 'value')} FROM ${jsonEach(col(newAlias2, cleanBack))} ${q(je2)})` });
    }
    this.mmAlias = newAlias2;
    return null;
  }

  private directRelation(field: PbField, rel: CollectionInfo, multiple: boolean): void {
    const clean = columnify(field.name);
    const prefixed = col(this.activeAlias, clean);
    const newAlias = this.activeAlias + '_' + clean + this.r.suffix;
    const relName = rel.c.name;
    if (!multiple) {
      this.r.registerJoin(q(columnify(relName)), newAlias, `${col(newAlias, 'id')} = ${prefixed}`, rel);
    } else {
      const je = '__je_' + newAlias;
      this.r.registerJoin(jsonEach(prefixed), je, null, null);
      this.r.registerJoin(q(columnify(relName)), newAlias, `${col(newAlias, 'id')} = ${col(je, 'value')}`, rel);
    }
    this.activeCollection = relName;
    this.activeAlias = newAlias;
    if (multiple) this.withMM = true;
    const newAlias2 = this.mmAlias + '_' + clean;
    const prefixed2 = col(this.mmAlias, clean);
    if (!multiple) {
      this.mm.joins.push({ table: q(columnify(relName)), alias: newAlias2, on: `${col(newAlias2, 'id')} = ${prefixed2}` });
    } else {
      const je2 = this.mmAlias + '_' + clean + '_je';
      this.mm.joins.push({ table: jsonEach(prefixed2), alias: je2, on: null });
      this.mm.joins.push({ table: q(columnify(relName)), alias: newAlias2, on: `${col(newAlias2, 'id')} = ${col(je2, 'value')}` });
    }
    this.mmAlias = newAlias2;
  }

  private finalize(collection: CollectionInfo, prop: string): Resolved {
    const [name, modifier] = splitModifier(prop);
    const field = collection.fields.get(name);
    if (!field) {
      if (this.nullify) return this.result('NULL');
      throw new ResolveError(`unknown field ${name}`);
    }
    if (field.hidden && !this.r.allowHidden) throw new ResolveError(`non-filterable field ${name}`);
    needColumn(collection, field);
    const clean = columnify(field.name);
    const multiValuer = isMultiValuer(field);

    if (modifier === 'length' && multiValuer) {
      const res = this.result(jsonArrayLength(col(this.activeAlias, clean)));
      if (this.withMM) {
        this.mm.valueId = jsonArrayLength(col(this.mmAlias, clean));
        res.mm = this.mm;
      }
      return res;
    }
    if (modifier === 'each' && multiValuer) {
      const je = '__je_' + this.activeAlias + '_' + clean + this.r.suffix;
      this.r.registerJoin(jsonEach(col(this.activeAlias, clean)), je, null, null);
      const res = this.result(col(je, 'value'));
      if (isMultiple(field)) this.withMM = true;
      if (this.withMM) {
        const je2 = '__je_' + this.mmAlias + '_' + clean + this.r.suffix;
        this.mm.joins.push({ table: jsonEach(col(this.mmAlias, clean)), alias: je2, on: null });
        this.mm.valueId = col(je2, 'value');
        res.mm = this.mm;
      }
      return res;
    }

    const res = this.result(col(this.activeAlias, clean));
    if (this.withMM) {
      this.mm.valueId = col(this.mmAlias, clean);
      res.mm = this.mm;
    }
    // Only auth records with a public email may be matched by email (unless hidden fields are allowed).
    if (field.name === 'email' && !this.r.allowHidden && collection.isAuth) {
      const vis = col(this.activeAlias, 'emailVisibility');
      res.afterBuild = (sql) => `((${sql}) AND (${vis} = TRUE))`;
    }
    if (field.type === 'json') {
      res.nullFallback = NullFallback.Disabled;
      res.id = jsonExtract(this.bag, col(this.activeAlias, clean), '');
      if (this.withMM) this.mm.valueId = jsonExtract(this.bag, col(this.mmAlias, clean), '');
    }
    if (modifier === 'lower') {
      res.id = `LOWER(${res.id})`;
      if (this.withMM) this.mm.valueId = `LOWER(${this.mm.valueId})`;
    }
    return res;
  }
}
