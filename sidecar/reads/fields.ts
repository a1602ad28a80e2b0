// The `fields` parameter (tools/picker): comma-separated paths with dots, `*` per level and the
// `:excerpt(max, withEllipsis)` modifier, tokenized the way tools/tokenizer does (quotes and
// parentheses keep separators). Applied to each item of a list or to the single viewed record.
import { excerpt } from './excerpt.js';
import { underscoreOK } from './request.js';

/**
 * `:excerpt(max, withEllipsis)`. `overflow`: max is so large that PocketBase's `max+2` wraps around
 * (int64), which makes every string excerpt empty.
 */
export type Modifier = { max: number; ellipsis: boolean; overflow: boolean } | null;

const WS = '\t\n\v\f\r \u0085\u00a0';

/** tokenizer.ScanAll with the given separators; null for unbalanced quotes/parentheses. */
function tokenize(s: string, seps: string, ignoreParens: boolean): string[] | null {
  const cut = [...WS].filter((c) => !seps.includes(c)).join('');
  const trim = (t: string) => {
    let a = 0;
    let b = t.length;
    while (a < b && cut.includes(t[a])) a++;
    while (b > a && cut.includes(t[b - 1])) b--;
    return t.slice(a, b);
  };
  const chars = Array.from(s);
  const out: string[] = [];
  let i = 0;
  while (i < chars.length) {
    let buf = '';
    let parens = 0;
    let quote = '';
    let prev = '';
    for (; i < chars.length; i++) {
      const ch = chars[i];
      if (prev !== '\\') {
        if (!ignoreParens && ch === '(' && quote === '') parens++;
        else if (!ignoreParens && ch === ')' && parens > 0 && quote === '') parens--;
        else if (ch === "'" || ch === '"' || ch === '`') {
          if (quote === ch) quote = '';
          else if (quote === '') quote = ch;
        }
      }
      if (seps.includes(ch) && parens === 0 && quote === '') { i++; break; }
      prev = ch;
      buf += ch;
    }
    if (parens > 0 || quote !== '') return null;
    const t = trim(buf);
    if (t !== '') out.push(t);
  }
  return out;
}

/**
 * cast.ToInt of a string (spf13/cast 1.9+): a plain decimal keeps its integer part ("1.5" -> "1",
 * ".5" -> "0"), then strconv.ParseInt(s, 0, 64) (sign, 0b/0o/0x/0 prefixes, Go's underscore rules);
 * any error gives 0.
 */
export function castToInt(s: string): bigint {
  if (s === '') return 0n;
  let t = s;
  if (t.includes('.')) {
    const m = /^([-+]?[0-9]*)(\.[0-9]*)?$/.exec(t);
    if (m) t = m[1] === '' ? '0' : m[1] === '-' || m[1] === '+' ? m[1] + '0' : m[1];
  }
  return goParseInt0(t) ?? 0n;
}

const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;
/** Go's lower(c) on one byte: c | 0x20. */
const lowerByte = (c: string) => String.fromCharCode(c.charCodeAt(0) | 0x20);

/** strconv.ParseInt(s, 0, 64); null on a syntax or range error. */
function goParseInt0(s0: string): bigint | null {
  if (s0 === '') return null;
  let s = s0;
  let neg = false;
  if (s[0] === '+') s = s.slice(1);
  else if (s[0] === '-') { neg = true; s = s.slice(1); }
  const u = goParseUint0(s);
  if (u === null) return null;
  if (!neg && u > INT64_MAX) return null;
  if (neg && u > INT64_MAX + 1n) return null;
  return neg ? -u : u;
}

/** strconv.ParseUint(s, 0, 64). */
function goParseUint0(s0: string): bigint | null {
  if (s0 === '') return null;
  let s = s0;
  let base = 10n;
  if (s[0] === '0') {
    const p = s.length >= 3 ? lowerByte(s[1]) : '';
    if (p === 'b') { base = 2n; s = s.slice(2); }
    else if (p === 'o') { base = 8n; s = s.slice(2); }
    else if (p === 'x') { base = 16n; s = s.slice(2); }
    else { base = 8n; s = s.slice(1); }
  }
  let n = 0n;
  let underscores = false;
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    let d: number;
    if (ch === '_') { underscores = true; continue; }
    if (c >= 48 && c <= 57) d = c - 48;
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) d = (c | 0x20) - 87;
    else return null;
    if (BigInt(d) >= base) return null;
    n = n * base + BigInt(d);
    if (n > UINT64_MAX) return null;
  }
  if (underscores && !underscoreOK(s0)) return null;
  return n;
}


/** Parsed fields; throws FieldsError where PocketBase's picker fails. */
export class FieldsError extends Error {}

export function parseFields(raw: string): Map<string, Modifier> {
  const fields = tokenize(raw, ',', false);
  if (!fields) throw new FieldsError('unbalanced fields');
  const out = new Map<string, Modifier>();
  for (const f of fields) {
    const t = f.trim();
    const colon = t.indexOf(':');
    if (colon === -1) { out.set(t, null); continue; }
    const parts = tokenize(t.slice(colon + 1), '(), ', true);
    if (!parts) throw new FieldsError('unbalanced modifier');
    if (parts.length === 0 || parts[0] !== 'excerpt') throw new FieldsError('unknown modifier');
    const args = parts.slice(1);
    if (args.length === 0 || args.length > 2) throw new FieldsError('excerpt arguments');
    const max = castToInt(args[0]);
    if (max <= 0n) throw new FieldsError('excerpt max');
    const ellipsis = args.length > 1 && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(args[1]);
    // Beyond 2^53 no text is longer than max; at 2^63-2 and up, PocketBase's max+2 overflows.
    out.set(t.slice(0, colon), { max: Number(max > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : max), ellipsis, overflow: max > INT64_MAX - 2n });
  }
  return out;
}

/** pickParsedFields over a decoded value (maps and arrays of maps). */
export function pick(data: unknown, fields: Map<string, Modifier>): void {
  if (Array.isArray(data)) {
    if (data.length === 0 || !isMap(data[0])) return;
    for (const item of data) pickMap(item as Record<string, unknown>, fields);
  } else if (isMap(data)) {
    pickMap(data, fields);
  }
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function pickMap(data: Record<string, unknown>, fields: Map<string, Modifier>): void {
  if (fields.size === 0) return;
  if (fields.has('*')) {
    const m = fields.get('*')!;
    for (const k of Object.keys(data)) {
      let exists = false;
      for (const f of fields.keys()) if ((f + '.').startsWith(k + '.')) { exists = true; break; }
      if (!exists) fields.set(k, m);
    }
  }
  for (const k of Object.keys(data)) {
    const matching = new Map<string, Modifier>();
    for (const [f, m] of fields) if ((f + '.').startsWith(k + '.')) matching.set(f, m);
    if (matching.size === 0) { delete data[k]; continue; }
    // A field naming the key itself keeps it whole (PocketBase's map order makes mixed cases undefined).
    let whole: { m: Modifier } | null = null;
    const nested = new Map<string, Modifier>();
    for (const [f, m] of matching) {
      const remains = f === k ? '' : f.slice(k.length + 1);
      if (remains === '') { whole = { m }; break; }
      nested.set(remains, m);
    }
    if (whole) {
      if (whole.m) data[k] = whole.m.overflow ? (typeof data[k] === 'string' ? '' : data[k]) : excerpt(data[k], whole.m.max, whole.m.ellipsis);
      continue;
    }
    pick(data[k], nested);
  }
}
