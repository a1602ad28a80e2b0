// The request target as PocketBase's router sees it (Go's net/http server and ServeMux), computed once at
// the edge: every decision of the sidecar is taken on this canonical form, and the canonical path is what
// is forwarded, so the request PocketBase executes is the request the sidecar judged.
//
// Go's rules, checked against PocketBase 0.40.4 (test/canonical.test.ts):
// - `*` is only for OPTIONS (200, empty); any other method gets 400 with an empty body.
// - absolute-form (`GET http://host/path`) is routed by its path; any other form that is not a path is 400.
// - a bad %-escape in the path is 400 ("400 Bad Request", plain text); in the query it is ignored.
// - a path that is not clean (`//`, `.` or `..` segments, on the escaped text) is redirected (307) to its
//   cleaned form; nothing is executed.
// - each segment is matched unescaped: `auth%2Dwith-password` is `auth-with-password`, while `%2F` stays
//   inside its segment and `%2E%2E` is a literal segment "..".
// - collections are found by id (exact) or name (Go's strings.EqualFold: `USERS`, `u%73ers`, `_ſuperusers`).
import type { Context, Next } from 'koa';
import type { ReplicaStore } from '../../replica/store.js';
import { catalogOf } from '../reads/catalog.js';

export interface CollectionRef { id: string; name: string }

/** The collections PocketBase knows, in its own lookup order (the replica's catalog plus system ones). */
export type CollectionLookup = () => readonly CollectionRef[];

/** PocketBase's system collections: fixed names and ids in every installation. */
export const SYSTEM_COLLECTIONS: readonly CollectionRef[] = [
  { id: 'pbc_3142635823', name: '_superusers' },
  { id: 'pbc_2279338944', name: '_mfas' },
  { id: 'pbc_1638494021', name: '_otps' },
  { id: 'pbc_2281828961', name: '_externalAuths' },
  { id: 'pbc_4275539003', name: '_authOrigins' },
];
export const SUPERUSERS = SYSTEM_COLLECTIONS[0];

export interface Target {
  /** The canonical escaped path (what is routed and forwarded). */
  path: string;
  /** The raw query string, without `?` (PocketBase parses it itself). */
  query: string;
  /** The unescaped segments of the path (the first is '' for the leading slash, dropped here). */
  segments: string[];
  /** The collection a `/api/collections/{c}/…` or `/api/files/{c}/…` path names, resolved when known. */
  collection: { raw: string; ref: CollectionRef | null } | null;
}

export type Parsed =
  | { kind: 'ok'; target: Target }
  | { kind: 'redirect'; location: string }
  | { kind: 'options-star' }
  | { kind: 'bad'; body: string };

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Bytes of one escaped segment, or null for a bad escape (Go's url.PathUnescape). Node hands the
 * request line over as latin1, one char per byte. */
function unescapeBytes(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const h = s.slice(i + 1, i + 3);
      if (!HEX.test(h)) return null;
      out[n++] = parseInt(h, 16);
      i += 2;
    } else {
      out[n++] = c & 0xff;
    }
  }
  return out.subarray(0, n);
}

// Characters a path segment may hold unescaped: RFC 3986 pchar minus nothing that Go would treat specially.
const SAFE = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@") SAFE[ch.charCodeAt(0)] = 1;

