// Hapta's configuration: every option with its type, default, environment variable and a one-line
// description. Read once at start-up (loadConfig) and passed into constructors; nothing else reads
// process.env. README's configuration table is printed from OPTIONS by `npm run config:table`.
import { compiled } from './lib/runtime.js';
import type { RealtimeLimits } from './sidecar/realtime/index.js';
import type { WriteHooks } from './sidecar/writes/hooks.js';

export interface HaptaConfig {
  port: number;
  host: string;
  pbUrl: string;
  pbDataDir: string;
  dataDir: string;
  superuserEmail: string;
  superuserPassword: string;
  production: boolean;
  /** Path of the user config module (feeds, writeHooks); '' for the reference schema's. */
  configModule: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  replica: {
    pollIntervalMs: number;
    batchSize: number;
    bootstrapPageSize: number;
    schemaCheckIntervalMs: number;
    migrationsDir: string;
    watchMigrations: boolean;
    includeSystemCollections: boolean;
    consumerId: string;
    readThreads: number;
    inlineReadMs: number;
    threadNice: number;
    feedThreadNice: number;
    syncThread: boolean;
  };
  consistency: {
    readWaitMs: number;
  };
  /** PocketBase's realtime API answered from the replica (fromReplica), its caps and timeouts. */
  realtime: RealtimeLimits & { fromReplica: boolean };
  health: {
    maxLagMs: number;
    /** On SIGTERM: how long requests under way may take to finish before connections are closed. */
    drainMs: number;
  };
  upstream: {
    timeoutMs: number;
    connections: number;
  };
  redisUrl: string;
  sessions: {
    secret: string;
    graceMs: number;
    maxKeyTtlSeconds: number;
    acceptPocketBaseTokens: boolean;
    pbRefreshBeforeSeconds: number;
    validateIntervalMs: number;
  };
  gate: {
    trustedProxies: string;
    clientIpHeader: string;
    maxJsonBody: number;
    maxUploadBody: number;
    exposeDashboard: boolean;
    exposeSuperuserApi: boolean;
    corsOrigins: string;
  };
  rateLimits: Record<RouteClass, RateLimitRule> & { enabled: boolean };
  loginGuard: {
    maxFailuresPerIdentityIp: number;
    maxFailuresPerIdentity: number;
    maxFailuresPerIp: number;
    windowMs: number;
  };
  /** Ranking profiles served at /api/hapta/feeds/{name}. Declared here, in code (not environment). */
  feeds: Record<string, FeedProfile>;
  /** Tuning of the feed engine (sidecar/feeds/routes.ts); `window` is declared in code. */
  feedEngine: {
    maxItems: number;
    snapshotTtlMs: number;
    maxSnapshots: number;
    reuseMs: number;
    answerCacheBytes: number;
    shareRankings: boolean;
    maxSharedDepth: number;
    window: FeedWindow;
  };
  /**
   * Validators and hooks per collection and action, run before a write is validated and forwarded:
   * `{ posts: { create: [async ({ body }) => ({ body: { ...body, title: String(body.title).trim() } })] } }`.
   * A hook may return a changed body, or `{ reject: { status, message, data } }`. Declared in code.
   */
  writeHooks: WriteHooks;
}

/**
 * A feed: the records of one collection that the requester may list, ranked by a score made of weighted
 * terms. Every term is optional; with no term the feed is newest first by `freshness.field`.
 */
export interface FeedProfile {
  collection: string;
  /** Relevance: FTS5 bm25 over these text fields when the request has `q`. */
  text?: { fields: string[]; weight: number };
  /** The feed only answers requests with `q` (a search). */
  requireQuery?: boolean;
  /** Freshness: exponential decay with a half-life, or gravity (score / (age_hours + 2)^gravity). */
  freshness?: { field: string; weight: number; halfLifeHours?: number; gravity?: number };
  /** Interaction counts from records pointing at an item (likes.post), optionally time-decayed. */
  interactions?: { collection: string; field: string; weight: number; timeField?: string; halfLifeHours?: number }[];
  /** The requester's follows: boost (or keep only) items whose author they follow. */
  following?: { collection: string; follower: string; following: string; authorField: string; boost: number; only?: boolean };
  /** Drop items related to the requester through these collections (blocks: blocker = me, blocked = author). */
  exclude?: { collection: string; requesterField: string; targetField: string; itemField: string }[];
}

