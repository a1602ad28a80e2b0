// Assembles the sidecar: the Koa application with its routes, the sync engine and its wake-up sources,
// sharing one upstream pool. `createSidecar(config)` is what the server entry point and the tests start.
import Router from '@koa/router';
import Koa from 'koa';
import { createServer, type Server } from 'node:http';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { HaptaConfig } from '../config.js';
import { ChangeSource } from '../replica/change-source.js';
import { createLogger, type Logger } from '../replica/log.js';
import { RealtimeWaker } from '../replica/realtime-waker.js';
import { Replicator } from '../replica/replicator.js';
import { SchemaWatcher } from '../replica/schema-watcher.js';
import { SuperuserSession, Upstream } from '../replica/upstream.js';
import { errorHandler, sendError } from './errors.js';
import { healthRoute, metricsRoute } from './health.js';
import { Metrics } from './metrics.js';
import { createProxy } from './proxy.js';
import { requestCounter } from './request-counter.js';

export interface Sidecar {
  app: Koa;
  server: Server;
  url: string;
  replicator: Replicator;
  metrics: Metrics;
  upstream: Upstream;
  stop(): Promise<void>;
}

export interface SidecarDeps {
  log?: Logger;
  defaultMetrics?: boolean;
}

export async function createSidecar(config: HaptaConfig, deps: SidecarDeps = {}): Promise<Sidecar> {
  const log = deps.log ?? createLogger(config.logLevel);
  const metrics = new Metrics({ defaultMetrics: deps.defaultMetrics });
  const upstream = new Upstream({
    url: config.pbUrl, timeoutMs: config.upstream.timeoutMs, connections: config.upstream.connections,
    onRequest: (purpose) => metrics.upstreamRequests.inc({ purpose }),
  });
  const session = new SuperuserSession(upstream, config.superuserEmail, config.superuserPassword);
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });

  let waker: RealtimeWaker | null = null;
  const replicator = new Replicator(new ChangeSource(session, config.replica.consumerId), {
    dataDir,
    batchSize: config.replica.batchSize,
    bootstrapPageSize: config.replica.bootstrapPageSize,
    pollIntervalMs: config.replica.pollIntervalMs,
    includeSystemCollections: config.replica.includeSystemCollections,
    log: log.child({ component: 'replica' }),
    onApplied: ({ changes, lagMs }) => {
      metrics.replicaChanges.inc(changes);
      metrics.replicaLag.observe(lagMs);
      void waker?.refresh();
    },
    onCopied: ({ collection }) => metrics.tableCopies.inc({ collection }),
    onSwap: () => void waker?.refresh(),
  });
  waker = new RealtimeWaker({
    upstream, session, log: log.child({ component: 'realtime' }),
    topics: () => replicator.store?.collections().map((c) => c.id) ?? [],
    onEvent: () => replicator.wake(),
  });
  const watcher = new SchemaWatcher({
    dir: resolve(config.replica.migrationsDir), watch: config.replica.watchMigrations,
    intervalMs: config.replica.schemaCheckIntervalMs, onChange: () => replicator.wake({ schema: true }),
  });

  const app = new Koa();
  app.proxy = false;
  app.silent = true;
  // Streams cut by a departing client (realtime, downloads) are normal; anything else is logged.
  app.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
    log.warn('response error', { error: err.message });
  });
  const router = new Router();
  router.get('/api/hapta/health', healthRoute(replicator));
  router.head('/api/hapta/health', healthRoute(replicator));
  router.get('/api/hapta/metrics', metricsRoute(metrics, replicator));
  // The sync endpoints are PocketBase-internal: never reachable through the public port.
  router.all('/api/hapta-sync/{*rest}', (ctx) => sendError(ctx, 404, "The requested resource wasn't found."));
  router.all('/api/hapta/{*rest}', (ctx) => sendError(ctx, 404, "The requested resource wasn't found."));

  app.use(errorHandler(log));
  app.use(requestCounter(metrics));
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use(createProxy({ upstream }));

  const server = createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((res) => server.listen(config.port, config.host, res));
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.address}:${addr.port}`;

  replicator.start();
  waker.start();
  watcher.start();
  log.info('sidecar listening', { url, pocketbase: config.pbUrl });

  return {
    app, server, url, replicator, metrics, upstream,
    async stop() {
      await watcher.stop();
      await waker!.stop();
      await replicator.stop();
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
      await upstream.close();
    },
  };
}
