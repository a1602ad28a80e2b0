// Form bodies (application/x-www-form-urlencoded) of record writes, read exactly as PocketBase reads
// them: router.Event.BindBody checks the Content-Type prefix (case-sensitive), then Go's
// http.Request.ParseForm parses the media type (mime.ParseMediaType), the body (url.ParseQuery, at most
// 10 MiB) and the URL's query (url.ParseQuery again) and merges the two, body values first; any error
// and PocketBase refuses the request before its rules or the record are looked at. The values then go
// through router.UnmarshalRequestData: inferred scalars, arrays for repeated keys, and each
// "@jsonPayload" value merged in as JSON.
//
// Everything works on bytes, as Go does: a header or URL string here holds one byte per character
// (latin1), and decoded keys and values become strings the way Go's JSON encoder shows them (each
// invalid UTF-8 byte as U+FFFD).
import { inferValue } from './multipart.js';
import { nullProto } from './hooks.js';

/** Keys in order of first appearance, each with its values in order. */
export type FormValues = Map<string, string[]>;

export interface QueryParse {
  values: FormValues;
  /** The error Go's url.ParseQuery reports (null: none); the values are what it kept despite it. */
  error: string | null;
}

export interface FormFailure { ok: false; status: number; message: string; detail: string }
export type FormRead = { ok: true; values: FormValues } | FormFailure;
export type FormBody = { ok: true; body: Record<string, unknown> } | FormFailure;

/** PocketBase's answer to a body (or URL query) Go could not parse. */
export const FORM_PARSE_FAILED = 'Something went wrong while processing your request.';
/** router.ErrUnsupportedContentType, as PocketBase words it on the wire. */
export const UNSUPPORTED_CONTENT_TYPE = 'Unsupported Content-Type.';

const FORM_TYPE = 'application/x-www-form-urlencoded';
/** net/url: the default of GODEBUG urlmaxqueryparams (a count of "&" plus one). */
const MAX_PARAMS = 10_000;
/** net/http: the largest form body ParseForm reads. */
const MAX_FORM_SIZE = 10 << 20;

const AMP = 0x26;
const SEMI = 0x3b;
const EQ = 0x3d;
const PCT = 0x25;
const PLUS = 0x2b;

/** Go's url.ParseQuery (on bytes). */
export function parseQuery(input: Uint8Array): QueryParse {
  const values: FormValues = new Map();
  let amps = 0;
  for (let i = 0; i < input.length; i++) if (input[i] === AMP) amps++;
  if (amps + 1 > MAX_PARAMS) return { values, error: 'number of URL query parameters exceeded limit' };
  let error: string | null = null;
  let pos = 0;
  while (pos < input.length) {
    let end = input.indexOf(AMP, pos);
    if (end < 0) end = input.length;
    const start = pos;
    pos = end + 1;
    // A semicolon error replaces any earlier error; an escape error is kept only if it is the first.
    if (indexIn(input, SEMI, start, end) >= 0) {
      error = 'invalid semicolon separator in query';
      continue;
    }
    if (start === end) continue;
    const eq = indexIn(input, EQ, start, end);
    const key = unescape(input, start, eq < 0 ? end : eq);
    if (typeof key !== 'string') {
      error ??= key.error;
      continue;
    }
    const value = eq < 0 ? '' : unescape(input, eq + 1, end);
    if (typeof value !== 'string') {
      error ??= value.error;
      continue;
    }
    const list = values.get(key);
    if (list) list.push(value);
    else values.set(key, [value]);
  }
  return { values, error };
}

function indexIn(bytes: Uint8Array, b: number, start: number, end: number): number {
  for (let i = start; i < end; i++) if (bytes[i] === b) return i;
  return -1;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function hexVal(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

/** url.QueryUnescape of bytes [start, end): "+" is a space, "%XX" a byte; a bad escape fails it. */
function unescape(bytes: Uint8Array, start: number, end: number): string | { error: string } {
  let simple = true;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === PCT) {
      simple = false;
      if (i + 2 >= end || !isHex(bytes[i + 1]) || !isHex(bytes[i + 2])) {
        const bad = Buffer.from(bytes.subarray(i, Math.min(i + 3, end))).toString('latin1');
        return { error: `invalid URL escape ${JSON.stringify(bad)}` };
      }
      i += 2;
    } else if (c === PLUS || c >= 0x80) {
      simple = false;
    }
  }
  if (simple) return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
  const out = Buffer.allocUnsafe(end - start);
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === PCT) {
      out[n++] = hexVal(bytes[i + 1]) * 16 + hexVal(bytes[i + 2]);
      i += 2;
    } else {
      out[n++] = c === PLUS ? 0x20 : c;
    }
  }
  return goString(out.subarray(0, n));
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes as a string the way Go's encoding/json writes them: each invalid UTF-8 byte is U+FFFD. */
export function goString(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch { /* invalid somewhere: decode rune by rune below */ }
  let s = '';
  for (let i = 0; i < bytes.length;) {
    const [cp, width] = decodeRune(bytes, i);
    s += String.fromCodePoint(cp);
    i += width;
  }
  return s;
}

