// The sidecar's services, wired from the configuration: the sync engine and its wake-up sources, sessions
// and the gate, the read, write and feed handlers, sharing one upstream pool and one forwarder (and one
// Redis connection when configured). app.ts puts them behind the route table.
import { Redis } from 'ioredis';
import type Koa from 'koa';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { HaptaConfig } from '../config.js';
import { createLogger, type Logger } from '../lib/log.js';
import { SuperuserSession, Upstream } from '../lib/upstream.js';
import { ChangeSource } from '../replica/change-source.js';
import { FeedIndex } from '../replica/feed-index.js';
import { RealtimeWaker } from '../replica/realtime-waker.js';
import { Replicator } from '../replica/replicator.js';
import { SchemaWatcher } from '../replica/schema-watcher.js';
import { SyncThread } from '../replica/sync-thread.js';
import { createFeedRoutes, QueryPool } from './feeds/index.js';
import { feedIndexSpec } from './feeds/profiles.js';
import { MemoryCounters, RedisCounters } from './gate/counters.js';
import { LoginGuard } from './gate/login-guard.js';
import { Consistency } from './consistency.js';
import { Forwarder } from './http/forward.js';
import { Metrics } from './metrics.js';
import { createRealtime, type Realtime } from './realtime/index.js';
import { createReadRoutes } from './reads/index.js';
import { ReadPlacement } from './reads/placement.js';
import { requesterFrom } from './requester.js';
import { SessionManager } from './sessions/manager.js';
import { RedisSessionStore } from './sessions/redis-store.js';
import { loadSessionSecret } from './sessions/secret.js';
import { SqliteSessionStore } from './sessions/store.js';
import { SessionValidator } from './sessions/validator.js';
import { createWriteRoutes } from './writes/index.js';

/** Everything the app needs, built from the configuration; loops are started by start(). */
export interface Services {
  config: HaptaConfig;
  log: Logger;
  metrics: Metrics;
  upstream: Upstream;
  superuser: SuperuserSession;
  redis: Redis | null;
  sessions: SessionManager;
  validator: SessionValidator;
  loginGuard: LoginGuard;
  replicator: Replicator;
  /** The realtime stream and change-log reads on their own thread (null: HAPTA_SYNC_THREAD=false). */
  syncThread: SyncThread | null;
  feedPool: QueryPool;
  forwarder: Forwarder;
  /** Watermarks: read-your-writes and monotonic reads. */
  consistency: Consistency;
  /** Records list/view from the replica (next(): PocketBase). */
  reads: Koa.Middleware;
  /** Records create/update/delete and batch, validated (next(): PocketBase). */
  writes: Koa.Middleware;
  feeds: Koa.Middleware;
  /** PocketBase's realtime API answered from the replica (custom topics relayed). */
  realtime: Realtime;
  /** Starts the background loops (sync, wake-ups, schema watch, session validation). */
  start(): void;
  /** Stops the loops (and the feed pool); then close() releases connections. */
  stopLoops(): Promise<void>;
  close(): Promise<void>;
}

export interface ServicesDeps {
  log?: Logger;
  defaultMetrics?: boolean;
}

