// Hapta's configuration: every option with its type, default, environment variable and a one-line
// description. Read once at start-up (loadConfig) and passed into constructors; nothing else reads
// process.env. README's configuration table is printed from OPTIONS by `npm run config:table`.

export interface HaptaConfig {
  port: number;
  host: string;
  pbUrl: string;
  pbDataDir: string;
  dataDir: string;
  superuserEmail: string;
  superuserPassword: string;
  production: boolean;
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
  };
  upstream: {
    timeoutMs: number;
    connections: number;
  };
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
  { path: 'logLevel', env: 'HAPTA_LOG_LEVEL', kind: 'string', default: 'info', values: ['debug', 'info', 'warn', 'error'], description: 'Log level.' },
  { path: 'replica.pollIntervalMs', env: 'HAPTA_REPLICA_POLL_MS', kind: 'number', default: 1000, description: 'How often the change log is read when no realtime event wakes the reader.' },
  { path: 'replica.batchSize', env: 'HAPTA_REPLICA_BATCH', kind: 'number', default: 1000, description: 'Change-log rows read and applied per transaction (max 5000).' },
  { path: 'replica.bootstrapPageSize', env: 'HAPTA_BOOTSTRAP_PAGE', kind: 'number', default: 1000, description: 'Records per page when copying a collection.' },
  { path: 'replica.schemaCheckIntervalMs', env: 'HAPTA_SCHEMA_CHECK_MS', kind: 'number', default: 30000, description: 'Periodic schema comparison with PocketBase (a fallback; the change log carries schema changes).' },
  { path: 'replica.migrationsDir', env: 'HAPTA_MIGRATIONS_DIR', kind: 'string', default: './migrations', description: 'PocketBase migrations directory watched for schema changes.' },
  { path: 'replica.watchMigrations', env: 'HAPTA_WATCH_MIGRATIONS', kind: 'boolean', default: true, description: 'Watch the migrations directory with chokidar.' },
  { path: 'replica.includeSystemCollections', env: 'HAPTA_REPLICATE_SYSTEM', kind: 'boolean', default: false, description: 'Also replicate system collections (_superusers, _otps, ...).' },
  { path: 'replica.consumerId', env: 'HAPTA_CONSUMER_ID', kind: 'string', default: 'default', description: 'Name this sidecar reports to PocketBase so the change log is kept until it has read it.' },
  { path: 'upstream.timeoutMs', env: 'HAPTA_UPSTREAM_TIMEOUT_MS', kind: 'number', default: 30000, description: 'Timeout of a request to PocketBase (headers; streams are not cut).' },
  { path: 'upstream.connections', env: 'HAPTA_UPSTREAM_CONNECTIONS', kind: 'number', default: 64, description: 'Keep-alive connections to PocketBase.' },
];

export class ConfigError extends Error {}

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
  const merged = mergeDeep(cfg, overrides as Record<string, unknown>) as unknown as HaptaConfig;
  validate(merged);
  return merged;
}

function validate(cfg: HaptaConfig): void {
  if (cfg.production && (cfg.superuserEmail === DEFAULT_SUPERUSER_EMAIL || cfg.superuserPassword === DEFAULT_SUPERUSER_PASSWORD)) {
    throw new ConfigError('NODE_ENV=production: set PB_SUPERUSER_EMAIL and PB_SUPERUSER_PASSWORD (the local defaults are refused)');
  }
  if (!/^[A-Za-z0-9_]{1,64}$/.test(cfg.replica.consumerId)) throw new ConfigError('HAPTA_CONSUMER_ID must match [A-Za-z0-9_]{1,64}');
  cfg.replica.batchSize = Math.min(5000, Math.max(1, Math.floor(cfg.replica.batchSize)));
  cfg.replica.bootstrapPageSize = Math.min(5000, Math.max(1, Math.floor(cfg.replica.bootstrapPageSize)));
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
