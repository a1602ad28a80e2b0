// PocketBase's authentication routes, forwarded with the caller's identity; a successful answer comes
// back byte for byte except `token`, which becomes a sidecar session key. Also the sidecar's own
// session routes (logout, revoke a user's sessions) and file tokens.
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Dispatcher } from 'undici';
import type { Upstream } from '../lib/upstream.js';
import { sendError } from './errors.js';
import { readBody } from './gate/body-limit.js';
import type { LoginGuard } from './gate/login-guard.js';
import { forwardHeaders } from './proxy.js';
import { upstreamIdentity, type IdentityOptions } from './identity.js';
import type { AuthPayload, Authenticated, SessionManager } from './sessions/manager.js';

const NEEDS_AUTH = 'The request requires valid record authorization token.';
const SUPERUSERS_ONLY = 'Only superusers can perform this action.';

export interface AuthRoutesOptions {
  upstream: Upstream;
  sessions: SessionManager;
  guard: LoginGuard;
  identity: IdentityOptions;
  loginWindowMs: number;
  /** A collection name or id to its id (sessions are stored by collection id); null if unknown. */
  collectionId(nameOrId: string): string | null;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export function authRoutes(opts: AuthRoutesOptions): Router {
  const router = new Router();
  const { sessions } = opts;

  async function forward(ctx: Context, body: Buffer, path = ctx.url): Promise<Answer> {
    const headers = forwardHeaders(ctx.req.headers);
    delete headers['content-length'];
    await upstreamIdentity(ctx, sessions, opts.identity, headers);
    ctx.state.upstream = true;
    let res: Dispatcher.ResponseData;
    try {
      res = await opts.upstream.request('proxy', { method: ctx.method as Dispatcher.HttpMethod, path, headers, body: body.length ? body : undefined });
    } catch {
      return { status: 502, headers: {}, text: JSON.stringify({ data: {}, message: 'PocketBase is unavailable.', status: 502 }) };
    }
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  }

  function reply(ctx: Context, answer: Answer, text = answer.text): void {
    ctx.status = answer.status;
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined || ['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(name)) continue;
      ctx.set(name, value as string | string[]);
    }
    ctx.body = text;
  }

  /** Swaps PocketBase's token for a new session key in a successful auth answer. */
  async function withSession(answer: Answer, refreshable = true): Promise<string> {
    const payload = parse(answer.text) as AuthPayload | null;
    if (answer.status !== 200 || !payload || typeof payload.token !== 'string' || !payload.record?.id) return answer.text;
    const key = await sessions.create(payload, refreshable);
    return replaceToken(answer.text, payload.token, key);
  }

  const body = (ctx: Context) => readBody(ctx.req, (ctx.state.bodyLimit as number | undefined) ?? 1 << 20);

  router.post('/api/collections/:collection/auth-with-password', async (ctx) => {
    const raw = await body(ctx);
    const identity = identityOf(raw, ctx.get('content-type'));
    const ip = ctx.state.clientIp as string;
    const collection = ctx.params.collection;
    if (identity && !(await opts.guard.allowed(collection, identity, ip))) {
      ctx.set('Retry-After', String(Math.ceil(opts.loginWindowMs / 1000)));
      return sendError(ctx, 429, 'Too many failed authentication attempts. Try again later.');
    }
    const answer = await forward(ctx, raw);
    if (identity && answer.status === 400) await opts.guard.failed(collection, identity, ip);
    // 200, or 401 with an mfaId: the password was right.
    if (identity && (answer.status === 200 || answer.status === 401)) await opts.guard.succeeded(collection, identity, ip);
    reply(ctx, answer, await withSession(answer));
  });

  for (const route of ['auth-with-otp', 'auth-with-oauth2']) {
    router.post(`/api/collections/:collection/${route}`, async (ctx) => {
      const answer = await forward(ctx, await body(ctx));
      reply(ctx, answer, await withSession(answer));
    });
  }

  router.post('/api/collections/:collection/auth-refresh', async (ctx) => {
    const auth = ctx.state.auth as Authenticated | undefined;
    const raw = await body(ctx);
    if (!auth) return sendError(ctx, 401, NEEDS_AUTH);
    const answer = await forward(ctx, raw);
    if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
      await sessions.revoke(auth.session.sid);
      return reply(ctx, answer);
    }
    const payload = parse(answer.text) as AuthPayload | null;
    if (answer.status !== 200 || !payload || typeof payload.token !== 'string') return reply(ctx, answer);
    const key = await sessions.rotate(auth, payload);
    if (!key) return sendError(ctx, 401, NEEDS_AUTH);
    reply(ctx, answer, replaceToken(answer.text, payload.token, key));
  });

  router.post('/api/collections/:collection/impersonate/:id', async (ctx) => {
    const answer = await forward(ctx, await body(ctx));
    reply(ctx, answer, await withSession(answer, false));
  });

  router.post('/api/files/token', async (ctx) => {
    const answer = await forward(ctx, await body(ctx));
    const payload = parse(answer.text) as { token?: unknown } | null;
    if (answer.status !== 200 || typeof payload?.token !== 'string') return reply(ctx, answer);
    const handle = await sessions.wrapFileToken(payload.token);
    reply(ctx, answer, replaceToken(answer.text, payload.token, handle));
  });

  router.post('/api/hapta/logout', async (ctx) => {
    const auth = ctx.state.auth as Authenticated | undefined;
    if (!auth) return sendError(ctx, 401, NEEDS_AUTH);
    await sessions.revoke(auth.session.sid);
    ctx.status = 204;
  });

  // A superuser ends every session of one auth record: {"collection": "users", "recordId": "..."}.
  router.post('/api/hapta/sessions/revoke', async (ctx) => {
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
  });

  return router;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The identity field of a login attempt (JSON or form body). */
function identityOf(raw: Buffer, contentType: string): string | null {
  if (contentType.startsWith('application/json') || contentType === '') {
    const v = parse(raw.toString('utf8')) as { identity?: unknown } | null;
    return typeof v?.identity === 'string' ? v.identity.slice(0, 320) : null;
  }
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    return new URLSearchParams(raw.toString('utf8')).get('identity')?.slice(0, 320) ?? null;
  }
  return null;
}

/** Replaces the one token string in PocketBase's raw JSON, leaving every other byte as it was. */
export function replaceToken(text: string, pbToken: string, key: string): string {
  const needle = `"token":${JSON.stringify(pbToken)}`;
  const at = text.indexOf(needle);
  if (at < 0) throw new Error('token not found in the authentication answer');
  return text.slice(0, at) + `"token":${JSON.stringify(key)}` + text.slice(at + needle.length);
}
