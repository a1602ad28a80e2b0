// Session keys: JWT-shaped (HS256) so the PocketBase SDK's authStore can read `exp`, `id`, `type` and
// `collectionId` without verifying, signed by the sidecar. Parsing is strict: anything but exactly our
// header, a valid signature and well-typed claims is "no token".
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Lru } from '../lru.js';

export interface KeyClaims {
  collectionId: string;
  exp: number; // seconds
  id: string;
  refreshable: boolean;
  type: 'auth';
  sid: string;
  kid: string;
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
const MAX_TOKEN_LENGTH = 2048;
const B64URL = /^[A-Za-z0-9_-]+$/;
// Claim values are restricted to characters whose base64url encoding never yields '-' or '_' in the
// payload's JSON: browsers' atob (used by the SDK) rejects those characters.
const SAFE_VALUE = /^[A-Za-z0-9_]{1,100}$/;

export class KeySigner {
  /** Keys already verified (signature and claims are fixed for a key; only expiry is checked again). */
  private readonly verified = new Lru<string, KeyClaims>(50_000);

  constructor(private readonly secret: Buffer) {}

  sign(claims: KeyClaims): string {
    // Fixed key order: the same claims always give the same key.
    const payload = Buffer.from(JSON.stringify({
      collectionId: claims.collectionId, exp: claims.exp, id: claims.id, kid: claims.kid,
      refreshable: claims.refreshable, sid: claims.sid, type: 'auth',
    })).toString('base64url');
    return `${HEADER}.${payload}.${this.mac(`${HEADER}.${payload}`)}`;
  }

  /** The claims of a well-formed, correctly signed, unexpired key; null for anything else. */
  verify(token: string, nowMs = Date.now()): KeyClaims | null {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return null;
    const known = this.verified.get(token);
    if (known) return known.exp * 1000 > nowMs ? known : null;
    const claims = this.verifyFully(token, nowMs);
    if (claims) this.verified.set(token, claims);
    return claims;
  }

  private verifyFully(token: string, nowMs: number): KeyClaims | null {
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== HEADER || !B64URL.test(parts[1]) || !B64URL.test(parts[2])) return null;
    const expected = Buffer.from(this.mac(`${parts[0]}.${parts[1]}`));
    const given = Buffer.from(parts[2]);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    let c: Record<string, unknown>;
    try {
      c = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return null;
    }
    if (!c || typeof c !== 'object' || c.type !== 'auth' || typeof c.exp !== 'number' || typeof c.refreshable !== 'boolean') return null;
    for (const k of ['collectionId', 'id', 'sid', 'kid'] as const) if (typeof c[k] !== 'string' || !SAFE_VALUE.test(c[k] as string)) return null;
    if (c.exp * 1000 <= nowMs) return null;
    return c as unknown as KeyClaims;
  }

  private mac(data: string): string {
    return createHmac('sha256', this.secret).update(data).digest('base64url');
  }
}

/** Whether a string is a JWT-shaped token at all (used to recognise PocketBase tokens). */
export function looksLikeJwt(token: string): boolean {
  const parts = token.split('.');
  return parts.length === 3 && parts.every((p) => p.length > 0 && B64URL.test(p));
}

/** The token in an Authorization header ("TOKEN" or "Bearer TOKEN", as PocketBase accepts). */
export function tokenFromHeader(header: string | undefined): string {
  if (!header) return '';
  const h = header.trim();
  return h.toLowerCase().startsWith('bearer ') ? h.slice(7).trim() : h;
}

export function isSafeClaimValue(v: string): boolean {
  return SAFE_VALUE.test(v);
}
