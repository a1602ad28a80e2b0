// What PocketBase's RequestInfo holds for a read request, rebuilt from the raw Node request the way Go's
// net/url and PocketBase do it (first value of each query parameter and header, header names snake_cased),
// plus the few Go conversions (strconv.Atoi/ParseBool/ParseFloat, cast.ToString) the read path relies on.
import type { IncomingMessage } from 'node:http';
import type { PbCollection } from '../../replica/schema.js';
import { Unsupported } from './errors.js';

/**
 * Who is asking. `record` is the auth record as PocketBase exports it to itself (every field but password
 * and tokenKey). For an auth collection the replica does not hold (`_superusers`, unless system
 * collections are replicated), `collection` is its definition and `version` changes whenever the record
 * or the definition does; `partial` marks a record of which only the ids are known.
 */
export type Requester =
  | { kind: 'anonymous' }
  | { kind: 'superuser'; record: Record<string, unknown>; collection?: PbCollection; version?: string; partial?: boolean }
  | { kind: 'record'; collectionId: string; record: Record<string, unknown>; collection?: PbCollection; version?: string; partial?: boolean };

/** Who is asking, as a short key: the same caller gets the same key (cache and snapshot owners). */
export function requesterKey(r: Requester): string {
  if (r.kind === 'anonymous') return 'a';
  const v = r.version ? `:${r.version}` : r.partial ? ':?' : '';
  return r.kind === 'superuser' ? `s:${String(r.record.id)}${v}` : `r:${r.collectionId}:${String(r.record.id)}${v}`;
}

export interface RequestInfo {
  /** "default" for list/view, "expand" while fetching expanded relations. */
  context: string;
  method: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  requester: Requester;
}

export function isSuperuser(info: RequestInfo): boolean {
  return info.requester.kind === 'superuser';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** url.QueryUnescape; null when Go would reject the escape. Invalid UTF-8 results are unsupported. */
function queryUnescape(s: string): string | null {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const h = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return null;
      bytes.push(parseInt(h, 16));
      i += 2;
    } else if (c === 43 /* + */) {
      bytes.push(32);
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      // Node's parser hands raw non-ASCII URL bytes over as latin1 characters.
      for (const b of Buffer.from(s[i], c < 256 ? 'latin1' : 'utf8')) bytes.push(b);
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new Unsupported('query_encoding');
  }
}

/** url.ParseQuery as used by URL.Query(): pairs with ';' or bad escapes are dropped; all values kept. */
export function parseGoQuery(raw: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of raw.split('&')) {
    if (part === '' || part.indexOf(';') !== -1) continue;
    const eq = part.indexOf('=');
    const k = queryUnescape(eq === -1 ? part : part.slice(0, eq));
    const v = queryUnescape(eq === -1 ? '' : part.slice(eq + 1));
    if (k === null || v === null) continue;
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  }
  return out;
}

export function firstValues(q: Map<string, string[]>): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of q) out[k] = v[0];
  return out;
}

/** inflector.Snakecase of Go's canonical header key: "X-Api-Key" -> "x_api_key". */
export function headerKey(name: string): string {
  return name.toLowerCase().split(/[^A-Za-z0-9]+/).filter(Boolean).join('_');
}

/** The first value of every request header, keyed like PocketBase (Host is not a header in Go). */
export function requestHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  const distinct = req.headersDistinct;
  for (const name of Object.keys(distinct)) {
    if (name === 'host') continue;
    const v = distinct[name];
    if (v && v.length > 0) out[headerKey(name)] = v[0];
  }
  return out;
}

/** strconv.Atoi; null on error (PocketBase then answers 400). */
export function goAtoi(s: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const n = BigInt(s);
  if (n > 9223372036854775807n || n < -9223372036854775808n) return null;
  // Page numbers past 2^53 cannot be represented exactly; nothing real asks for them.
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < -BigInt(Number.MAX_SAFE_INTEGER)) throw new Unsupported('huge_number');
  return Number(n);
}

/** strconv's underscoreOK: underscores only between digits (or after a base prefix). */
export function underscoreOK(s: string): boolean {
  let saw = '^';
  let i = 0;
  if (s[0] === '-' || s[0] === '+') s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'box'.includes(s[1].toLowerCase())) {
    i = 2;
    saw = '0';
    hex = s[1].toLowerCase() === 'x';
  }
  for (; i < s.length; i++) {
    if ((s[i] >= '0' && s[i] <= '9') || (hex && /^[0-9a-fA-F]$/.test(s[i]))) { saw = '0'; continue; }
    if (s[i] === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

/** strconv.ParseBool; null on error. */
export function goParseBool(s: string): boolean | null {
  switch (s) {
    case '1': case 't': case 'T': case 'TRUE': case 'true': case 'True': return true;
    case '0': case 'f': case 'F': case 'FALSE': case 'false': case 'False': return false;
    default: return null;
  }
}

/** strconv.ParseFloat(s, 64) for the decimal forms; hex floats, inf and nan are left to PocketBase. */
export function goParseFloat(s: string): number | null {
  if (/^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(s)) {
    const n = Number(s);
    if (!Number.isFinite(n)) throw new Unsupported('float_range');
    return n;
  }
  if (/^[+-]?(inf|infinity|nan)$/i.test(s) || /^[+-]?0[xX]/.test(s) || s.includes('_')) throw new Unsupported('float_syntax');
  return null;
}

/** strconv.FormatFloat(f, 'f', -1, 64), which cast.ToString uses for floats. */
export function goFormatFloatF(n: number): string {
  if (Object.is(n, -0)) return '-0';
  const s = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, d, frac = '', expStr] = m;
  const exp = Number(expStr);
  const digits = d + frac;
  if (exp >= 0) return sign + digits.padEnd(exp + 1, '0');
  return sign + '0.' + '0'.repeat(-exp - 1) + digits;
}
