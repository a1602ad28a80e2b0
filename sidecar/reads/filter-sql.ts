// PocketBase's tools/search/filter.go over our parsed tree: each comparison's operands are resolved by the
// FieldResolver and combined the way PocketBase does (NULL/empty-string normalisation, LIKE wrapping, the
// "all must match" NOT EXISTS subqueries of multi-value paths, functions and date macros).
import { parseFilter, type CmpOp, type FilterNode, type Operand } from '../filter/index.js';
import { ResolveError } from './errors.js';
import { goFormatFloatF } from './request.js';
import { NullFallback, type FieldResolver, type MultiMatch, type Resolved } from './resolver.js';
import { col, q, type ParamBag } from './sql.js';

const parsed = new Map<string, FilterNode>();

/** Rules are admin-written and reused constantly: parse each text once (bounded cache). */
export function parseRule(text: string): FilterNode {
  let node = parsed.get(text);
  if (!node) {
    node = parseFilter(text, { maxLength: Infinity });
    if (parsed.size > 2000) parsed.clear();
    parsed.set(text, node);
  }
  return node;
}

export function buildFilter(node: FilterNode, r: FieldResolver): string {
  switch (node.kind) {
    case 'and': case 'or': {
      const items = node.items.map((n) => buildFilter(n, r));
      if (node.kind === 'or') (r.ctx.orGroups ??= []).push(items);
      return '(' + items.join(node.kind === 'and' ? ' AND ' : ' OR ') + ')';
    }
    case 'cmp':
      return buildResolversExpr(r.ctx.bag, resolveOperand(node.left, r), node.op, resolveOperand(node.right, r));
  }
}

function literal(id: string): Resolved {
  return { id, params: new Map(), nullFallback: NullFallback.Auto };
}

function param(bag: ParamBag, value: unknown): Resolved {
  const params = new Map();
  const name = bag.add(value, params);
  return { id: `@${name}`, params, nullFallback: NullFallback.Auto };
}

function resolveOperand(op: Operand, r: FieldResolver): Resolved {
  const bag = r.ctx.bag;
  switch (op.kind) {
    case 'identifier': return r.resolve(op.name);
    case 'bool': case 'null': {
      // A field of that name wins; otherwise the literal (normalizedIdentifiers). A bare word that names
      // no field of the base collection is the literal without asking the resolver (which would throw).
      if (!/[.:@]/.test(op.raw) && !r.base.fields.has(op.raw)) return literal(op.kind === 'null' ? 'NULL' : op.value ? '1' : '0');
      try {
        const res = r.resolve(op.raw);
        if (res.id !== '') return res;
      } catch (e) {
        if (!(e instanceof ResolveError)) throw e;
      }
      return literal(op.kind === 'null' ? 'NULL' : op.value ? '1' : '0');
    }
    case 'macro': return param(bag, macroValue(op.name));
    case 'string': return param(bag, op.value);
    case 'number': return param(bag, op.value);
    case 'call': return op.name === 'geoDistance' ? geoDistance(op.args, r) : strftime(op.args, r);
  }
}

function mergeParams(...rs: Resolved[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const x of rs) for (const [k, v] of x.params) out.set(k, v);
  return out;
}

function geoDistance(args: Operand[], r: FieldResolver): Resolved {
  const [lonA, latA, lonB, latB] = args.map((a) => resolveOperand(a, r));
  const id = `(6371 * acos(cos(radians(${latA.id})) * cos(radians(${latB.id})) * cos(radians(${lonB.id}) - radians(${lonA.id})) + sin(radians(${latA.id})) * sin(radians(${latB.id}))))`;
  return { id, params: mergeParams(lonA, latA, lonB, latB), nullFallback: NullFallback.Disabled };
}

function strftime(args: Operand[], r: FieldResolver): Resolved {
  const format = resolveOperand(args[0], r);
  if (args.length === 1) return { ...format, id: `strftime(${format.id})`, nullFallback: NullFallback.Enforced };
  const time = resolveOperand(args[1], r);
  const mods = args.slice(2).map((a) => resolveOperand(a, r));
  const ids = [format.id, time.id, ...mods.map((m) => m.id)];
  const res: Resolved = { id: `strftime(${ids.join(',')})`, params: mergeParams(format, time, ...mods), nullFallback: NullFallback.Enforced };
  if (time.mm) {
    ids[1] = time.mm.valueId;
    res.mm = time.mm;
    res.mm.valueId = `strftime(${ids.join(',')})`;
  }
  return res;
}

const ANY_OPS = new Set(['?=', '?!=', '?>', '?>=', '?<', '?<=', '?~', '?!~']);