/** One segment's bytes re-escaped: every byte that is not a safe pchar becomes %XX; `.`/`..` stay literal. */
function escapeSegment(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b < 0x80 && SAFE[b] ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  if (s === '.' || s === '..') s = s.replace(/\./g, '%2E');
  return s;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Go's path cleaning as ServeMux applies it (cleanPath: path.Clean, keeping a trailing slash). */
export function cleanPath(p: string): string {
  if (p === '') return '/';
  if (p[0] !== '/') p = '/' + p;
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  let np = '/' + parts.join('/');
  if (p.endsWith('/') && np !== '/') np += '/';
  return np;
}

/** strings.EqualFold against an ASCII name: the only non-ASCII runes folding onto ASCII are ſ (s) and K (k). */
export function foldName(s: string): string {
  let out = '';
  for (const ch of s) {
    if (ch === '\u017F') out += 's';
    else if (ch === '\u212A') out += 'k';
    else if (ch.charCodeAt(0) < 0x80) out += ch.toLowerCase();
    else out += ch; // cannot equal an ASCII name
  }
  return out;
}

/** FindCachedCollectionByNameOrId: the first collection whose name folds equal or whose id is equal. */
export function resolveCollection(nameOrId: string, collections: readonly CollectionRef[]): CollectionRef | null {
  const folded = foldName(nameOrId);
  for (const c of collections) if (c.id === nameOrId || c.name.toLowerCase() === folded) return c;
  return null;
}

/** Parses a raw request target (`req.url`) as PocketBase would route it. */
export function parseTarget(method: string, rawUrl: string, collections: readonly CollectionRef[]): Parsed {
  if (rawUrl === '*') return method === 'OPTIONS' ? { kind: 'options-star' } : { kind: 'bad', body: '' };
  let url = rawUrl;
  if (url[0] !== '/') {
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*(.*)$/s.exec(url);
    if (!m) return { kind: 'bad', body: '400 Bad Request' };
    url = m[1] === '' || m[1][0] === '?' ? '/' + m[1] : m[1];
  }
  const q = url.indexOf('?');
  const escaped = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const rawSegments = escaped.split('/').slice(1);
  const bytes = rawSegments.map(unescapeBytes);
  if (bytes.some((b) => b === null)) return { kind: 'bad', body: '400 Bad Request' };
  if (method !== 'CONNECT') {
    const clean = cleanPath(escaped);
    if (clean !== escaped) return { kind: 'redirect', location: clean + (query ? '?' + query : '') };
  }
  const segments = (bytes as Uint8Array[]).map((b) => decoder.decode(b));
  let collection: Target['collection'] = null;
  const at = segments[0] === 'api' && (segments[1] === 'collections' || segments[1] === 'files') && segments.length >= 3 ? 2 : -1;
  if (at > 0) {
    const ref = resolveCollection(segments[at], collections);
    collection = { raw: segments[at], ref };
    // The canonical name: what PocketBase resolves the segment to.
    if (ref) {
      segments[at] = ref.name;
      bytes[at] = Buffer.from(ref.name, 'utf8');
    }
  }
  const path = '/' + (bytes as Uint8Array[]).map(escapeSegment).join('/');
  return { kind: 'ok', target: { path, query, segments, collection } };
}

/** Go's http.Redirect body for GET and HEAD. */
function redirectBody(location: string): string {
  const esc = location.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;');
  return `<a href="${esc}">Temporary Redirect</a>.\n\n`;
}

/**
 * The edge middleware: answers what PocketBase's server would answer before any route (bad targets,
 * redirects, `OPTIONS *`) and otherwise rewrites the request to its canonical path, stored in
 * ctx.state.target for every later decision.
 */
export function canonicalTarget(collections: CollectionLookup) {
  return async function canonical(ctx: Context, next: Next): Promise<void> {
    const parsed = parseTarget(ctx.method, ctx.req.url ?? '', collections());
    switch (parsed.kind) {
      case 'options-star':
        ctx.body = null;
        ctx.status = 200;
        ctx.set('Content-Length', '0');
        return;
      case 'bad':
        ctx.set('Connection', 'close');
        ctx.status = 400;
        if (parsed.body) {
          ctx.set('Content-Type', 'text/plain; charset=utf-8');
          ctx.body = parsed.body;
        } else {
          ctx.body = null;
          ctx.status = 400;
          ctx.set('Content-Length', '0');
        }
        return;
      case 'redirect':
        ctx.status = 307;
        ctx.set('Location', parsed.location);
        if (ctx.method === 'GET' || ctx.method === 'HEAD') {
          ctx.set('Content-Type', 'text/html; charset=utf-8');
          ctx.body = redirectBody(parsed.location);
        }
        return;
    }
    const t = parsed.target;
    ctx.state.target = t;
    ctx.url = t.query ? `${t.path}?${t.query}` : t.path;
    await next();
  };
}

export function targetOf(ctx: Context): Target {
  return ctx.state.target as Target;
}

const refsByCatalog = new WeakMap<object, CollectionRef[]>();

/** The lookup list for a replica: its collections (catalog order), then PocketBase's system ones. */
export function collectionRefs(store: ReplicaStore | null): readonly CollectionRef[] {
  if (!store) return SYSTEM_COLLECTIONS;
  const catalog = catalogOf(store);
  let refs = refsByCatalog.get(catalog);
  if (!refs) {
    refs = store.collections().map((c) => ({ id: c.id, name: c.name }));
    for (const s of SYSTEM_COLLECTIONS) if (!refs.some((r) => r.id === s.id)) refs.push(s);
    refsByCatalog.set(catalog, refs);
  }
  return refs;
}
