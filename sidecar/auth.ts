// PocketBase's authentication actions, forwarded as the caller; a successful answer comes back byte for
// byte except `token`, which becomes a sidecar session key (a file token becomes a handle). Also the
// sidecar's own session actions (logout, revoke a record's sessions). The route table (routes.ts) says
// which paths these answer; the collection is the canonical one (http/target.ts).
import type { Context } from 'koa';
import { passwordLogin } from './auth-body.js';
import { sendError } from './errors.js';
import { readBody } from './gate/body-limit.js';
import type { LoginGuard } from './gate/login-guard.js';
import type { Forwarder, UpstreamAnswer } from './http/forward.js';
import { foldName, targetOf } from './http/target.js';
import type { AuthPayload, Authenticated, SessionManager } from './sessions/manager.js';

const NEEDS_AUTH = 'The request requires valid record authorization token.';
const SUPERUSERS_ONLY = 'Only superusers can perform this action.';

export interface AuthOptions {
  forwarder: Forwarder;
  sessions: SessionManager;
  guard: LoginGuard;
  loginWindowMs: number;
  /** After a session is created: its watermark (the log head), so its reads see the signed-in record. */
  afterLogin(ctx: Context, sid: string): Promise<void>;
  /** A collection name or id to its id (sessions are stored by collection id); null if unknown. */
  collectionId(nameOrId: string): string | null;
}

export type Handler = (ctx: Context) => Promise<void>;

export interface AuthHandlers {
  authWithPassword: Handler;
  /** auth-with-otp and auth-with-oauth2: a session for a successful answer. */
  authWith: Handler;
  authRefresh: Handler;
  impersonate: Handler;
  fileToken: Handler;
  logout: Handler;
  revokeSessions: Handler;
}

/** The canonical collection of an auth route (the login guard's key). */
function collectionOf(ctx: Context): string {
  const c = targetOf(ctx).collection;
  return c ? (c.ref?.name ?? foldName(c.raw)) : '';
}

export function authHandlers(opts: AuthOptions): AuthHandlers {
  const { sessions, forwarder } = opts;
  const body = (ctx: Context) => readBody(ctx.req, (ctx.state.bodyLimit as number | undefined) ?? 1 << 20);
  const forward = (ctx: Context, raw: Buffer) => forwarder.fetch(ctx, { body: raw });

  /** Swaps PocketBase's token for a new session key in a successful auth answer. */
  async function withSession(ctx: Context, answer: UpstreamAnswer, refreshable = true): Promise<Buffer | string> {
    const text = answer.body.toString('utf8');
    const payload = parse(text) as AuthPayload | null;
    if (answer.status !== 200 || !payload || typeof payload.token !== 'string' || !payload.record?.id) return answer.body;
    const key = await sessions.create(payload, refreshable);
    const sid = sessions.sidOf(key);
    if (sid) await opts.afterLogin(ctx, sid);
    return replaceToken(text, payload.token, key);
  }

  return {
    async authWithPassword(ctx) {
      const raw = await body(ctx);
      const login = await passwordLogin(raw, ctx.get('content-type'), targetOf(ctx).query);
      const identity = login.identity ? login.identity.slice(0, 320).toLowerCase() : null;
      const ip = ctx.state.clientIp as string;
      const collection = collectionOf(ctx);
      if (identity && !(await opts.guard.allowed(collection, identity, ip))) {
        ctx.set('Retry-After', String(Math.ceil(opts.loginWindowMs / 1000)));
        return sendError(ctx, 429, 'Too many failed authentication attempts. Try again later.');
      }
      // PocketBase gets the login that was judged, as JSON, whatever form the client sent.
      const canonical = Buffer.from(JSON.stringify(login));
      const answer = await forwarder.fetch(ctx, { body: raw.length ? canonical : undefined, contentType: raw.length ? 'application/json' : undefined });
      if (identity && answer.status === 400) await opts.guard.failed(collection, identity, ip);
      // 200, or 401 with an mfaId: the password was right.
      if (identity && (answer.status === 200 || answer.status === 401)) await opts.guard.succeeded(collection, identity, ip);
      forwarder.relay(ctx, answer, await withSession(ctx, answer));
    },

    async authWith(ctx) {
      const answer = await forward(ctx, await body(ctx));
      forwarder.relay(ctx, answer, await withSession(ctx, answer));
    },

    async authRefresh(ctx) {
      const auth = ctx.state.auth as Authenticated | undefined;
      const raw = await body(ctx);
      if (!auth) return sendError(ctx, 401, NEEDS_AUTH);
      const answer = await forward(ctx, raw);
      if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
        await sessions.revoke(auth.session.sid);
        return forwarder.relay(ctx, answer);
      }
      const text = answer.body.toString('utf8');
      const payload = parse(text) as AuthPayload | null;
      // Never a PocketBase token to the client: an answer without one we can swap is refused.
      if (answer.status !== 200 || !payload || typeof payload.token !== 'string') {
        return answer.status === 200 ? sendError(ctx, 401, NEEDS_AUTH) : forwarder.relay(ctx, answer);
      }
      const key = await sessions.rotate(auth, payload);
      if (!key) return sendError(ctx, 401, NEEDS_AUTH);
      forwarder.relay(ctx, answer, replaceToken(text, payload.token, key));
    },

    async impersonate(ctx) {
      const answer = await forward(ctx, await body(ctx));
      forwarder.relay(ctx, answer, await withSession(ctx, answer, false));
    },

    async fileToken(ctx) {
      const answer = await forward(ctx, await body(ctx));
      const text = answer.body.toString('utf8');
      const payload = parse(text) as { token?: unknown } | null;
      if (answer.status !== 200 || typeof payload?.token !== 'string') return forwarder.relay(ctx, answer);
      const handle = await sessions.wrapFileToken(payload.token);
      forwarder.relay(ctx, answer, replaceToken(text, payload.token, handle));
    },

    async logout(ctx) {
      const auth = ctx.state.auth as Authenticated | undefined;
      if (!auth) return sendError(ctx, 401, NEEDS_AUTH);
      await sessions.revoke(auth.session.sid);
      ctx.status = 204;
    },

    // A superuser ends every session of one auth record: {"collection": "users", "recordId": "..."}.
    async revokeSessions(ctx) {
      const auth = ctx.state.auth as Authenticated | undefined;
      if (!auth) return sendError(ctx, 401, NEEDS_AUTH);
      if (auth.session.collectionName !== '_superusers') return sendError(ctx, 403, SUPERUSERS_ONLY);
      const req = parse((await body(ctx)).toString('utf8')) as { collection?: unknown; recordId?: unknown } | null;
      if (!req || typeof req.collection !== 'string' || typeof req.recordId !== 'string') {
        return sendError(ctx, 400, 'Failed to revoke sessions.', { recordId: { code: 'validation_required', message: 'Cannot be blank.' } });
      }
      const collectionId = opts.collectionId(req.collection);
      const revoked = collectionId ? await sessions.revokeRecord(collectionId, req.recordId) : 0;
      ctx.body = { revoked };
    },
  };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Replaces the one token string in PocketBase's raw JSON, leaving every other byte as it was. */
export function replaceToken(text: string, pbToken: string, key: string): string {
  const needle = `"token":${JSON.stringify(pbToken)}`;
  const at = text.indexOf(needle);
  if (at < 0) throw new Error('token not found in the authentication answer');
  return text.slice(0, at) + `"token":${JSON.stringify(key)}` + text.slice(at + needle.length);
}
