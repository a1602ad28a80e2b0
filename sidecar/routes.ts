// The route table: every request the sidecar answers or forwards, in one place. Paths are matched on the
// canonical target (http/target.ts: unescaped segments, canonical collection names), case-sensitive and
// with trailing slashes significant, as PocketBase's router matches them. Each route names its kind, which
// is the one classification used by the rate limits and the metrics; a route's chain is
//   kind → guard (superuser API, dashboard) → body limit → rate limit → handler [→ PocketBase]
// and a handler that cannot answer from the replica passes on to the forwarder at the end of its own chain.
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { RouteClass } from '../config.js';
import type { AuthHandlers } from './auth.js';
import type { Consistency } from './consistency.js';
import { sendError } from './errors.js';
import { bodyLimit, limitedBody } from './gate/body-limit.js';
import type { Forwarder } from './http/forward.js';
import { SUPERUSERS, targetOf } from './http/target.js';
import type { SessionManager } from './sessions/manager.js';

/** What a route is, for limits and metrics (the `route` label of hapta_requests_total). */
export type RouteKind = 'read' | 'write' | 'batch' | 'auth' | 'files' | 'realtime' | 'feeds' | 'hapta' | 'admin' | 'dashboard' | 'api' | 'other';

export interface RouteInfo {
  kind: RouteKind;
  /** The rate-limit class, or null for routes that are not limited. */
  limit: RouteClass | null;
}

const NOT_FOUND = "The requested resource wasn't found.";

/** The one classification of a request: its route's kind, and the rate-limit class that follows. */
export function classify(kind: RouteKind, method: string, contentType: string): RouteInfo {
  const write = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
  switch (kind) {
    case 'auth': return { kind, limit: 'auth' };
    case 'realtime': return { kind, limit: 'realtime' };
    case 'hapta': case 'dashboard': case 'other': return { kind, limit: null };
    default:
      if (!write) return { kind, limit: 'read' };
      return { kind, limit: contentType.startsWith('multipart/') ? 'upload' : 'write' };
  }
}

export function routeInfo(ctx: Context): RouteInfo {
  return (ctx.state.route as RouteInfo | undefined) ?? { kind: 'other', limit: null };
}

export interface RouteHandlers {
  forwarder: Forwarder;
  consistency: Pick<Consistency, 'afterWrite' | 'afterUpstreamRead'>;
  sessions: SessionManager;
  auth: AuthHandlers;
  reads: Middleware;
  writes: Middleware;
  feeds: Middleware;
  /** GET /api/realtime opens a stream, POST sets subscriptions (anything else: next). */
  realtime: Middleware;
  health: Middleware;
  metrics: Middleware;
  rateLimit: Middleware;
  gate: { exposeDashboard: boolean; exposeSuperuserApi: boolean; maxJsonBody: number; maxUploadBody: number };
}

