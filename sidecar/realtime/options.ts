// A subscription topic as PocketBase 0.40.4 reads it (tools/subscriptions/client.go): the topic text up
// to the first "?" is what events are matched against; `options` is the first value of the `options`
// query parameter (Go's url.Parse, then URL.Query(): pairs with ";" or bad escapes dropped, "+" is a
// space), decoded as JSON into {query, headers} the way encoding/json/v2 does it (member names matched
// exactly, a duplicate name or a value of the wrong type ends decoding, what was decoded before stays),
// every value turned into a string with cast.ToString and header names snake_cased.
import { goFormatFloatF, parseGoQuery } from '../reads/request.js';

export interface SubscriptionOptions {
  query: Record<string, string>;
  headers: Record<string, string>;
}

export interface ParsedTopic {
  /** The full topic as subscribed: the `event:` name of its frames. */
  topic: string;
  /** The text before the first "?": what PocketBase matches events against. */
  base: string;
  options: SubscriptionOptions;
}

export function parseTopic(topic: string): ParsedTopic {
  const q = topic.indexOf('?');
  const base = q === -1 ? topic : topic.slice(0, q);
  const options: SubscriptionOptions = { query: Object.create(null), headers: Object.create(null) };
  const raw = rawQueryOf(topic);
  if (raw !== null) {
    let value: string | undefined;
    try {
      value = parseGoQuery(raw).get('options')?.[0];
    } catch {
      value = undefined; // bytes Go keeps but its JSON decoder rejects (invalid UTF-8)
    }
    if (value) decodeOptions(value, options);
  }
  return { topic, base, options };
}

/** A stable text of the options (what rules and rendering may depend on), for grouping subscriptions. */
export function optionsKey(o: SubscriptionOptions): string {
  const part = (m: Record<string, string>) => Object.keys(m).sort().map((k) => JSON.stringify(k) + ':' + JSON.stringify(m[k])).join(',');
  return `{${part(o.query)}}{${part(o.headers)}}`;
}

// ---------------------------------------------------------------------------------------------------
// net/url.Parse, reduced to what decides whether a query can be read and what it is.

/** The raw query of `s` as url.Parse sets it, or null when url.Parse fails. */
export function rawQueryOf(s: string): string | null {
  // stringContainsCTLByte
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return null;
  }
  const hash = s.indexOf('#');
  const frag = hash === -1 ? null : s.slice(hash + 1);
  let rest = hash === -1 ? s : s.slice(0, hash);
  if (frag !== null && !validEscapes(frag)) return null;
  if (rest === '' || rest === '*') return '';
  const scheme = schemeOf(rest);
  if (scheme === null) return null;
  if (scheme !== '') rest = rest.slice(scheme.length + 1);
  let raw = '';
  if (rest.endsWith('?') && countChar(rest, '?') === 1) {
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf('?');
    if (q !== -1) {
      raw = rest.slice(q + 1);
      rest = rest.slice(0, q);
    }
  }
  if (!rest.startsWith('/')) {
    if (scheme !== '') return raw; // opaque: nothing else is checked
    const slash = rest.indexOf('/');
    const first = slash === -1 ? rest : rest.slice(0, slash);
    if (first.includes(':')) return null; // "first path segment in URL cannot contain colon"
  }
  let path = rest;
  if (rest.startsWith('//') && (scheme !== '' || !rest.startsWith('///'))) {
    const end = rest.indexOf('/', 2);
    path = end === -1 ? '' : rest.slice(end);
  }
  return validEscapes(path) ? raw : null;
}

/** getScheme: '' when there is none, null on "missing protocol scheme". */
function schemeOf(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) continue;
    if ((c >= '0' && c <= '9') || c === '+' || c === '-' || c === '.') {
      if (i === 0) return '';
      continue;
    }
    if (c === ':') return i === 0 ? null : s.slice(0, i);
    return '';
  }
  return '';
}

function countChar(s: string, ch: string): number {
  let n = 0;
  for (const c of s) if (c === ch) n++;
  return n;
}

