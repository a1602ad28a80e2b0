// The `fields` parameter (tools/picker): comma-separated paths with dots, `*` per level and the
// `:excerpt(max, withEllipsis)` modifier, tokenized the way tools/tokenizer does (quotes and
// parentheses keep separators). Applied to each item of a list or to the single viewed record.
import { excerpt } from './excerpt.js';
import { Unsupported } from './errors.js';

export type Modifier = { max: number; ellipsis: boolean } | null;

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

/** cast.ToInt of a string: strconv.ParseInt(s, 0, 0) after trimming a zero decimal part; 0 on error. */
function castToInt(s: string): number {
  let t = s;
  const m = /^(.*)\.0+$/.exec(t);
  if (m && m[1] !== '') t = m[1];
  const neg = t.startsWith('-');
  const body = t.replace(/^[+-]/, '');
  let n: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(body)) n = parseInt(body.slice(2), 16);
  else if (/^0[bB][01]+$/.test(body)) n = parseInt(body.slice(2), 2);
  else if (/^0[oO][0-7]+$/.test(body)) n = parseInt(body.slice(2), 8);
  else if (/^0[0-7]+$/.test(body)) n = parseInt(body.slice(1), 8);
  else if (/^[0-9]+$/.test(body)) n = Number(body);
  else if (body.includes('_')) throw new Unsupported('fields_int_syntax');
  else return 0;
  if (!Number.isSafeInteger(n)) throw new Unsupported('fields_int_range');
  return neg ? -n : n;
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
    if (max <= 0) throw new FieldsError('excerpt max');
    const ellipsis = args.length > 1 && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(args[1]);
    out.set(t.slice(0, colon), { max, ellipsis });
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
      if (whole.m) data[k] = excerpt(data[k], whole.m.max, whole.m.ellipsis);
      continue;
    }
    pick(data[k], nested);
  }
}
