// The Koa application: the edge (canonical target, request counter, CORS, client IP, identity) in front
// of the one route table (routes.ts). `createApp(services)` builds it from running services;
// `createSidecar(config)` is services + app + listening server, what the entry point and the tests start.
import Koa from 'koa';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HaptaConfig } from '../config.js';
import { authHandlers } from './auth.js';
import { cors } from './cors.js';
import { errorHandler } from './errors.js';
import { clientIp } from './gate/client-ip.js';
import { rateLimits } from './gate/rate-limits.js';
import { healthRoute, metricsRoute } from './health.js';
import { canonicalTarget, collectionRefs } from './http/target.js';
import { identity } from './identity.js';
import { requestCounter } from './request-counter.js';
import { createRouter } from './routes.js';
import { createServices, type Services, type ServicesDeps } from './services.js';

/**
 * Shutdown: while draining, health answers 503 `stopping` (a balancer stops sending), every answer closes
 * its connection, and stop() waits for the requests under way (counted until their response is sent or
 * cut; realtime streams aside, they end when the connections are closed).
 */
export class Drain {
  draining = false;
  inFlight = 0;

  middleware() {
    return async (ctx: Koa.Context, next: Koa.Next): Promise<void> => {
      if (ctx.method === 'GET' && ctx.path === '/api/realtime') return next();
      this.inFlight++;
      ctx.res.once('close', () => this.inFlight--);
      await next();
      if (this.draining && !ctx.headerSent) ctx.set('Connection', 'close');
    };
  }
}

export function createApp(s: Services, drain = new Drain()): Koa {
  const { config, replicator } = s;
  const app = new Koa();
  app.proxy = false;
  app.silent = true;
  // Streams cut by a departing client (realtime, downloads) are normal; anything else is logged.
  app.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ECONNABORTED') return;
    s.log.warn('response error', { error: err.message });
  });
  const router = createRouter({
    forwarder: s.forwarder,
    consistency: s.consistency,
    sessions: s.sessions,
    auth: authHandlers({
      forwarder: s.forwarder, sessions: s.sessions, guard: s.loginGuard, loginWindowMs: config.loginGuard.windowMs,
      afterLogin: (ctx, sid) => s.consistency.afterWrite(ctx, sid),
      collectionId: (nameOrId: string) => {
        const refs = collectionRefs(replicator.store);
        return refs.find((c) => c.id === nameOrId || c.name === nameOrId)?.id ?? null;
      },
    }),
    reads: s.reads,
    writes: s.writes,
    feeds: s.feeds,
    // PocketBase's realtime API answered from the replica, or forwarded (HAPTA_REALTIME_FROM_REPLICA).
    realtime: config.realtime.fromReplica ? s.realtime.routes : (_ctx, next) => next(),
    health: healthRoute(replicator, { maxLagMs: config.health.maxLagMs, pbUrl: config.pbUrl, draining: () => drain.draining }),
    metrics: metricsRoute(s.metrics, replicator),
    rateLimit: config.rateLimits.enabled ? rateLimits({ rules: config.rateLimits, redis: s.redis }) : (_ctx, next) => next(),
    gate: config.gate,
  });

  app.use(errorHandler(s.log));
  app.use(requestCounter(s.metrics));
  app.use(canonicalTarget(() => collectionRefs(replicator.store)));
  app.use(drain.middleware());
  app.use(cors(config.gate.corsOrigins));
  app.use(clientIp(config.gate.trustedProxies));
  app.use(identity(s.sessions, s.forwarder.identity));
  app.use(router.routes());
  return app;
}

export interface Sidecar extends Services {
  app: Koa;
  server: Server;
  url: string;
  stop(): Promise<void>;
}

export async function createSidecar(config: HaptaConfig, deps: ServicesDeps = {}): Promise<Sidecar> {
  const services = await createServices(config, deps);
  const drain = new Drain();
  const app = createApp(services, drain);
  // Go's http.Server accepts request lines and headers up to 1 MiB (DefaultMaxHeaderBytes); so does this.
  const server = createServer({ maxHeaderSize: 1 << 20 }, app.callback());
  server.keepAliveTimeout = 65_000;
  // A malformed request never reaches Koa; answer it as Go's server does and drop the connection.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${status}`);
  });
  await new Promise<void>((res) => server.listen(config.port, config.host, res));
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.address}:${addr.port}`;
  services.start();
  services.log.info('sidecar listening', { url, pocketbase: config.pbUrl, redis: services.redis ? 'on' : 'off' });
  return {
    ...services, app, server, url,
    async stop() {
      // No new connections; requests under way finish (within the bound), with the loops still running
      // (a read may wait for the replica, a write reads the log head), then everything is closed.
      drain.draining = true;
      const closed = new Promise<void>((res) => server.close(() => res()));
      const deadline = Date.now() + config.health.drainMs;
      while (drain.inFlight > 0 && Date.now() < deadline) {
        server.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 25));
      }
      await services.stopLoops();
      server.closeAllConnections();
      await closed;
      await services.close();
    },
  };
}