function validEscapes(s: string): boolean {
  for (let i = s.indexOf('%'); i !== -1; i = s.indexOf('%', i + 1)) {
    if (!/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// encoding/json/v2 decoding into struct{ Query map[string]any; Headers map[string]any }, stopping at the
// first error with what was decoded so far kept.

class Stop extends Error {}

function decodeOptions(text: string, out: SubscriptionOptions): void {
  const p = new JsonReader(text);
  try {
    p.ws();
    eachMember(p, (name) => {
      if (name === 'query') eachMember(p, (k) => { out.query[k] = castToString(p.value()); });
      else if (name === 'headers') eachMember(p, (k) => { out.headers[snakecase(k)] = castToString(p.value()); });
      else p.value();
    });
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
}

/**
 * One JSON object, member by member: `fn` reads each member's value. Null is an empty object; anything
 * else, a repeated name or a syntax error stops the decoding (Stop).
 */
function eachMember(p: JsonReader, fn: (name: string) => void): void {
  if (p.peek() === 'n') { p.literal('null'); return; }
  p.expect('{');
  p.ws();
  if (p.peek() === '}') { p.pos++; return; }
  const seen = new Set<string>();
  for (;;) {
    p.ws();
    const name = p.string();
    if (seen.has(name)) throw new Stop();
    seen.add(name);
    p.ws();
    p.expect(':');
    p.ws();
    fn(name);
    p.ws();
    if (p.peek() === ',') { p.pos++; continue; }
    p.expect('}');
    return;
  }
}

/** spf13/cast.ToString of a decoded JSON value (objects and arrays give ""). */
function castToString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return goFormatFloatF(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return '';
}

/** inflector.Snakecase: split at non-word characters and "_", "_" before an upper-case letter that follows a lower one, lower-cased. */
export function snakecase(s: string): string {
  const words = s.split(/[^0-9A-Za-z]+/);
  let out = '';
  for (const word of words) {
    if (word === '') continue;
    if (out.length > 0) out += '_';
    const chars = Array.from(word);
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i];
      // Go compares with the previous byte: a multi-byte character's last byte is never upper case.
      const prev = i > 0 ? chars[i - 1] : '';
      const prevUpper = prev.length === 1 && prev.charCodeAt(0) < 0x80 && prev >= 'A' && prev <= 'Z';
      if (i > 0 && isUpper(c) && !prevUpper) out += '_';
      out += c;
    }
  }
  return out.toLowerCase();
}

function isUpper(c: string): boolean {
  return c !== c.toLowerCase() && c === c.toUpperCase();
}

/** A strict JSON reader (RFC 8259, as Go's decoder accepts it) that can stop anywhere. */
class JsonReader {
  pos = 0;
  constructor(readonly s: string) {}

  peek(): string {
    return this.s[this.pos] ?? '';
  }

  ws(): void {
    while (this.pos < this.s.length && ' \t\n\r'.includes(this.s[this.pos])) this.pos++;
  }

  expect(ch: string): void {
    if (this.s[this.pos] !== ch) throw new Stop();
    this.pos++;
  }

  literal(word: string): void {
    if (this.s.startsWith(word, this.pos)) this.pos += word.length;
    else throw new Stop();
  }

  value(): unknown {
    const c = this.peek();
    switch (c) {
      case '"': return this.string();
      case '{': {
        this.pos++;
        const out: Record<string, unknown> = {};
        const seen = new Set<string>();
        this.ws();
        if (this.peek() === '}') { this.pos++; return out; }
        for (;;) {
          this.ws();
          const k = this.string();
          if (seen.has(k)) throw new Stop();
          seen.add(k);
          this.ws();
          this.expect(':');
          this.ws();
          out[k] = this.value();
          this.ws();
          if (this.peek() === ',') { this.pos++; continue; }
          this.expect('}');
          return out;
        }
      }
      case '[': {
        this.pos++;
        const out: unknown[] = [];
        this.ws();
        if (this.peek() === ']') { this.pos++; return out; }
        for (;;) {
          this.ws();
          out.push(this.value());
          this.ws();
          if (this.peek() === ',') { this.pos++; continue; }
          this.expect(']');
          return out;
        }
      }
      case 't': this.literal('true'); return true;
      case 'f': this.literal('false'); return false;
      case 'n': this.literal('null'); return null;
      default: return this.number();
    }
  }

  number(): number {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.pos, this.pos + 400));
    if (!m || m[0] === '' || m[0] === '-') throw new Stop();
    this.pos += m[0].length;
    const n = Number(m[0]);
    if (!Number.isFinite(n)) throw new Stop(); // Go: "value out of range"
    return n;
  }

  string(): string {
    if (this.s[this.pos] !== '"') throw new Stop();
    let i = this.pos + 1;
    let out = '';
    for (;;) {
      if (i >= this.s.length) throw new Stop();
      const c = this.s.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) throw new Stop();
      if (c === 0x5c) {
        const e = this.s[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) { out += simple[e]; i += 2; continue; }
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(this.s.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(this.s.slice(i + 2, i + 6), 16));
          i += 6;
          continue;
        }
        throw new Stop();
      }
      out += this.s[i];
      i++;
    }
    this.pos = i + 1;
    // Unpaired surrogates (from \u escapes) become U+FFFD in Go.
    return (out as unknown as { toWellFormed(): string }).toWellFormed();
  }
}