export function buildResolversExpr(bag: ParamBag, left: Resolved, op: CmpOp, right: Resolved): string {
  let expr: string;
  switch (op) {
    case '=': case '?=': expr = equalExpr(true, left, right); break;
    case '!=': case '?!=': expr = equalExpr(false, left, right); break;
    case '~': case '?~': expr = likeExpr(bag, left, right, 'LIKE'); break;
    case '!~': case '?!~': expr = likeExpr(bag, left, right, 'NOT LIKE'); break;
    default: expr = `${left.id} ${op.replace('?', '')} ${right.id}`;
  }
  if (!ANY_OPS.has(op)) {
    if (left.mm && right.mm) expr = `(${expr} AND ${manyVsMany(bag, left, right, op)})`;
    else if (left.mm) expr = `(${expr} AND ${manyVsOne(bag, left.mm, left.nullFallback, right, op, false)})`;
    else if (right.mm) expr = `(${expr} AND ${manyVsOne(bag, right.mm, right.nullFallback, left, op, true)})`;
  }
  if (left.afterBuild) expr = left.afterBuild(expr);
  if (right.afterBuild) expr = right.afterBuild(expr);
  return expr;
}

function likeExpr(bag: ParamBag, left: Resolved, right: Resolved, like: string): string {
  if (right.params.size === 0) return `${left.id} ${like} ('%' || ${right.id} || '%') ESCAPE '\\'`;
  for (const [name, value] of right.params) bag.set(name, wrapLike(castToString(value)));
  return `${left.id} ${like} ${right.id} ESCAPE '\\'`;
}

/** cast.ToString for the values a parameter can hold. */
function castToString(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return goFormatFloatF(v);
  return String(v);
}

/** wrapLikeParams: "%v%" with \, % and _ escaped, unless the value already has an unescaped '%'. */
function wrapLike(s: string): string {
  if (containsUnescaped(s, '%')) return s;
  return '%' + escapeUnescaped(s) + '%';
}

function containsUnescaped(s: string, ch: string): boolean {
  let prev = '';
  for (const c of s) {
    if (c === ch && prev !== '\\') return true;
    prev = c === '\\' && prev === '\\' ? '\0' : c;
  }
  return false;
}

/** escapeUnescapedChars(s, '\\', '%', '_'): walks backwards like PocketBase (its quirks included). */
function escapeUnescaped(s: string): string {
  const rs = Array.from(s);
  const out: string[] = [];
  let match = false;
  for (let i = rs.length - 1; i >= 0; i--) {
    if (match) {
      if (rs[i] !== '\\') out.push('\\');
      match = false;
    } else if (rs[i] === '\\' || rs[i] === '%' || rs[i] === '_') {
      match = true;
    }
    out.push(rs[i]);
    if (i === 0 && match) out.push('\\');
  }
  return out.reverse().join('');
}

function isEmptyId(r: Resolved): boolean {
  switch (r.id.toLowerCase()) {
    case '': case 'null': case "''": case '""': case '``': return true;
    default: return false;
  }
}

function hasEmptyParam(r: Resolved): boolean {
  for (const v of r.params.values()) if (v === null || v === undefined || v === '') return true;
  return false;
}

function isKnownNonEmpty(r: Resolved): boolean {
  if (r.nullFallback === NullFallback.Enforced) return false;
  switch (r.id.toLowerCase()) {
    case '1': case '0': case 'false': case 'true': return true;
  }
  return r.params.size > 0 && !hasEmptyParam(r) && !isEmptyId(r);
}

/** resolveEqualExpr: `a = ''` also matches NULL, `!=` uses IS NOT, COALESCE only when nothing is known. */
function equalExpr(equal: boolean, left: Resolved, right: Resolved): string {
  const eq = equal ? '=' : 'IS NOT';
  const nullEq = equal ? 'IS' : 'IS NOT';
  const concat = equal ? 'OR' : 'AND';
  const nullExpr = equal ? 'IS NULL' : 'IS NOT NULL';
  if (left.nullFallback === NullFallback.Disabled || right.nullFallback === NullFallback.Disabled) {
    return `${left.id} ${nullEq} ${right.id}`;
  }
  const leftEmpty = isEmptyId(left) || (left.nullFallback === NullFallback.Auto && left.params.size === 1 && hasEmptyParam(left));
  const rightEmpty = isEmptyId(right) || (right.nullFallback === NullFallback.Auto && right.params.size === 1 && hasEmptyParam(right));
  if (leftEmpty && rightEmpty) return `'' ${eq} ''`;
  if (isKnownNonEmpty(left) || isKnownNonEmpty(right)) {
    return `${leftEmpty ? "''" : left.id} ${eq} ${rightEmpty ? "''" : right.id}`;
  }
  if (leftEmpty) return `('' ${eq} ${right.id} ${concat} ${right.id} ${nullExpr})`;
  if (rightEmpty) return `(${left.id} ${eq} '' ${concat} ${left.id} ${nullExpr})`;
  return `COALESCE(${left.id}, '') ${eq} COALESCE(${right.id}, '')`;
}

