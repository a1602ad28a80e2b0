// Who is calling: the session behind the sidecar key in the Authorization header (checked on every
// request: signature, expiry, revocation, rotation). Anything else is no token, as in PocketBase;
// PocketBase tokens too unless configured to pass through. Also maps the caller's identity and real IP
// onto requests forwarded to PocketBase.
import type { Context, Next } from 'koa';
import { looksLikeJwt, tokenFromHeader } from './sessions/token.js';
import type { Authenticated, SessionManager } from './sessions/manager.js';

export interface IdentityOptions {
  acceptPocketBaseTokens: boolean;
  clientIpHeader: string;
}

export function identity(sessions: SessionManager, opts: IdentityOptions) {
  return async function identify(ctx: Context, next: Next): Promise<void> {
    const header = ctx.get('authorization');
    if (header) {
      const check = await sessions.check(header);
      if (check.status === 'ok') {
        ctx.state.auth = check.auth;
        ctx.state.session = check.auth.session;
      } else if (opts.acceptPocketBaseTokens && looksLikeJwt(tokenFromHeader(header))) {
        ctx.state.passThroughAuth = header;
      }
    }
    await next();
  };
}

/** Headers for a request forwarded to PocketBase on behalf of this caller. */
export async function upstreamIdentity(ctx: Context, sessions: SessionManager, opts: IdentityOptions, headers: Record<string, string | string[]>): Promise<void> {
  delete headers.authorization;
  delete headers[opts.clientIpHeader.toLowerCase()];
  const auth = ctx.state.auth as Authenticated | undefined;
  if (auth) {
    const token = await sessions.pbToken(auth.session);
    if (token) headers.authorization = token;
  } else if (ctx.state.passThroughAuth) {
    headers.authorization = ctx.state.passThroughAuth as string;
  }
  if (ctx.state.clientIp) headers[opts.clientIpHeader.toLowerCase()] = ctx.state.clientIp as string;
}

/** Rewrites a `token` query parameter holding a sidecar file-token handle to PocketBase's file token. */
export async function mapFileToken(ctx: Context, sessions: SessionManager): Promise<string> {
  if (!ctx.path.startsWith('/api/files/') || !ctx.query.token) return ctx.url;
  const params = new URLSearchParams(ctx.querystring);
  const handle = params.get('token') ?? '';
  const pbToken = await sessions.unwrapFileToken(handle);
  if (pbToken) params.set('token', pbToken);
  else params.delete('token');
  const qs = params.toString();
  return qs ? `${ctx.path}?${qs}` : ctx.path;
}