/** unicode/utf8.DecodeRune: the rune at i and its width; (U+FFFD, 1) for an invalid byte. */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  const c0 = b[i];
  if (c0 < 0x80) return [c0, 1];
  const cont = (j: number, lo = 0x80, hi = 0xbf) => j < b.length && b[j] >= lo && b[j] <= hi;
  if (c0 >= 0xc2 && c0 <= 0xdf && cont(i + 1)) return [((c0 & 0x1f) << 6) | (b[i + 1] & 0x3f), 2];
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const lo = c0 === 0xe0 ? 0xa0 : 0x80;
    const hi = c0 === 0xed ? 0x9f : 0xbf;
    if (cont(i + 1, lo, hi) && cont(i + 2)) return [((c0 & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f), 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const lo = c0 === 0xf0 ? 0x90 : 0x80;
    const hi = c0 === 0xf4 ? 0x8f : 0xbf;
    if (cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3)) {
      return [((c0 & 0x07) << 18) | ((b[i + 1] & 0x3f) << 12) | ((b[i + 2] & 0x3f) << 6) | (b[i + 3] & 0x3f), 4];
    }
  }
  return [0xfffd, 1];
}

// --- mime.ParseMediaType ------------------------------------------------------------------------
// Only what decides PocketBase's answer is kept: the lower-cased media type, and whether Go fails.

/** Bytes (at i) of a rune unicode.IsSpace accepts, in UTF-8; 0 when there is none. */
function spaceAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return 1;
  if (c === 0xc2) return s.charCodeAt(i + 1) === 0x85 || s.charCodeAt(i + 1) === 0xa0 ? 2 : 0;
  if (c === 0xe1) return s.charCodeAt(i + 1) === 0x9a && s.charCodeAt(i + 2) === 0x80 ? 3 : 0; // U+1680
  if (c === 0xe2) {
    const c1 = s.charCodeAt(i + 1);
    const c2 = s.charCodeAt(i + 2);
    if (c1 === 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf)) return 3; // U+2000-200A, 2028, 2029, 202F
    if (c1 === 0x81 && c2 === 0x9f) return 3; // U+205F
    return 0;
  }
  if (c === 0xe3) return s.charCodeAt(i + 1) === 0x80 && s.charCodeAt(i + 2) === 0x80 ? 3 : 0; // U+3000
  return 0;
}

function trimLeftSpace(s: string): string {
  let i = 0;
  for (let n; i < s.length && (n = spaceAt(s, i)) > 0;) i += n;
  return s.slice(i);
}

function trimSpace(s: string): string {
  s = trimLeftSpace(s);
  // From the right: a space rune is 1 to 3 bytes long.
  for (let end = s.length; end > 0;) {
    let cut = 0;
    for (const w of [1, 2, 3]) if (end - w >= 0 && spaceAt(s, end - w) === w) cut = w;
    if (!cut) return s.slice(0, end);
    end -= cut;
  }
  return '';
}

const TSPECIALS = '()<>@,;:\\"/[]?=';

function isTokenChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code > 0x20 && code < 0x7f && !TSPECIALS.includes(c);
}

function consumeToken(v: string): [string, string] {
  let i = 0;
  while (i < v.length && isTokenChar(v[i])) i++;
  return [v.slice(0, i), v.slice(i)];
}

function consumeValue(v: string): [string, string] {
  if (v === '') return ['', v];
  if (v[0] !== '"') return consumeToken(v);
  let out = '';
  for (let i = 1; i < v.length; i++) {
    const r = v[i];
    if (r === '"') return [out, v.slice(i + 1)];
    if (r === '\\' && i + 1 < v.length && TSPECIALS.includes(v[i + 1])) {
      out += v[i + 1];
      i++;
      continue;
    }
    if (r === '\r' || r === '\n') return ['', v];
    out += r;
  }
  return ['', v]; // no closing quote
}

function consumeMediaParam(v: string): [string, string, string] {
  let rest = trimLeftSpace(v);
  if (!rest.startsWith(';')) return ['', '', v];
  rest = trimLeftSpace(rest.slice(1));
  let param: string;
  [param, rest] = consumeToken(rest);
  param = param.toLowerCase();
  if (param === '') return ['', '', v];
  rest = trimLeftSpace(rest);
  if (!rest.startsWith('=')) return ['', '', v];
  rest = trimLeftSpace(rest.slice(1));
  const [value, rest2] = consumeValue(rest);
  if (value === '' && rest2 === rest) return ['', '', v];
  return [param, value, rest2];
}

