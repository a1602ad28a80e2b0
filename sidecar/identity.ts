// Who is calling: the session behind the sidecar key in the Authorization header (checked on every
// request: signature, expiry, revocation, rotation). Anything else is no token, as in PocketBase;
// PocketBase tokens too unless configured to pass through. The Forwarder (http/forward.ts) maps this
// identity onto requests sent to PocketBase.
import type { Context, Next } from 'koa';
import { looksLikeJwt, tokenFromHeader } from './sessions/token.js';
import type { SessionManager } from './sessions/manager.js';

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
