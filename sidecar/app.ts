// Assembles the sidecar: the Koa application with its middleware and routes, the sync engine and its
// wake-up sources, sessions and the gate, sharing one upstream pool (and one Redis connection when
// configured). `createSidecar(config)` is what the server entry point and the tests start.
import Router from '@koa/router';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { createServer, type Server } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { HaptaConfig } from '../config.js';
import { ChangeSource } from '../replica/change-source.js';
import { FeedIndex } from '../replica/feed-index.js';
import { createLogger, type Logger } from '../lib/log.js';
import { RealtimeWaker } from '../replica/realtime-waker.js';
import { Replicator } from '../replica/replicator.js';
import { SchemaWatcher } from '../replica/schema-watcher.js';
import { SuperuserSession, Upstream } from '../lib/upstream.js';
import { authRoutes } from './auth-routes.js';
import { errorHandler, sendError } from './errors.js';
import { bodyLimit, limitedBody } from './gate/body-limit.js';
import { clientIp } from './gate/client-ip.js';
import { MemoryCounters, RedisCounters } from './gate/counters.js';
import { LoginGuard } from './gate/login-guard.js';
import { rateLimits } from './gate/rate-limits.js';
import { routeGuard } from './gate/route-guard.js';
import { healthRoute, metricsRoute } from './health.js';
import { identity, mapFileToken, upstreamIdentity } from './identity.js';
import { Metrics } from './metrics.js';
import { createFeedRoutes, QueryPool } from './feeds/index.js';
import { feedIndexSpec } from './feeds/profiles.js';
import { createProxy } from './proxy.js';
import { createReadRoutes } from './reads/index.js';
import { requesterFrom } from './requester.js';
import { cors } from './cors.js';
import { createWriteRoutes } from './writes/index.js';
import { requestCounter } from './request-counter.js';
import { SessionManager } from './sessions/manager.js';
import { RedisSessionStore } from './sessions/redis-store.js';
import { loadSessionSecret } from './sessions/secret.js';
import { SqliteSessionStore } from './sessions/store.js';
import { SessionValidator } from './sessions/validator.js';