export function createRouter(h: RouteHandlers): Router {
  const router = new Router({ strict: true, sensitive: true });
  const limitBody = bodyLimit({ json: h.gate.maxJsonBody, upload: h.gate.maxUploadBody });

  const notFound: Middleware = async (ctx) => sendError(ctx, 404, NOT_FOUND);
  /**
   * The catch-all forwarder: the request streamed to PocketBase (body limited) and the answer back. A
   * write it carried (any method but GET/HEAD/OPTIONS, realtime subscriptions aside: a confirmation, a
   * multipart batch…) raises the caller's watermark like any write.
   */
  const forward: Middleware = async (ctx) => {
    await h.forwarder.stream(ctx, {
      body: () => limitedBody(ctx.req, ctx.state.bodyLimit as number, () => (ctx.state.bodyTooLarge = true)),
      bodyTooLarge: () => ctx.state.bodyTooLarge === true,
    });
    const { kind } = routeInfo(ctx);
    const write = !['GET', 'HEAD', 'OPTIONS'].includes(ctx.method) && kind !== 'realtime';
    if (ctx.state.upstream !== true || ctx.status < 200 || ctx.status >= 500) return;
    if (write && ctx.status < 300) await h.consistency.afterWrite(ctx);
    // A read of records PocketBase answered (a fallback) moves the caller's watermark too.
    else if (kind === 'read') await h.consistency.afterUpstreamRead(ctx);
  };
  /** Downloads: a sidecar file-token handle in `?token=` becomes PocketBase's file token. */
  const files: Middleware = async (ctx) => {
    const t = targetOf(ctx);
    const params = new URLSearchParams(t.query);
    const handle = params.get('token');
    if (!handle) return forward(ctx, async () => {});
    const pbToken = await h.sessions.unwrapFileToken(handle);
    if (pbToken) params.set('token', pbToken);
    else params.delete('token');
    const qs = params.toString();
    return h.forwarder.stream(ctx, { path: qs ? `${t.path}?${qs}` : t.path });
  };
  /** Closed unless the superuser API is exposed: PocketBase's 404, as if the route did not exist. */
  const superuserApi: Middleware = (ctx, next) => (h.gate.exposeSuperuserApi ? next() : notFound(ctx, next));
  /** Any route of the `_superusers` collection (however it is spelled) belongs to the superuser API. */
  const collectionGuard: Middleware = (ctx, next) => {
    const c = targetOf(ctx).collection?.ref;
    return c?.id === SUPERUSERS.id ? superuserApi(ctx, next) : next();
  };
  const dashboard: Middleware = (ctx, next) => (h.gate.exposeDashboard ? next() : notFound(ctx, next));

  function route(methods: string[] | 'all', path: string | string[], kind: RouteKind, ...handlers: Middleware[]): void {
    const tag: Middleware = (ctx: Context, next: Next) => {
      ctx.state.route = classify(kind, ctx.method, ctx.get('content-type'));
      return next();
    };
    const guard = kind === 'admin' ? [superuserApi] : kind === 'dashboard' ? [dashboard] : [collectionGuard];
    const chain = [tag, ...guard, limitBody, h.rateLimit, ...handlers];
    for (const p of Array.isArray(path) ? path : [path]) {
      if (methods === 'all') router.all(p, ...chain);
      else router.register(p, methods, chain);
    }
  }

  // The sidecar's own routes.
  route(['GET', 'HEAD'], '/api/hapta/health', 'hapta', h.health);
  route(['GET'], '/api/hapta/metrics', 'hapta', h.metrics);
  route(['GET', 'HEAD'], '/api/hapta/feeds/:profile', 'feeds', h.feeds, notFound);
  route(['POST'], '/api/hapta/logout', 'hapta', h.auth.logout);
  route(['POST'], '/api/hapta/sessions/revoke', 'hapta', h.auth.revokeSessions);
  route('all', ['/api/hapta', '/api/hapta/{*rest}'], 'hapta', notFound);
  // The change log is PocketBase-internal: never reachable through the sidecar's port.
  route('all', ['/api/hapta-sync', '/api/hapta-sync/{*rest}'], 'hapta', notFound);

  // Records: answered from the replica where certain, else forwarded.
  route(['GET', 'HEAD'], '/api/collections/:collection/records', 'read', h.reads, forward);
  route(['GET', 'HEAD'], '/api/collections/:collection/records/:id', 'read', h.reads, forward);
  route(['POST'], '/api/collections/:collection/records', 'write', h.writes, forward);
  route(['PATCH', 'DELETE'], '/api/collections/:collection/records/:id', 'write', h.writes, forward);
  route(['POST'], '/api/batch', 'batch', h.writes, forward);

  // Authentication: a PocketBase token never reaches the client.
  route(['POST'], '/api/collections/:collection/auth-with-password', 'auth', h.auth.authWithPassword);
  route(['POST'], ['/api/collections/:collection/auth-with-otp', '/api/collections/:collection/auth-with-oauth2'], 'auth', h.auth.authWith);
  route(['POST'], '/api/collections/:collection/auth-refresh', 'auth', h.auth.authRefresh);
  route('all', [
    '/api/collections/:collection/auth-methods',
    '/api/collections/:collection/request-otp',
    '/api/collections/:collection/request-password-reset', '/api/collections/:collection/confirm-password-reset',
    '/api/collections/:collection/request-verification', '/api/collections/:collection/confirm-verification',
    '/api/collections/:collection/request-email-change', '/api/collections/:collection/confirm-email-change',
    '/api/oauth2-redirect',
  ], 'auth', forward);
  route(['POST'], '/api/files/token', 'auth', h.auth.fileToken);
  route(['GET', 'HEAD'], '/api/files/:collection/:recordId/:filename', 'files', files);
  route('all', ['/api/realtime'], 'realtime', h.realtime, forward);

  // The superuser API: settings, logs, backups, crons, collections admin, impersonation.
  route(['POST'], '/api/collections/:collection/impersonate/:id', 'admin', h.auth.impersonate);
  route('all', [
    '/api/settings', '/api/settings/{*rest}', '/api/logs', '/api/logs/{*rest}', '/api/backups', '/api/backups/{*rest}',
    '/api/crons', '/api/crons/{*rest}', '/api/collections', '/api/collections/', '/api/collections/import',
    '/api/collections/meta/{*rest}', '/api/collections/:collection', '/api/collections/:collection/truncate',
    '/api/collections/:collection/impersonate/{*rest}',
  ], 'admin', forward);

  // PocketBase's dashboard.
  route('all', ['/_', '/_/{*rest}'], 'dashboard', forward);

  // Everything else PocketBase serves (health, other collection routes, pb_public files, hooks' routes).
  route('all', ['/api/{*rest}'], 'api', forward);
  route('all', ['/', '/{*rest}'], 'other', forward);
  return router;
}