/**
 * Sizes of a ranking's candidate windows (sidecar/feeds/window.ts): the first window takes the newest `m0`
 * items and the top `k0` of each counter (defaults: 2 * maxItems and maxItems), and each retry widens it;
 * after `maxAttempts` windows (0: none) every item is scored.
 */
export interface FeedWindow {
  m0?: number;
  k0?: number;
  maxAttempts: number;
}

/** Route classes the gate limits separately. */
export type RouteClass = 'auth' | 'write' | 'read' | 'upload' | 'realtime';

/** One rate-limit rule, in the reference config's shape: Max requests per Duration (ms), keyed by IP or user. */
export interface RateLimitRule {
  max: number;
  duration: number;
  /** true: one bucket per client IP; false: one per signed-in user (anonymous clients by IP). */
  ip: boolean;
  message: string;
}

type Kind = 'string' | 'number' | 'boolean';

interface Option {
  path: string;
  env: string;
  kind: Kind;
  default: string | number | boolean;
  description: string;
  values?: readonly string[];
}

export const DEFAULT_SUPERUSER_EMAIL = 'hapta@localhost.test';
export const DEFAULT_SUPERUSER_PASSWORD = 'hapta-local-dev-password';

export const OPTIONS: readonly Option[] = [
  { path: 'port', env: 'HAPTA_PORT', kind: 'number', default: 8080, description: 'Port the sidecar listens on.' },
  { path: 'host', env: 'HAPTA_HOST', kind: 'string', default: '127.0.0.1', description: 'Address the sidecar binds to (0.0.0.0 for all interfaces).' },
  { path: 'pbUrl', env: 'PB_URL', kind: 'string', default: 'http://127.0.0.1:8090', description: 'Base URL of PocketBase.' },
  { path: 'pbDataDir', env: 'PB_DATA_DIR', kind: 'string', default: './pb_data', description: "PocketBase's data directory (used by the launcher)." },
  { path: 'dataDir', env: 'HAPTA_DATA_DIR', kind: 'string', default: './hapta_data', description: 'Directory for the replica and the sidecar state.' },
  { path: 'superuserEmail', env: 'PB_SUPERUSER_EMAIL', kind: 'string', default: DEFAULT_SUPERUSER_EMAIL, description: "Email of the sidecar's PocketBase superuser (local default refused in production)." },
  { path: 'superuserPassword', env: 'PB_SUPERUSER_PASSWORD', kind: 'string', default: DEFAULT_SUPERUSER_PASSWORD, description: "Password of the sidecar's PocketBase superuser (local default refused in production)." },
  { path: 'production', env: 'NODE_ENV', kind: 'boolean', default: false, description: 'true when NODE_ENV=production: default credentials are refused.' },
  { path: 'configModule', env: 'HAPTA_CONFIG_MODULE', kind: 'string', default: '', description: "A module (.ts or .js) exporting `feeds` (ranking profiles) and `writeHooks` for your schema; empty: the reference schema's (see hapta.config.ts)." },
  { path: 'logLevel', env: 'HAPTA_LOG_LEVEL', kind: 'string', default: 'info', values: ['debug', 'info', 'warn', 'error'], description: 'Log level.' },
  { path: 'replica.pollIntervalMs', env: 'HAPTA_REPLICA_POLL_MS', kind: 'number', default: 1000, description: 'How often the change log is read when no realtime event wakes the reader.' },
  { path: 'replica.batchSize', env: 'HAPTA_REPLICA_BATCH', kind: 'number', default: 1000, description: 'Change-log rows read and applied per transaction (max 5000).' },
  { path: 'replica.bootstrapPageSize', env: 'HAPTA_BOOTSTRAP_PAGE', kind: 'number', default: 1000, description: 'Records per page when copying a collection.' },
  { path: 'replica.schemaCheckIntervalMs', env: 'HAPTA_SCHEMA_CHECK_MS', kind: 'number', default: 30000, description: 'Periodic schema comparison with PocketBase (a fallback; the change log carries schema changes).' },
  { path: 'replica.migrationsDir', env: 'HAPTA_MIGRATIONS_DIR', kind: 'string', default: './migrations', description: 'PocketBase migrations directory watched for schema changes.' },
  { path: 'replica.watchMigrations', env: 'HAPTA_WATCH_MIGRATIONS', kind: 'boolean', default: true, description: 'Watch the migrations directory with chokidar.' },
  { path: 'replica.includeSystemCollections', env: 'HAPTA_REPLICATE_SYSTEM', kind: 'boolean', default: false, description: 'Also replicate system collections (_superusers, _otps, ...).' },
  { path: 'replica.consumerId', env: 'HAPTA_CONSUMER_ID', kind: 'string', default: 'default', description: 'Name this sidecar reports to PocketBase so the change log is kept until it has read it.' },
  { path: 'replica.readThreads', env: 'HAPTA_READ_THREADS', kind: 'number', default: -1, description: 'Threads answering records lists from the replica, each with its own read-only connection; -1: one per core, up to 4; 0: none, the main thread answers them on its own connection (about a quarter less CPU per read, but every request then waits behind the reads there).' },
  { path: 'replica.inlineReadMs', env: 'HAPTA_INLINE_READ_MS', kind: 'number', default: 0.4, description: 'A records list whose shape (collection, and query with its values blanked) has run in less than this many ms (the lower quartile of its last runs) is answered on the main thread, where it costs less than the trip to a read thread; it goes back to the threads above twice this. 0: every list on the threads.' },
  { path: 'replica.syncThread', env: 'HAPTA_SYNC_THREAD', kind: 'boolean', default: true, description: "Listen to PocketBase's realtime stream and read the change log on a thread of their own, so a busy main thread delays a change only by the one turn in which it applies the batch. false: the main thread does both." },
  { path: 'replica.threadNice', env: 'HAPTA_THREAD_NICE', kind: 'number', default: 0, description: "Scheduling priority of the threads answering records lists (HAPTA_READ_THREADS) as a Linux nice value, 0 to 19: above 0 they give way to the main thread, which takes in and answers every request, whenever both want a core. 0: the process's own priority. Linux only (elsewhere the threads keep the process's priority)." },
  { path: 'replica.feedThreadNice', env: 'HAPTA_FEED_THREAD_NICE', kind: 'number', default: 0, description: "The same for the threads ranking feeds and answering searches. Above 0 views, counts and writes get faster and feed pages slower: at 10, on two busy cores at full size, feed p99s doubled (bench/README.md). 0: the process's own priority." },
  { path: 'upstream.timeoutMs', env: 'HAPTA_UPSTREAM_TIMEOUT_MS', kind: 'number', default: 30000, description: 'Timeout of a request to PocketBase (headers; streams are not cut).' },
  { path: 'consistency.readWaitMs', env: 'HAPTA_READ_WAIT_MS', kind: 'number', default: 1000, description: "How long a read may wait for the replica to reach the caller's watermark (its last write or newest read) before PocketBase answers it instead." },
  { path: 'health.drainMs', env: 'HAPTA_SHUTDOWN_DRAIN_MS', kind: 'number', default: 8000, description: 'On SIGTERM the sidecar stops accepting connections, answers health with 503 `stopping`, and lets requests under way finish for up to this long before it closes every connection (realtime streams included) and exits.' },
  { path: 'health.maxLagMs', env: 'HAPTA_HEALTH_MAX_LAG_MS', kind: 'number', default: 5000, description: 'Health answers 503 while the replica is behind the change log by more than this (a requested log read not applied for this long while PocketBase answers), so a balancer takes the sidecar out until it catches up; 0: off.' },
  { path: 'realtime.fromReplica', env: 'HAPTA_REALTIME_FROM_REPLICA', kind: 'boolean', default: true, description: "Answer PocketBase's realtime API from the replica (one change stream for any number of subscribers, rules per subscriber in SQL, custom topics relayed); false: /api/realtime is forwarded to PocketBase, one stream per subscriber." },
  { path: 'realtime.maxClients', env: 'HAPTA_REALTIME_MAX_CLIENTS', kind: 'number', default: 50000, description: 'Realtime clients (SSE streams) one sidecar holds; past it a new stream gets 429.' },
  { path: 'realtime.maxClientsPerIp', env: 'HAPTA_REALTIME_MAX_CLIENTS_PER_IP', kind: 'number', default: 1000, description: 'Realtime clients per client IP.' },
  { path: 'realtime.maxSubscriptions', env: 'HAPTA_REALTIME_MAX_SUBSCRIPTIONS', kind: 'number', default: 1000, description: "Topics one realtime client may subscribe to (PocketBase's limit: 1000)." },
  { path: 'realtime.maxTopicLength', env: 'HAPTA_REALTIME_MAX_TOPIC_LENGTH', kind: 'number', default: 2500, description: "Characters per realtime topic (PocketBase's limit: 2500)." },
  { path: 'realtime.idleTimeoutMs', env: 'HAPTA_REALTIME_IDLE_MS', kind: 'number', default: 300000, description: "A realtime stream ends this long after the last message sent (PocketBase's: 5 min)." },
  { path: 'realtime.maxLifetimeMs', env: 'HAPTA_REALTIME_LIFETIME_MS', kind: 'number', default: 1800000, description: "A realtime stream ends this long after it opened (PocketBase's: 30 min)." },
  { path: 'realtime.maxBufferedBytes', env: 'HAPTA_REALTIME_MAX_BUFFERED', kind: 'number', default: 8388608, description: 'A realtime client whose unsent events exceed this many bytes is disconnected (a client that stops reading).' },
  { path: 'realtime.sessionCheckMs', env: 'HAPTA_REALTIME_SESSION_CHECK_MS', kind: 'number', default: 5000, description: 'How often the sessions behind realtime clients are checked; an ended session closes its streams.' },
  { path: 'upstream.connections', env: 'HAPTA_UPSTREAM_CONNECTIONS', kind: 'number', default: 64, description: 'Keep-alive connections to PocketBase.' },
  { path: 'redisUrl', env: 'HAPTA_REDIS_URL', kind: 'string', default: '', description: 'Redis URL (redis://host:port/db). When set, sessions, the session secret and rate-limit counters are shared through Redis.' },
  { path: 'sessions.secret', env: 'HAPTA_SESSION_SECRET', kind: 'string', default: '', description: 'Key signing session tokens (32+ chars). Empty: generated on first start and stored in HAPTA_DATA_DIR (or Redis).' },
  { path: 'sessions.graceMs', env: 'HAPTA_SESSION_GRACE_MS', kind: 'number', default: 5000, description: 'How long a key retired by auth-refresh keeps working (for requests already in flight).' },
  { path: 'sessions.maxKeyTtlSeconds', env: 'HAPTA_SESSION_KEY_TTL', kind: 'number', default: 0, description: "Lifetime of a session key; 0: the PocketBase token's lifetime (PocketBase's own setting)." },
  { path: 'sessions.acceptPocketBaseTokens', env: 'HAPTA_ACCEPT_PB_TOKENS', kind: 'boolean', default: false, description: 'Pass PocketBase tokens presented by clients through (false: treated as no token).' },
  { path: 'sessions.pbRefreshBeforeSeconds', env: 'HAPTA_PB_REFRESH_BEFORE', kind: 'number', default: 86400, description: 'Refresh the PocketBase token behind a session when it expires within this many seconds (but not before half of what it had left when the sidecar first saw it, so a token living no longer than this is not refreshed on every use).' },
  { path: 'sessions.validateIntervalMs', env: 'HAPTA_SESSION_VALIDATE_MS', kind: 'number', default: 300000, description: 'How often active sessions are checked against PocketBase (password changed, record deleted).' },
  { path: 'gate.trustedProxies', env: 'HAPTA_TRUSTED_PROXIES', kind: 'string', default: '', description: 'Comma-separated addresses/CIDRs of proxies whose X-Forwarded-For is believed (e.g. "loopback,10.0.0.0/8").' },
  { path: 'gate.clientIpHeader', env: 'HAPTA_CLIENT_IP_HEADER', kind: 'string', default: 'X-Hapta-Client-IP', description: "Header carrying the client's IP to PocketBase (listed in PocketBase's trustedProxy settings)." },
  { path: 'gate.maxJsonBody', env: 'HAPTA_MAX_JSON_BODY', kind: 'number', default: 2097152, description: 'Largest request body in bytes for non-multipart requests.' },
  { path: 'gate.maxUploadBody', env: 'HAPTA_MAX_UPLOAD_BODY', kind: 'number', default: 33554432, description: "Largest multipart (upload) request body in bytes (PocketBase's own default is 32 MiB)." },
  { path: 'gate.exposeDashboard', env: 'HAPTA_EXPOSE_DASHBOARD', kind: 'boolean', default: true, description: "Serve PocketBase's dashboard (/_/) on the sidecar's port." },
  { path: 'gate.exposeSuperuserApi', env: 'HAPTA_EXPOSE_SUPERUSER_API', kind: 'boolean', default: true, description: 'Forward superuser-only API routes (settings, collections admin, logs, backups, crons, superuser auth).' },
  { path: 'gate.corsOrigins', env: 'HAPTA_CORS_ORIGINS', kind: 'string', default: '*', description: "Origins allowed by CORS on answers the sidecar gives itself (comma-separated; PocketBase's --origins applies to proxied ones)." },
  { path: 'rateLimits.enabled', env: 'HAPTA_RATELIMIT', kind: 'boolean', default: true, description: 'Rate limiting on or off.' },
  ...rateLimitOptions('auth', 30, 60_000, true, 'Too many authentication attempts.'),
  ...rateLimitOptions('write', 120, 60_000, false, 'Too many write requests.'),
  ...rateLimitOptions('read', 1200, 60_000, false, 'Too many requests.'),
  ...rateLimitOptions('upload', 30, 60_000, false, 'Too many uploads.'),
  ...rateLimitOptions('realtime', 60, 60_000, true, 'Too many realtime requests.'),
  { path: 'loginGuard.maxFailuresPerIdentityIp', env: 'HAPTA_LOGIN_FAILS_IDENTITY_IP', kind: 'number', default: 5, description: 'Failed logins for one identity from one IP before that IP is refused for it.' },
  { path: 'loginGuard.maxFailuresPerIdentity', env: 'HAPTA_LOGIN_FAILS_IDENTITY', kind: 'number', default: 20, description: 'Failed logins for one identity (any IP) before unknown IPs are refused for it; IPs it signed in from before are not.' },
  { path: 'loginGuard.maxFailuresPerIp', env: 'HAPTA_LOGIN_FAILS_IP', kind: 'number', default: 50, description: 'Failed logins from one IP (any identity) before it is refused.' },
  { path: 'loginGuard.windowMs', env: 'HAPTA_LOGIN_WINDOW_MS', kind: 'number', default: 900000, description: 'Window over which failed logins are counted; a refusal ends when it passes.' },
  { path: 'feedEngine.maxItems', env: 'HAPTA_FEED_MAX_ITEMS', kind: 'number', default: 1000, description: 'Most items one feed ranking keeps: the depth a feed can be paged to (1 to 10000).' },
  { path: 'feedEngine.snapshotTtlMs', env: 'HAPTA_FEED_CURSOR_TTL_MS', kind: 'number', default: 600000, description: 'How long a feed cursor (the ranking it pages through) stays valid.' },
  { path: 'feedEngine.maxSnapshots', env: 'HAPTA_FEED_SNAPSHOTS', kind: 'number', default: 2000, description: 'Feed rankings kept in memory for cursors (least recently used dropped first).' },
  { path: 'feedEngine.reuseMs', env: 'HAPTA_FEED_REUSE_MS', kind: 'number', default: 2000, description: 'Identical first feed pages within this many ms share one ranking (0: rank every request).' },
  { path: 'feedEngine.answerCacheBytes', env: 'HAPTA_FEED_ANSWER_CACHE_BYTES', kind: 'number', default: 33554432, description: 'Bytes of rendered feed pages kept until the replica changes (0: none).' },
  { path: 'feedEngine.shareRankings', env: 'HAPTA_FEED_SHARE_RANKINGS', kind: 'boolean', default: true, description: 'Rank a profile once for every requester and filter the ranking per requester (needs HAPTA_FEED_REUSE_MS > 0); false: every requester is ranked alone.' },
  { path: 'feedEngine.maxSharedDepth', env: 'HAPTA_FEED_MAX_SHARED_DEPTH', kind: 'number', default: 4000, description: 'Deepest a shared ranking goes for a requester who may see few of its items before that requester is ranked alone (at least HAPTA_FEED_MAX_ITEMS).' },
];