function subquery(m: MultiMatch): string {
  let joins = '';
  for (const j of m.joins) joins += ` LEFT JOIN ${j.table} ${q(j.alias)}${j.on ? ` ON ${j.on}` : ''}`;
  return `SELECT ${m.valueId} as ${q('multiMatchValue')} FROM ${m.fromTable} ${q(m.fromAlias)}${joins} WHERE ${col(m.fromAlias, 'id')} = ${col(m.targetAlias, 'id')}`;
}

const not = (sql: string) => `NOT (${sql})`;

function manyVsOne(bag: ParamBag, mm: MultiMatch, nf: NullFallback, other: Resolved, op: CmpOp, inverse: boolean): string {
  const alias = `__sm${bag.suffix().slice(1)}`;
  const r1: Resolved = { id: col(alias, 'multiMatchValue'), params: new Map(), nullFallback: nf, afterBuild: not };
  const r2: Resolved = { id: other.id, params: other.params, nullFallback: NullFallback.Auto };
  const where = inverse ? buildResolversExpr(bag, r2, op, r1) : buildResolversExpr(bag, r1, op, r2);
  return `NOT EXISTS (SELECT 1 FROM (${subquery(mm)}) ${q(alias)} WHERE ${where})`;
}

function manyVsMany(bag: ParamBag, left: Resolved, right: Resolved, op: CmpOp): string {
  const n = bag.suffix().slice(1);
  const l = `__ml${n}`;
  const r = `__mr${n}`;
  const where = buildResolversExpr(bag,
    { id: col(l, 'multiMatchValue'), params: new Map(), nullFallback: left.nullFallback },
    op,
    { id: col(r, 'multiMatchValue'), params: new Map(), nullFallback: right.nullFallback, afterBuild: not });
  return `NOT EXISTS (SELECT 1 FROM (${subquery(left.mm!)}) ${q(l)} LEFT JOIN (${subquery(right.mm!)}) ${q(r)} WHERE ${where})`;
}

/** tools/search/identifier_macros.go, evaluated now in UTC; dates in PocketBase's text form. */
function macroValue(name: string): unknown {
  const now = new Date();
  const y = now.getUTCFullYear();
  const mo = now.getUTCMonth();
  const d = now.getUTCDate();
  const fmt = (t: Date) => t.toISOString().replace('T', ' ');
  const at = (yy: number, mm: number, dd: number, h: number, mi: number, s: number, ms: number) => {
    const t = new Date(0);
    t.setUTCFullYear(yy, mm, dd);
    t.setUTCHours(h, mi, s, ms);
    return t;
  };
  switch (name) {
    case 'now': return fmt(now);
    case 'yesterday': return fmt(at(y, mo, d - 1, now.getUTCHours(), now.getUTCMinutes(), now.getUTCSeconds(), now.getUTCMilliseconds()));
    case 'tomorrow': return fmt(at(y, mo, d + 1, now.getUTCHours(), now.getUTCMinutes(), now.getUTCSeconds(), now.getUTCMilliseconds()));
    case 'second': return BigInt(now.getUTCSeconds());
    case 'minute': return BigInt(now.getUTCMinutes());
    case 'hour': return BigInt(now.getUTCHours());
    case 'day': return BigInt(d);
    case 'month': return BigInt(mo + 1);
    case 'weekday': return BigInt(now.getUTCDay());
    case 'year': return BigInt(y);
    case 'todayStart': return fmt(at(y, mo, d, 0, 0, 0, 0));
    case 'todayEnd': return fmt(at(y, mo, d, 23, 59, 59, 999));
    case 'monthStart': return fmt(at(y, mo, 1, 0, 0, 0, 0));
    case 'monthEnd': return fmt(at(y, mo + 1, 0, 23, 59, 59, 999));
    case 'yearStart': return fmt(at(y, 0, 1, 0, 0, 0, 0));
    case 'yearEnd': return fmt(at(y, 11, 31, 23, 59, 59, 999));
  }
  throw new ResolveError(`unknown macro ${name}`);
}