/** strings.ToLower as far as it can turn bytes into ASCII: A-Z, and the Kelvin sign (U+212A) to "k". */
function goLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replaceAll('\u00e2\u0084\u00aa', 'k');
}

/** mime.ParseMediaType: the lower-cased media type, or the error Go returns. */
export function parseMediaType(header: string): { type: string } | { error: string } {
  const semi = header.indexOf(';');
  const base = semi < 0 ? header : header.slice(0, semi);
  const type = trimSpace(goLower(base));
  const [main, afterMain] = consumeToken(type);
  if (main === '') return { error: 'mime: no media type' };
  if (afterMain !== '') {
    if (!afterMain.startsWith('/')) return { error: 'mime: expected slash after first token' };
    const [sub, rest] = consumeToken(afterMain.slice(1));
    if (sub === '') return { error: 'mime: expected token after slash' };
    if (rest !== '') return { error: 'mime: unexpected content after media subtype' };
  }
  const params = new Map<string, string>();
  const continuations = new Map<string, Map<string, string>>();
  let v = header.slice(base.length);
  while (v.length > 0) {
    v = trimLeftSpace(v);
    if (v.length === 0) break;
    const [key, value, rest] = consumeMediaParam(v);
    if (key === '') {
      if (trimSpace(rest) === ';') break; // a trailing semicolon
      return { error: 'mime: invalid media parameter' };
    }
    let map = params;
    const star = key.indexOf('*');
    if (star >= 0) {
      const baseName = key.slice(0, star);
      map = continuations.get(baseName) ?? new Map();
      continuations.set(baseName, map);
    }
    const seen = map.get(key);
    if (seen !== undefined && seen !== value) return { error: 'mime: duplicate parameter name' };
    map.set(key, value);
    v = rest;
  }
  return { type };
}

// --- PocketBase's reading -----------------------------------------------------------------------

export interface FormRequest {
  /** The Content-Type header as received; it starts, in some letter case, with application/x-www-form-urlencoded. */
  contentType: string;
  body: Uint8Array;
  /** The URL's query as received (after "?", not decoded). */
  rawQuery: string;
  /** The request has no body at all (Content-Length 0, or neither it nor chunked encoding). */
  empty: boolean;
}

function failure(status: number, message: string, detail: string): FormFailure {
  return { ok: false, status, message, detail };
}

/** The values PocketBase's record routes read from a form request (Go's Request.Form), or its refusal. */
export function readForm(req: FormRequest): FormRead {
  // BindBody does nothing for an empty request, the URL's query included.
  if (req.empty) return { ok: true, values: new Map() };
  if (!req.contentType.startsWith(FORM_TYPE)) return failure(400, UNSUPPORTED_CONTENT_TYPE, 'content type prefix in another letter case');
  const media = parseMediaType(req.contentType);
  if ('error' in media) return failure(400, FORM_PARSE_FAILED, media.error);
  let error: string | null = null;
  let values: FormValues = new Map();
  // Any other subtype (the prefix continued) reads no body at all.
  if (media.type === FORM_TYPE) {
    if (req.body.length > MAX_FORM_SIZE) return failure(400, FORM_PARSE_FAILED, 'http: POST too large');
    ({ values, error } = parseQuery(req.body));
  }
  const query = parseQuery(Buffer.from(req.rawQuery, 'latin1'));
  error ??= query.error;
  if (error !== null) return failure(400, FORM_PARSE_FAILED, error);
  for (const [k, vs] of query.values) {
    const list = values.get(k);
    if (list) list.push(...vs);
    else values.set(k, [...vs]);
  }
  return { ok: true, values };
}

const JSON_PAYLOAD = '@jsonPayload';

/**
 * router.UnmarshalRequestData into a map: one value inferred, several an array of inferred values,
 * then each @jsonPayload value unmarshalled over it (an object merges, null empties it, anything else
 * or invalid JSON is refused). Keys like __proto__ stay plain data.
 */
export function formBody(values: FormValues): FormBody {
  let body: Record<string, unknown> = Object.create(null);
  for (const [k, vs] of values) {
    if (k === JSON_PAYLOAD) continue;
    body[k] = vs.length === 1 ? inferValue(vs[0]) : vs.map(inferValue);
  }
  for (const payload of values.get(JSON_PAYLOAD) ?? []) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch (err) {
      return failure(400, FORM_PARSE_FAILED, `@jsonPayload: ${(err as Error).message}`);
    }
    if (parsed === null) {
      body = Object.create(null);
      continue;
    }
    if (typeof parsed !== 'object' || Array.isArray(parsed)) return failure(400, FORM_PARSE_FAILED, '@jsonPayload: not an object');
    for (const [k, v] of Object.entries(nullProto(parsed as Record<string, unknown>))) body[k] = v;
  }
  return { ok: true, body };
}