export async function createServices(config: HaptaConfig, deps: ServicesDeps = {}): Promise<Services> {
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
  const feedPool = new QueryPool(undefined, undefined, config.replica.readThreads < 0 ? undefined : config.replica.readThreads, config.replica.threadNice, config.replica.feedThreadNice);
  const source = new ChangeSource(superuser, config.replica.consumerId);
  // The realtime stream and the change-log reads on a thread of their own (or on this one, as the waker).
  let replicator: Replicator | null = null;
  const syncThread = config.replica.syncThread ? new SyncThread({
    url: config.pbUrl, timeoutMs: config.upstream.timeoutMs, consumerId: config.replica.consumerId, batchSize: config.replica.batchSize,
    session: superuser, source, log: log.child({ component: 'replica' }),
    onAnnounced: (seq) => replicator?.announced(seq),
    onAhead: () => replicator?.wake(),
    onRequest: (purpose) => metrics.upstreamRequests.inc({ purpose }),
    onRead: (by) => metrics.replicaReads.inc({ by }),
  }) : null;
  replicator = new Replicator(source, {
    reader: syncThread ?? undefined,
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
  const waker = syncThread ?? new RealtimeWaker({
    upstream, session: superuser, log: log.child({ component: 'realtime' }),
    onChange: (seq) => replicator?.announced(seq),
  });
  const watcher = new SchemaWatcher({
    dir: resolve(config.replica.migrationsDir), watch: config.replica.watchMigrations,
    intervalMs: config.replica.schemaCheckIntervalMs, onChange: () => replicator.wake({ schema: true }), log: log.child({ component: 'schema' }),
  });

  const forwarder = new Forwarder(upstream, sessions, identityOpts, (request) => source.writeThenHead(request));
  const consistency = new Consistency({
    replicator, source, shared: sessionStore instanceof RedisSessionStore ? sessionStore : null, waitMs: config.consistency.readWaitMs,
    ttlMs: 7 * 86_400_000, metrics, log: log.child({ component: 'consistency' }),
  });
  const identifyRequester = requesterFrom(replicator, config.consistency.readWaitMs);
  const feeds = createFeedRoutes({
    replicator, profiles: config.feeds, identify: identifyRequester, pool: feedPool, ...config.feedEngine,
    readable: (ctx) => consistency.readable(ctx), afterRead: (ctx) => consistency.afterRead(ctx),
    onRanked: (profile, stats, ms) => metrics.feedRanked(profile, stats, ms),
    onPage: (profile, kept) => metrics.feedPages.inc({ profile, result: kept ? 'kept' : 'rendered' }),
  });
  const readRoutes = createReadRoutes({
    replicator, pool: feedPool,
    placement: new ReadPlacement(config.replica.inlineReadMs, (here) => metrics.listReads.inc({ placement: here ? 'main' : 'thread' })),
    identify: identifyRequester,
    onFallback: (reason) => metrics.readFallbacks.inc({ reason }),
    onThreadError: (err) => log.warn('a read thread failed; PocketBase answers', { code: err.code, error: err.message }),
    readable: (ctx) => consistency.readable(ctx), afterRead: (ctx) => consistency.afterRead(ctx),
  });
  // After the read routes: their onApplied listener drops the cached query results of the tables a batch
  // changed, and realtime's evaluates rules over the same statement cache.
  const realtime = createRealtime({
    replicator, sessions, forwarder, upstream, log: log.child({ component: 'realtime-api' }),
    identify: identifyRequester, corsOrigins: config.gate.corsOrigins, limits: config.realtime, writeWaitMs: config.consistency.readWaitMs,
  });
  // With realtime answered from the replica, a writer's next write waits until the replica has read its
  // previous one (Realtime.beforeWrite): close writes are never read together, their events never merged.
  const writeConsistency = config.realtime.fromReplica ? {
    readable: (ctx: Koa.Context) => consistency.readable(ctx),
    beforeWrite: (ctx: Koa.Context) => realtime.beforeWrite(ctx),
    afterWrite: async (...args: Parameters<Consistency['afterWrite']>) => {
      await consistency.afterWrite(...args);
      realtime.afterWrite(args[0]);
    },
  } : consistency;
  // A PocketBase token passed through (HAPTA_ACCEPT_PB_TOKENS): only PocketBase knows who that is.
  const reads: Koa.Middleware = (ctx, next) => (ctx.state.passThroughAuth ? next() : readRoutes(ctx, next));
  const writes = createWriteRoutes({
    replicator, forwarder, hooks: config.writeHooks,
    maxJsonBody: config.gate.maxJsonBody, maxUploadBody: config.gate.maxUploadBody,
    onRejected: (reason) => metrics.writesRejected.inc({ reason }),
    consistency: writeConsistency,
  });

  const loops = [replicator, waker, watcher, validator];
  return {
    config, log, metrics, upstream, superuser, redis, sessions, validator, loginGuard: guard, replicator, syncThread, feedPool,
    forwarder, consistency, reads, writes, feeds, realtime,
    start() {
      replicator.start();
      waker.start();
      watcher.start();
      validator.start();
    },
    async stopLoops() {
      await realtime.close();
      for (const loop of [...loops].reverse()) await loop.stop();
      await feedPool.close();
    },
    async close() {
      await upstream.close();
      await sessionStore.close();
      counters.close();
      await redis?.quit().catch(() => {});
    },
  };
}