function rateLimitOptions(cls: RouteClass, max: number, duration: number, ip: boolean, message: string): Option[] {
  const env = `HAPTA_RATELIMIT_${cls.toUpperCase()}`;
  return [
    { path: `rateLimits.${cls}.max`, env: `${env}_MAX`, kind: 'number', default: max, description: `Max ${cls} requests per window.` },
    { path: `rateLimits.${cls}.duration`, env: `${env}_DURATION`, kind: 'number', default: duration, description: `Window of the ${cls} limit (ms).` },
    { path: `rateLimits.${cls}.ip`, env: `${env}_IP`, kind: 'boolean', default: ip, description: `Key the ${cls} limit by client IP (true) or by signed-in user (false).` },
    { path: `rateLimits.${cls}.message`, env: `${env}_MESSAGE`, kind: 'string', default: message, description: `Message of the 429 answer for the ${cls} limit.` },
  ];
}

/** The reference profiles, on the reference schema (migrations/). */
export const REFERENCE_FEEDS: Record<string, FeedProfile> = {
  trending: {
    collection: 'posts',
    freshness: { field: 'created', weight: 1, gravity: 1.8 },
    interactions: [
      { collection: 'likes', field: 'post', weight: 1, timeField: 'created', halfLifeHours: 24 },
      { collection: 'comments', field: 'post', weight: 2, timeField: 'created', halfLifeHours: 24 },
    ],
    exclude: [{ collection: 'blocks', requesterField: 'blocker', targetField: 'blocked', itemField: 'author' }],
  },
  latest: {
    collection: 'posts',
    freshness: { field: 'created', weight: 1, halfLifeHours: 24 },
    exclude: [{ collection: 'blocks', requesterField: 'blocker', targetField: 'blocked', itemField: 'author' }],
  },
  following: {
    collection: 'posts',
    freshness: { field: 'created', weight: 1, halfLifeHours: 48 },
    interactions: [{ collection: 'likes', field: 'post', weight: 0.1 }],
    following: { collection: 'follows', follower: 'follower', following: 'following', authorField: 'author', boost: 1, only: true },
    exclude: [{ collection: 'blocks', requesterField: 'blocker', targetField: 'blocked', itemField: 'author' }],
  },
  search: {
    collection: 'posts',
    requireQuery: true,
    text: { fields: ['title', 'body'], weight: 1 },
    freshness: { field: 'created', weight: 0.2, halfLifeHours: 24 * 30 },
    interactions: [{ collection: 'likes', field: 'post', weight: 0.05 }],
    exclude: [{ collection: 'blocks', requesterField: 'blocker', targetField: 'blocked', itemField: 'author' }],
  },
};

