// PocketBase's value coercion, exactly: Go's spf13/cast v1.10 (ToString, ToFloat64, ToBool), strconv's
// ParseFloat/FormatFloat/Quote, tools/list.ToUniqueStringSlice and encoding/json/v2's deterministic
// encoding, for the values a request body can hold (JSON-decoded or inferred from form fields). Each
// helper returns UNSURE only where Go's result is not certain to be what we compute; the caller then
// leaves the decision to PocketBase.
import { goFormatFloatF, underscoreOK } from '../reads/request.js';

export const UNSURE = Symbol('unsure');
export type Maybe<T> = T | typeof UNSURE;

/** strconv.FormatFloat(f, 'f', -1, 64): the shortest digits that round-trip, never an exponent. */
export function goFloatF(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return goFormatFloatF(n);
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

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);


/** Case-insensitive length of the common prefix of s and an ASCII word. */
function prefixLenIgnoreCase(s: string, word: string): number {
  let n = 0;
  while (n < word.length && n < s.length && s[n].toLowerCase() === word[n]) n++;
  return n;
}

/**
 * strconv.ParseFloat(s, 64): the value, `null` for a syntax or range error (cast then gives 0), UNSURE
 * where we do not reproduce Go's rounding (hexadecimal values outside the normal range).
 */
export function goParseFloat(s: string): Maybe<number | null> {
  if (s === '') return null;
  // special values: [+-]inf, [+-]infinity, nan (case-insensitive, the whole string)
  {
    let i = 0;
    let sign = 1;
    if (s[0] === '+' || s[0] === '-') {
      if (s[0] === '-') sign = -1;
      i = 1;
    }
    const rest = s.slice(i);
    const c = rest[0]?.toLowerCase();
    if (c === 'i') {
      let n = prefixLenIgnoreCase(rest, 'infinity');
      if (n > 3 && n < 8) n = 3;
      if ((n === 3 || n === 8) && n === rest.length) return sign * Infinity;
      return null;
    }
    if (c === 'n' && i === 0) return prefixLenIgnoreCase(rest, 'nan') === 3 && rest.length === 3 ? NaN : null;
  }
  let i = 0;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') {
    neg = s[i] === '-';
    i++;
  }
  let underscores = false;
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X')) {
    // hexadecimal mantissa, mandatory binary exponent
    i += 2;
    let mant = 0n;
    let digits = 0;
    let fracDigits = 0;
    let sawDot = false;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '_') { underscores = true; continue; }
      if (c === '.') {
        if (sawDot) break;
        sawDot = true;
        continue;
      }
      if (!isHex(c)) break;
      mant = mant * 16n + BigInt(parseInt(c, 16));
      digits++;
      if (sawDot) fracDigits++;
    }
    if (digits === 0) return null;
    if (s[i] !== 'p' && s[i] !== 'P') return null;
    i++;
    let esign = 1;
    if (s[i] === '+' || s[i] === '-') {
      if (s[i] === '-') esign = -1;
      i++;
    }
    if (!isDigit(s[i])) return null;
    let exp = 0;
    for (; i < s.length && (isDigit(s[i]) || s[i] === '_'); i++) {
      if (s[i] === '_') { underscores = true; continue; }
      if (exp < 100000) exp = exp * 10 + Number(s[i]);
    }
    if (i !== s.length) return null;
    if (underscores && !underscoreOK(s)) return null;
    const e2 = esign * exp - 4 * fracDigits;
    if (mant === 0n) return neg ? -0 : 0;
    const bits = mant.toString(2).length;
    // exact when the mantissa fits 53 bits and the result stays a normal double
    if (bits > 53 || bits + e2 > 1024 || bits + e2 < -1021) return UNSURE;
    const v = Number(mant) * 2 ** e2;
    return neg ? -v : v;
  }
  const start = i;
  let sawDigits = false;
  let sawDot = false;
  for (; i < s.length; i++) {
    const c = s[i];
    if (c === '_') { underscores = true; continue; }
    if (c === '.') {
      if (sawDot) break;
      sawDot = true;
      continue;
    }
    if (!isDigit(c)) break;
    sawDigits = true;
  }
  if (!sawDigits) return null;
  if (s[i] === 'e' || s[i] === 'E') {
    i++;
    if (s[i] === '+' || s[i] === '-') i++;
    if (!isDigit(s[i])) return null;
    for (; i < s.length && (isDigit(s[i]) || s[i] === '_'); i++) if (s[i] === '_') underscores = true;
  }
  if (i !== s.length) return null;
  if (underscores && !underscoreOK(s)) return null;
  const v = Number(s.slice(start).replace(/_/g, ''));
  if (!Number.isFinite(v)) return null; // ErrRange: cast gives 0
  return neg ? -v : v;
}

/** cast.ToString for the values a body holds (slices and maps fail to cast: ""). */
export function toStr(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return goFloatF(v);
  return '';
}

/** cast.ToFloat64 for the values a body holds. */
export function toFloat(v: unknown): Maybe<number> {
  if (v === null || v === undefined || v === false) return 0;
  if (v === true) return 1;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    if (v === '') return 0;
    const n = goParseFloat(v);
    if (n === UNSURE) return UNSURE;
    return n === null ? 0 : n;
  }
  return 0;
}

/** strconv.ParseBool, as cast.ToBool uses it (an error is false). */
const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

/** cast.ToBool for the values a body holds. */
export function toBool(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return TRUE.has(v);
  return false;
}

const JSON_SPACE = /^[ \t\n\r]*/;