export interface Sidecar {
  app: Koa;
  server: Server;
  url: string;
  replicator: Replicator;
  sessions: SessionManager;
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
  const superuser = new SuperuserSession(upstream, config.superuserEmail, config.superuserPassword);
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const redis = config.redisUrl ? new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true }) : null;
  redis?.on('error', (err) => log.warn('redis error', { error: err.message }));

  const secret = await loadSessionSecret({ configured: config.sessions.secret, dataDir, redis });
  const sessionStore = redis ? new RedisSessionStore(redis) : new SqliteSessionStore(join(dataDir, 'sessions.db'));
  const sessions = new SessionManager(secret, sessionStore, upstream, config.sessions, log.child({ component: 'sessions' }));
  const validator = new SessionValidator(sessions, { intervalMs: config.sessions.validateIntervalMs, redis, log });
  const counters = redis ? new RedisCounters(redis) : new MemoryCounters();
  const guard = new LoginGuard(counters, config.loginGuard);
  const identityOpts = { acceptPocketBaseTokens: config.sessions.acceptPocketBaseTokens, clientIpHeader: config.gate.clientIpHeader };

  const indexSpec = feedIndexSpec(config.feeds);
  // Feed queries run on worker threads with their own read-only connections to the replica file.
  const feedPool = new QueryPool();
  const replicator = new Replicator(new ChangeSource(superuser, config.replica.consumerId), {
    dataDir,
    batchSize: config.replica.batchSize,
    bootstrapPageSize: config.replica.bootstrapPageSize,
    pollIntervalMs: config.replica.pollIntervalMs,
    includeSystemCollections: config.replica.includeSystemCollections,
    log: log.child({ component: 'replica' }),
    onApplied: ({ changes, lagMs }) => {
      metrics.replicaChanges.inc(changes);
      metrics.replicaLag.observe(lagMs);
    },
    onCopied: ({ collection }) => metrics.tableCopies.inc({ collection }),
    prepareStore: (store) => new FeedIndex(store, indexSpec).attach(),
    onSwap: (store) => feedPool.setReplica(store.path),
  });
  // An auth record that changed or disappeared may have lost the right to its sessions.
  replicator.onApplied((changes) => {
    for (const ch of changes) {
      if (replicator.store?.entry(ch.coll)?.collection.type === 'auth') {
        validator.checkRecord(ch.coll, ch.rid).catch(() => {});
      }
    }
  });
  const waker = new RealtimeWaker({
    upstream, session: superuser, log: log.child({ component: 'realtime' }),
    onChange: (seq) => replicator.announced(seq),
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
  const auth = authRoutes({
    upstream, sessions, guard, identity: identityOpts, loginWindowMs: config.loginGuard.windowMs,
    collectionId: (nameOrId) => {
      if (nameOrId === '_superusers' || nameOrId === 'pbc_3142635823') return 'pbc_3142635823';
      const c = replicator.store?.collections().find((x) => x.id === nameOrId || x.name === nameOrId);
      return c?.id ?? null;
    },
  });
  const identifyRequester = requesterFrom(replicator);
  const feeds = createFeedRoutes({ replicator, profiles: config.feeds, identify: identifyRequester, pool: feedPool });
  const notFound = new Router();
  // The sync endpoints are PocketBase-internal: never reachable through the public port.
  notFound.all('/api/hapta-sync/{*rest}', (ctx) => sendError(ctx, 404, "The requested resource wasn't found."));
  notFound.all('/api/hapta/{*rest}', (ctx) => sendError(ctx, 404, "The requested resource wasn't found."));

  app.use(errorHandler(log));
  app.use(requestCounter(metrics));
  app.use(cors(config.gate.corsOrigins));
  app.use(clientIp(config.gate.trustedProxies));
  app.use(routeGuard(config.gate));
  app.use(bodyLimit({ json: config.gate.maxJsonBody, upload: config.gate.maxUploadBody }));
  app.use(identity(sessions, identityOpts));
  if (config.rateLimits.enabled) app.use(rateLimits({ rules: config.rateLimits, redis }));
  app.use(router.routes());
  app.use(auth.routes());
  app.use(feeds);
  app.use(notFound.routes());
  const reads = createReadRoutes({
    replicator,
    identify: identifyRequester,
    onFallback: (reason) => metrics.readFallbacks.inc({ reason }),
  });
  // A PocketBase token passed through (HAPTA_ACCEPT_PB_TOKENS): only PocketBase knows who that is.
  app.use(async function replicaReads(ctx, next) {
    return ctx.state.passThroughAuth ? next() : reads(ctx, next);
  });
  app.use(createWriteRoutes({
    replicator, upstream, hooks: config.writeHooks,
    prepareUpstream: (ctx, headers) => upstreamIdentity(ctx, sessions, identityOpts, headers),
    maxJsonBody: config.gate.maxJsonBody, maxUploadBody: config.gate.maxUploadBody,
    onRejected: (reason) => metrics.writesRejected.inc({ reason }),
    onSynced: (ms) => metrics.writeSync.observe(ms),
  }));
  app.use(createProxy({
    upstream,
    prepare: async (ctx, headers) => {
      await upstreamIdentity(ctx, sessions, identityOpts, headers);
      return mapFileToken(ctx, sessions);
    },
    body: (ctx) => limitedBody(ctx.req, ctx.state.bodyLimit as number, () => (ctx.state.bodyTooLarge = true)),
  }));

  const server = createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((res) => server.listen(config.port, config.host, res));
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.address}:${addr.port}`;

  replicator.start();
  waker.start();
  watcher.start();
  validator.start();
  log.info('sidecar listening', { url, pocketbase: config.pbUrl, redis: redis ? 'on' : 'off' });

  return {
    app, server, url, replicator, sessions, metrics, upstream,
    async stop() {
      await validator.stop();
      await watcher.stop();
      await waker.stop();
      await replicator.stop();
      await feedPool.close();
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
      await upstream.close();
      await sessionStore.close();
      counters.close();
      await redis?.quit().catch(() => {});
    },
  };
}