export class ConfigError extends Error {}

/** What a user config module exports (named exports or a default object): your schema's code-only parts. */
export interface UserModule {
  feeds?: Record<string, FeedProfile>;
  writeHooks?: WriteHooks;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a module's exports: the shapes the sidecar relies on, with the offending key named. */
export function checkUserModule(mod: unknown, where: string): Required<UserModule> {
  const m = (isRecord(mod) && isRecord(mod.default) && !('feeds' in mod) && !('writeHooks' in mod) ? mod.default : mod) as Record<string, unknown>;
  const feeds = m.feeds ?? {};
  const hooks = m.writeHooks ?? {};
  if (!isRecord(feeds)) throw new ConfigError(`${where}: feeds must be an object of profiles`);
  for (const [name, p] of Object.entries(feeds)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new ConfigError(`${where}: feed name "${name}" must be 1-64 letters, digits, _ or -`);
    if (!isRecord(p) || typeof p.collection !== 'string') throw new ConfigError(`${where}: feeds.${name}.collection must be a collection name`);
  }
  if (!isRecord(hooks)) throw new ConfigError(`${where}: writeHooks must be an object keyed by collection`);
  for (const [coll, actions] of Object.entries(hooks)) {
    if (!isRecord(actions)) throw new ConfigError(`${where}: writeHooks.${coll} must map create/update/delete to lists of functions`);
    for (const [action, list] of Object.entries(actions)) {
      if (!['create', 'update', 'delete'].includes(action)) throw new ConfigError(`${where}: writeHooks.${coll}.${action}: only create, update and delete`);
      if (!Array.isArray(list) || list.some((f) => typeof f !== 'function')) throw new ConfigError(`${where}: writeHooks.${coll}.${action} must be a list of functions`);
    }
  }
  return { feeds: feeds as Record<string, FeedProfile>, writeHooks: hooks as WriteHooks };
}

let tsxRegistered = false;

/** Loads HAPTA_CONFIG_MODULE (if set) into the configuration: its feeds and write hooks replace the reference ones. */
export async function withUserModule(cfg: HaptaConfig, cwd = process.cwd()): Promise<HaptaConfig> {
  if (!cfg.configModule) return cfg;
  const { pathToFileURL } = await import('node:url');
  const { resolve } = await import('node:path');
  const file = resolve(cwd, cfg.configModule);
  let mod: unknown;
  try {
    // The compiled sidecar loads a TypeScript config module through tsx.
    if (compiled && !tsxRegistered && /\.[cm]?ts$/.test(file)) {
      (await import('tsx/esm/api')).register();
      tsxRegistered = true;
    }
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    throw new ConfigError(`HAPTA_CONFIG_MODULE ${cfg.configModule}: cannot be loaded (${(err as Error).message})`);
  }
  const user = checkUserModule(mod, `HAPTA_CONFIG_MODULE ${cfg.configModule}`);
  return { ...cfg, feeds: user.feeds, writeHooks: user.writeHooks };
}

function parseValue(opt: Option, raw: string): string | number | boolean {
  if (opt.env === 'NODE_ENV') return raw === 'production';
  if (opt.kind === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${opt.env} must be a number`);
    return n;
  }
  if (opt.kind === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${opt.env} must be true or false`);
  }
  if (opt.values && !opt.values.includes(raw)) throw new ConfigError(`${opt.env} must be one of ${opt.values.join(', ')}`);
  return raw;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
  node[keys[keys.length - 1]] = value;
}

