// Counts every answered request as hapta_requests_total{route, upstream}: the route's kind (routes.ts), and whether
// PocketBase was involved (handlers that call PocketBase set ctx.state.upstream).
import type { Context, Next } from 'koa';
import type { Metrics } from './metrics.js';
import { routeInfo } from './routes.js';

export function requestCounter(metrics: Metrics) {
  return async function countRequests(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } finally {
      metrics.requests.inc({ route: routeInfo(ctx).kind, upstream: ctx.state.upstream === true ? 'true' : 'false' });
    }
  };
}
