// GET /api/hapta/health and GET /api/hapta/metrics.
import type { Context } from 'koa';
import type { Replicator } from '../replica/replicator.js';
import type { Metrics } from './metrics.js';

export function healthRoute(replicator: Replicator) {
  return function health(ctx: Context): void {
    const ready = replicator.ready;
    ctx.status = ready ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      status: ready ? 'ok' : 'starting',
      replica: {
        ready,
        lagMs: replicator.lagMs,
        collections: replicator.store?.collections().length ?? 0,
        seq: replicator.seq,
      },
    };
  };
}

export function metricsRoute(metrics: Metrics, replicator: Replicator) {
  return async function metricsHandler(ctx: Context): Promise<void> {
    metrics.replicaSeq.set(replicator.seq);
    ctx.set('Content-Type', metrics.registry.contentType);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await metrics.registry.metrics();
  };
}