/** Builds the configuration from defaults, then the environment, then explicit overrides. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: DeepPartial<HaptaConfig> = {}): HaptaConfig {
  const cfg: Record<string, unknown> = {};
  for (const opt of OPTIONS) {
    const raw = env[opt.env];
    setPath(cfg, opt.path, raw !== undefined && raw !== '' ? parseValue(opt, raw) : opt.default);
  }
  cfg.feeds = REFERENCE_FEEDS;
  const windowDefaults: FeedWindow = { maxAttempts: 6 };
  (cfg.feedEngine as Record<string, unknown>).window = windowDefaults;
  cfg.writeHooks = {};
  const merged = mergeDeep(cfg, overrides as Record<string, unknown>) as unknown as HaptaConfig;
  validate(merged);
  return merged;
}

function validate(cfg: HaptaConfig): void {
  if (cfg.production && (cfg.superuserEmail === DEFAULT_SUPERUSER_EMAIL || cfg.superuserPassword === DEFAULT_SUPERUSER_PASSWORD)) {
    throw new ConfigError('NODE_ENV=production: set PB_SUPERUSER_EMAIL and PB_SUPERUSER_PASSWORD (the local defaults are refused)');
  }
  if (cfg.sessions.secret && cfg.sessions.secret.length < 32) throw new ConfigError('HAPTA_SESSION_SECRET must be at least 32 characters');
  if (cfg.redisUrl && !/^rediss?:\/\//.test(cfg.redisUrl)) throw new ConfigError('HAPTA_REDIS_URL must start with redis:// or rediss://');
  if (!/^[A-Za-z0-9-]{1,64}$/.test(cfg.gate.clientIpHeader)) throw new ConfigError('HAPTA_CLIENT_IP_HEADER must be a header name');
  if (!/^[A-Za-z0-9_]{1,64}$/.test(cfg.replica.consumerId)) throw new ConfigError('HAPTA_CONSUMER_ID must match [A-Za-z0-9_]{1,64}');
  cfg.replica.batchSize = Math.min(5000, Math.max(1, Math.floor(cfg.replica.batchSize)));
  cfg.replica.bootstrapPageSize = Math.min(5000, Math.max(1, Math.floor(cfg.replica.bootstrapPageSize)));
  const fe = cfg.feedEngine;
  const atLeast = (v: unknown, min: number, name: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new ConfigError(`${name} must be a number of at least ${min}`);
  };
  atLeast(cfg.health.maxLagMs, 0, 'HAPTA_HEALTH_MAX_LAG_MS');
  atLeast(cfg.replica.readThreads, -1, 'HAPTA_READ_THREADS');
  cfg.replica.readThreads = Math.min(64, Math.floor(cfg.replica.readThreads));
  atLeast(cfg.replica.inlineReadMs, 0, 'HAPTA_INLINE_READ_MS');
  atLeast(cfg.replica.threadNice, 0, 'HAPTA_THREAD_NICE');
  cfg.replica.threadNice = Math.min(19, Math.floor(cfg.replica.threadNice));
  atLeast(cfg.replica.feedThreadNice, 0, 'HAPTA_FEED_THREAD_NICE');
  cfg.replica.feedThreadNice = Math.min(19, Math.floor(cfg.replica.feedThreadNice));
  atLeast(cfg.health.drainMs, 0, 'HAPTA_SHUTDOWN_DRAIN_MS');
  atLeast(fe.snapshotTtlMs, 1, 'HAPTA_FEED_CURSOR_TTL_MS');
  atLeast(fe.reuseMs, 0, 'HAPTA_FEED_REUSE_MS');
  atLeast(fe.answerCacheBytes, 0, 'HAPTA_FEED_ANSWER_CACHE_BYTES');
  fe.maxItems = Math.min(10_000, Math.max(1, Math.floor(fe.maxItems)));
  atLeast(fe.maxSharedDepth, 1, 'HAPTA_FEED_MAX_SHARED_DEPTH');
  fe.maxSharedDepth = Math.max(fe.maxItems, Math.floor(fe.maxSharedDepth));
  fe.maxSnapshots = Math.max(1, Math.floor(fe.maxSnapshots));
  const w = fe.window;
  if (w.m0 !== undefined) { atLeast(w.m0, 1, 'feedEngine.window.m0'); w.m0 = Math.floor(w.m0); }
  if (w.k0 !== undefined) { atLeast(w.k0, 1, 'feedEngine.window.k0'); w.k0 = Math.floor(w.k0); }
  atLeast(w.maxAttempts, 0, 'feedEngine.window.maxAttempts');
  w.maxAttempts = Math.floor(w.maxAttempts);
  cfg.pbUrl = cfg.pbUrl.replace(/\/+$/, '');
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

function mergeDeep(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object'
      ? mergeDeep(prev as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

/** The configuration table for README (markdown). */
export function configTable(): string {
  const rows = OPTIONS.map((o) => `| \`${o.env}\` | \`${o.path}\` | ${o.kind} | \`${String(o.default)}\` | ${o.description} |`);
  return ['| environment | config key | type | default | description |', '|---|---|---|---|---|', ...rows].join('\n');
}
