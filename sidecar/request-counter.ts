// Counts every answered request as hapta_requests_total{route, upstream}: the route class, and whether
// PocketBase was involved (handlers that call PocketBase set ctx.state.upstream).
import type { Context, Next } from 'koa';
import type { Metrics } from './metrics.js';

export function routeClass(method: string, path: string): string {
  if (path.startsWith('/api/hapta/')) return 'hapta';
  if (path.startsWith('/api/realtime')) return 'realtime';
  if (path.startsWith('/api/files/')) return 'files';
  if (path === '/api/batch') return 'batch';
  if (/^\/api\/collections\/[^/]+\/(auth-|request-|confirm-|impersonate)/.test(path)) return 'auth';
  if (/^\/api\/collections\/[^/]+\/records/.test(path)) return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
  if (path.startsWith('/api/')) return 'api';
  return 'other';
}

export function requestCounter(metrics: Metrics) {
  return async function countRequests(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } finally {
      metrics.requests.inc({ route: routeClass(ctx.method, ctx.path), upstream: ctx.state.upstream === true ? 'true' : 'false' });
    }
  };
}