/**
 * list.ToUniqueStringSlice: a string (a JSON array of strings when it parses as one, else the string
 * itself), a slice (each item cast to a string; one that cannot be cast empties the whole slice) or a
 * scalar; then empty strings and duplicates dropped, first occurrence kept.
 */
export function toUniqueStrings(v: unknown): Maybe<string[]> {
  let out: string[] = [];
  if (v === null || v === undefined) out = [];
  else if (typeof v === 'string') {
    if (v === '') out = [];
    else if (v.includes('[')) {
      const parsed = parseStringArray(v);
      if (parsed === UNSURE) return UNSURE;
      out = parsed;
    } else out = [v];
  } else if (Array.isArray(v)) {
    for (const item of v) {
      if (item === null || item === undefined) out.push('');
      else if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean') out.push(toStr(item));
      else if (typeof item === 'object' && (item as { kind?: unknown }).kind === 'upload') return UNSURE;
      else {
        out = [];
        break;
      }
    }
  } else if (typeof v === 'number' || typeof v === 'boolean') {
    out = [toStr(v)];
  } else if (typeof v === 'object' && (v as { kind?: unknown }).kind === 'upload') {
    return UNSURE;
  } else out = [];
  const seen = new Set<string>();
  return out.filter((s) => s !== '' && !seen.has(s) && (seen.add(s), true));
}

/**
 * json.Unmarshal (v2) of a string into []string, then ToUniqueStringSlice's fallback: the items decode in
 * order (null is ""); at the first error decoding stops, the items so far are kept and the whole string
 * is added as one more item.
 */
function parseStringArray(text: string): Maybe<string[]> {
  const out: string[] = [];
  const fail = () => [...out, text];
  let i = text.length - text.replace(JSON_SPACE, '').length;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  if (text[i] !== '[') return [text];
  i++;
  ws();
  if (text[i] === ']') {
    i++;
    ws();
    return i === text.length ? out : fail();
  }
  for (;;) {
    ws();
    if (text.startsWith('null', i)) {
      out.push('');
      i += 4;
    } else if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') {
        if (text.charCodeAt(j) < 0x20) return fail();
        j += text[j] === '\\' ? 2 : 1;
      }
      if (j >= text.length) return fail();
      let s: string;
      try {
        s = JSON.parse(text.slice(i, j + 1)) as string;
      } catch {
        return fail();
      }
      if (hasLoneSurrogate(s)) return UNSURE;
      out.push(s);
      i = j + 1;
    } else return fail();
    ws();
    if (text[i] === ',') { i++; continue; }
    if (text[i] === ']') {
      i++;
      ws();
      return i === text.length ? out : fail();
    }
    return fail();
  }
}

/** inflector.Sentenize: trimmed (Go's spaces), first letter upper-cased, a period unless it ends in . ? ! */
export function sentenize(s: string): string {
  s = s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, '');
  if (s === '') return '';
  const first = String.fromCodePoint(s.codePointAt(0)!);
  s = first.toUpperCase() === first || first.toUpperCase().length !== first.length ? s : first.toUpperCase() + s.slice(first.length);
  return /[.?!]$/.test(s) ? s : s + '.';
}

/** Length in Unicode code points (Go's len([]rune(s))). */
export function runeLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Whether a string holds an unpaired surrogate (no Go string can: Go would have refused or replaced it). */
export function hasLoneSurrogate(s: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** Byte order of two strings' UTF-8 encodings (Go's string comparison). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * encoding/json/v2 Marshal with Deterministic(true) of a JSON-decoded value: object members sorted by
 * name, no HTML escaping, floats in ES6 form (-0 stays "-0"). UNSURE for what Go would refuse.
 */
export function goJson(v: unknown, depth = 0): Maybe<string> {
  if (depth > 1000) return UNSURE;
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return UNSURE;
    return Object.is(v, -0) ? '-0' : JSON.stringify(v);
  }
  if (typeof v === 'string') return hasLoneSurrogate(v) ? UNSURE : JSON.stringify(v);
  if (Array.isArray(v)) {
    const parts: string[] = [];
    for (const x of v) {
      const s = goJson(x, depth + 1);
      if (s === UNSURE) return UNSURE;
      parts.push(s);
    }
    return `[${parts.join(',')}]`;
  }
  if (typeof v === 'object') {
    if ((v as { kind?: unknown }).kind === 'upload') return UNSURE;
    const keys = Object.keys(v).sort(compareUtf8);
    const parts: string[] = [];
    for (const k of keys) {
      if (hasLoneSurrogate(k)) return UNSURE;
      const s = goJson((v as Record<string, unknown>)[k], depth + 1);
      if (s === UNSURE) return UNSURE;
      parts.push(`${JSON.stringify(k)}:${s}`);
    }
    return `{${parts.join(',')}}`;
  }
  return UNSURE;
}

/**
 * strconv.Quote (what JSONField stores for a string that is not JSON): the text, and whether that text
 * is valid JSON (Go's \a, \v, \x.. and \U........ escapes are not). UNSURE where Go's idea of a
 * printable character might differ from ours.
 */
export function goQuote(s: string): Maybe<{ text: string; json: boolean }> {
  let out = '"';
  let json = true;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp < 0x20 || cp === 0x7f) {
      const named: Record<number, string> = { 7: '\\a', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t', 11: '\\v' };
      const e = named[cp] ?? `\\x${cp.toString(16).padStart(2, '0')}`;
      if (cp === 7 || cp === 11 || !named[cp]) json = false;
      out += e;
    } else if (cp >= 0xd800 && cp <= 0xdfff) return UNSURE;
    else if (/^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) out += ch;
    else return UNSURE;
  }
  return { text: out + '"', json };
}
