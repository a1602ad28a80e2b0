// PocketBase's value coercion (Go's spf13/cast and tools/list) for JSON-decoded values, plus Go's
// number formatting for error messages. Every helper returns UNSURE where Go's result is not certain
// to be what we compute: the caller then leaves the decision to PocketBase.
export const UNSURE = Symbol('unsure');
export type Maybe<T> = T | typeof UNSURE;

/** Go's strconv.FormatFloat(f, 'f', -1, 64), for the range where JS prints the same digits. */
export function goFloatF(n: number): Maybe<string> {
  if (!Number.isFinite(n)) return UNSURE;
  const a = Math.abs(n);
  if (a !== 0 && (a < 1e-6 || a >= 1e21)) return UNSURE;
  return Object.is(n, -0) ? '0' : String(n);
}

/** Go's fmt %v of a float64 (what text/template prints in error messages): %g with the shortest
 * digits, exponent form when the exponent is < -4 or >= 6 (measured: PocketBase prints 1e+06). */
export function goFloatV(n: number): string {
  if (n === 0 || !Number.isFinite(n)) return String(n);
  const e = n.toExponential();
  const exp = Number(e.slice(e.indexOf('e') + 1));
  if (exp < -4 || exp >= 6) return e.replace(/e([+-])(\d)$/, 'e$10$2');
  return String(n);
}

/** cast.ToString for the JSON types. */
export function toStr(v: unknown): Maybe<string> {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return goFloatF(v);
  return UNSURE;
}

const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** cast.ToFloat64 for the JSON types. */
export function toFloat(v: unknown): Maybe<number> {
  if (v === null || v === undefined || v === false) return 0;
  if (v === true) return 1;
  if (typeof v === 'number') return Number.isFinite(v) ? v : UNSURE;
  if (typeof v === 'string') {
    if (v === '') return 0;
    if (!PLAIN_NUMBER.test(v)) return UNSURE;
    const n = Number(v);
    return Number.isFinite(n) ? n : UNSURE;
  }
  return UNSURE;
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False', '']);

/** cast.ToBool for the JSON types. */
export function toBool(v: unknown): Maybe<boolean> {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return TRUE.has(v) ? true : FALSE.has(v) ? false : UNSURE;
  return UNSURE;
}

/** list.ToUniqueStringSlice: a string (maybe a JSON array), or an array of scalars; zero values and duplicates dropped. */
export function toUniqueStrings(v: unknown): Maybe<string[]> {
  let out: string[] = [];
  if (v === null || v === undefined) out = [];
  else if (typeof v === 'string') {
    if (v === '') out = [];
    else if (v.includes('[')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(v);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined) out = [v];
      else if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) out = parsed as string[];
      else if (parsed === null) out = [];
      else return UNSURE;
    } else out = [v];
  } else if (Array.isArray(v)) {
    for (const item of v) {
      const s = toStr(item);
      if (s === UNSURE || (typeof item !== 'string' && typeof item !== 'number')) return UNSURE;
      out.push(s);
    }
  } else if (typeof v === 'number' || typeof v === 'boolean') {
    return UNSURE;
  } else return UNSURE;
  const seen = new Set<string>();
  return out.filter((s) => s !== '' && !seen.has(s) && (seen.add(s), true));
}

/** Length in Unicode code points (Go's len([]rune(s))). */
export function runeLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Byte size of Go's json.Marshal output for a JSON-decoded value (HTML characters escaped). */
export function goJsonSize(v: unknown): Maybe<number> {
  let text: string;
  try {
    text = JSON.stringify(sortDeep(v));
  } catch {
    return UNSURE;
  }
  if (text === undefined) return UNSURE;
  let extra = 0;
  for (const ch of text) {
    if (ch === '<' || ch === '>' || ch === '&') extra += 5;
    else if (ch === '\u2028' || ch === '\u2029') extra += 3;
  }
  return Buffer.byteLength(text, 'utf8') + extra;
}

function sortDeep(v: unknown, depth = 0): unknown {
  if (depth > 200) throw new Error('too deep');
  if (Array.isArray(v)) return v.map((x) => sortDeep(x, depth + 1));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = Object.create(null);
    for (const k of Object.keys(v).sort()) Object.defineProperty(out, k, { value: sortDeep((v as Record<string, unknown>)[k], depth + 1), enumerable: true });
    return out;
  }
  return v;
}
