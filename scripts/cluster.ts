// `npm run cluster`: PocketBase (reference schema), the machine's Redis, N sidecars and HAProxy in front
// of them, on one machine, with prefixed output.
//   npm run cluster -- --sidecars 3 --port 8080 --data ./cluster_data
// - PocketBase as scripts/pocketbase.ts runs it (PB_URL, the sidecar's superuser created), its data in
//   <data>/pb_data.
// - Redis at HAPTA_REDIS_URL (default redis://127.0.0.1:6379/0); when nothing answers on a loopback
//   address, redis-server is started on it (no persistence) and stopped with the rest.
// - Sidecar i (1..N) on port <port>+i, data in <data>/sidecar-<i>, HAPTA_CONSUMER_ID sidecar_<i>, all
//   sharing HAPTA_REDIS_URL and HAPTA_SESSION_SECRET (from the environment, or generated once and kept
//   in <data>/session-secret), and trusting X-Forwarded-For from loopback (HAProxy), so rate limits and
//   PocketBase see client IPs.
// - HAProxy on <port> (HAPTA_PORT, default 8080): round robin, health checks on /api/hapta/health every
//   second (down after 2 failures, up after 2 successes: a sidecar whose replica lags leaves the pool
//   and comes back by itself), X-Forwarded-For added, idempotent requests retried on another sidecar
//   when one dies under them, realtime requests balanced by client address (a stream and its
//   subscriptions reach the sidecar holding it), timeouts long enough for SSE streams. Its configuration is
//   generated into <data>/haproxy.cfg; stats on http://127.0.0.1:<stats-port>/ (default 8404) and an
//   admin socket in <data>/haproxy.sock (`echo 'show stat' | socat - <data>/haproxy.sock`). When every
//   sidecar fails its check at once, HAProxy still uses them all (as unchecked backups) rather than
//   answering 503 to everything.
// - A rolling restart without a failed request: for each sidecar, `set server sidecars/s<i> state drain`
//   on the admin socket, wait until it has no sessions, SIGTERM it (its pid is printed when it starts; it
//   is started again by itself), wait until its check passes, `set server sidecars/s<i> state ready`.
// Without --data everything lives in a temp dir removed on exit. A process that exits on its own is
// restarted with backoff (announced in its output); HAProxy exiting stops the cluster. Ctrl-C or SIGTERM
// stops HAProxy, the sidecars, PocketBase and a Redis it started, in that order, and exits 0. Exits 1
// with a hint when HAProxy (`haproxy` on PATH, or HAPROXY_BIN) or a needed redis-server is missing, or
// when one of the ports is taken.
//
// The HAProxy helpers (configuration, start, stats and admin commands) are exported for the cluster
// test and benchmark.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig } from '../config.js';
import { moduleArgs } from '../lib/runtime.js';
import { projectRoot } from './pocketbase-binary.js';
import { Supervised } from './supervise.js';

// ---------------------------------------------------------------------------------------------------
// HAProxy

export const HAPROXY_INSTALL_HINT = 'HAProxy is not installed (no `haproxy` on PATH, nor HAPROXY_BIN). Install it first: `apt-get install -y haproxy` (Debian/Ubuntu), `brew install haproxy` (macOS), or your platform\'s package.';

/**
 * The haproxy executable, or null: HAPROXY_BIN when set, else `haproxy` on PATH or in an sbin directory
 * that PATH may lack.
 */
export function haproxyBinary(): string | null {
  const candidates = process.env.HAPROXY_BIN ? [process.env.HAPROXY_BIN] : ['haproxy', '/usr/sbin/haproxy', '/usr/local/sbin/haproxy'];
  for (const bin of candidates) {
    if (spawnSync(bin, ['-v']).status === 0) return bin;
  }
  return null;
}

export interface HaproxyBackend { name: string; port: number; host?: string }

export interface HaproxyOptions {
  /** The public port (HAProxy's frontend). */
  port: number;
  host?: string;
  backends: HaproxyBackend[];
  /** The admin socket (`show stat`, `set server ... state drain`). */
  socket: string;
  /** A stats page on this port (omitted: none). */
  statsPort?: number;
  /** Health-check interval (ms), default 1000; down after `fall`, up after `rise` checks in a row. */
  interMs?: number;
  fall?: number;
  rise?: number;
  /** Name the answering server in an `X-Hapta-Server` response header (tests; off by default). */
  serverHeader?: boolean;
}

function fallbacks(backends: HaproxyBackend[]): string[] {
  return [
    '  # When every sidecar fails its check (all of them lagging: PocketBase overloaded, say), taking them',
    '  # all out would stop the service: they are then all used again, unchecked, as backups. A read that',
    '  # a replica cannot answer fresh still goes to PocketBase, as always.',
    '  option allbackups',
    ...backends.map((b) => `  server ${b.name}_fallback ${b.host ?? '127.0.0.1'}:${b.port} backup`),
  ];
}

/** The HAProxy configuration for sidecars behind one frontend. */
export function haproxyConfig(o: HaproxyOptions): string {
  const host = o.host ?? '127.0.0.1';
  const inter = o.interMs ?? 1000;
  const lines = [
    '# Generated by scripts/cluster.ts: sidecars behind HAProxy.',
    'global',
    '  maxconn 4096',
    '  # Fewer file descriptors than maxconn asks for is a warning, not a refusal to start.',
    '  no strict-limits',
    `  stats socket ${o.socket} mode 600 level admin`,
    '  # Stopping: sessions still open after this long are closed.',
    '  hard-stop-after 5s',
    '',
    'defaults',
    '  mode http',
    '  # The client address for the sidecars (they trust it from loopback: HAPTA_TRUSTED_PROXIES).',
    '  option forwardfor',
    '  # A connection refused (a sidecar gone) is retried on another sidecar; so is a GET or HEAD whose',
    '  # sidecar closed the connection without answering (it died under it). Other methods are never',
    '  # sent twice: a write may have reached PocketBase.',
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
    '  timeout connect 2s',
    '  timeout queue 10s',
    '  timeout http-request 15s',
    '  timeout http-keep-alive 15s',
    '  # Realtime (SSE) answers stay open with long silences: PocketBase ends an idle one after 5 minutes.',
    '  timeout client 6m',
    '  timeout server 6m',
    '  timeout tunnel 1h',
    '  timeout client-fin 10s',
    '  timeout server-fin 10s',
    '  timeout check 2s',
    '',
    'frontend hapta',
    `  bind ${host}:${o.port}`,
    '  # A realtime client\'s stream (GET /api/realtime) and its subscriptions (POST /api/realtime, naming the',
    '  # stream\'s clientId) must reach the sidecar that holds the stream: realtime requests are balanced by',
    '  # client address instead (behind another proxy, hash its X-Forwarded-For: balance hdr(X-Forwarded-For)).',
    '  use_backend realtime if { path,url_dec -m str /api/realtime }',
    '  default_backend sidecars',
    '',
    'backend sidecars',
    '  balance roundrobin',
    '  http-request disable-l7-retry if !METH_GET !METH_HEAD',
    '  # 200 while the sidecar is ready and its replica keeps up with the change log; 503 otherwise.',
    '  option httpchk GET /api/hapta/health',
    '  http-check expect status 200',
    `  default-server inter ${inter}ms fastinter ${Math.max(100, Math.round(inter / 2))}ms downinter ${inter}ms fall ${o.fall ?? 2} rise ${o.rise ?? 2}`,
    ...(o.serverHeader ? ['  http-response set-header X-Hapta-Server %s'] : []),
    ...o.backends.map((b) => `  server ${b.name} ${b.host ?? '127.0.0.1'}:${b.port} check`),
    ...fallbacks(o.backends),
    '',
    'backend realtime',
    '  balance source',
    '  hash-type consistent',
    '  http-request disable-l7-retry if !METH_GET !METH_HEAD',
    ...(o.serverHeader ? ['  http-response set-header X-Hapta-Server %s'] : []),
    '  # The same sidecars, up and down (and drained) with their checks in the sidecars backend.',
    ...o.backends.map((b) => `  server ${b.name} ${b.host ?? '127.0.0.1'}:${b.port} track sidecars/${b.name}`),
    ...fallbacks(o.backends),
  ];
  if (o.statsPort) {
    lines.push('', 'listen stats', `  bind ${host}:${o.statsPort}`, '  stats enable', '  stats uri /', '  stats refresh 2s');
  }
  return lines.join('\n') + '\n';
}

/** Sends one command to HAProxy's admin socket and returns its answer. */
export function haproxyCommand(socket: string, command: string): Promise<string> {
  return new Promise((res, rej) => {
    const c = connect({ path: socket });
    let out = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d: string) => (out += d));
    c.on('end', () => res(out));
    c.on('error', rej);
    c.setTimeout(5000, () => c.destroy(new Error(`haproxy socket: no answer to ${command}`)));
  });
}

export interface ServerStat {
  name: string;
  /** UP, DOWN, MAINT, DRAIN, "UP 1/2" (going down), "DOWN 1/2" (going up), ... */
  status: string;
  /** Sessions open now, and ever. */
  current: number;
  total: number;
  checkStatus: string;
}

/** The backend's checked servers as HAProxy sees them now (`show stat`; the `_fallback` backups left out). */
export async function haproxyServers(socket: string, backend = 'sidecars'): Promise<ServerStat[]> {
  const csv = await haproxyCommand(socket, 'show stat');
  const [header, ...rows] = csv.trim().split('\n');
  const cols = header.replace(/^# /, '').split(',');
  const at = (name: string) => cols.indexOf(name);
  return rows.map((r) => r.split(',')).filter((f) => f[at('pxname')] === backend && !['FRONTEND', 'BACKEND'].includes(f[at('svname')]) && !f[at('svname')].endsWith('_fallback'))
    .map((f) => ({ name: f[at('svname')], status: f[at('status')], current: Number(f[at('scur')]), total: Number(f[at('stot')]), checkStatus: f[at('check_status')] }));
}

export interface Haproxy {
  url: string;
  socket: string;
  proc: ChildProcess;
  /** Resolves when HAProxy exits. */
  exited: Promise<void>;
  servers(): Promise<ServerStat[]>;
  /** An admin-socket command (`set server sidecars/s1 state drain`). */
  command(cmd: string): Promise<string>;
  /** Waits until `name`'s status is `status` (UP, DOWN, DRAIN, MAINT; not a transition such as "UP 1/2"). */
  waitFor(name: string, status: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

// HAProxy processes still running when this process exits are killed with it.
const liveHaproxies = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of liveHaproxies) p.kill('SIGKILL');
});

/**
 * Writes the configuration into `dir`, checks it and starts HAProxy in the foreground; resolves once its
 * frontend accepts connections. `onOutput` receives its lines (state changes are logged as warnings).
 */
export async function startHaproxy(dir: string, opts: Omit<HaproxyOptions, 'socket'>, onOutput: (line: string) => void = () => {}): Promise<Haproxy> {
  const bin = haproxyBinary();
  if (!bin) throw new Error(HAPROXY_INSTALL_HINT);
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'haproxy.sock');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig({ ...opts, socket }));
  const check = spawnSync(bin, ['-c', '-q', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy refused ${cfg}: ${check.stderr || check.stdout}`);
  const proc = spawn(bin, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  liveHaproxies.add(proc);
  let tail = '';
  for (const s of [proc.stdout!, proc.stderr!]) {
    createInterface({ input: s }).on('line', (line) => {
      tail = (tail + line + '\n').slice(-2000);
      onOutput(line);
    });
  }
  const exited = new Promise<void>((r) => proc.once('exit', () => {
    liveHaproxies.delete(proc);
    r();
  }));
  const url = `http://${opts.host ?? '127.0.0.1'}:${opts.port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`haproxy exited: ${tail}`);
    if (await haproxyCommand(socket, 'show info').then(() => true, () => false)) break;
    if (Date.now() > deadline) throw new Error(`haproxy did not start: ${tail}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const servers = () => haproxyServers(socket);
  return {
    url, socket, proc, exited, servers,
    command: (cmd) => haproxyCommand(socket, cmd),
    async waitFor(name, status, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const s = (await servers()).find((x) => x.name === name);
        last = s ? `${s.status} (${s.checkStatus})` : 'no such server';
        if (s && s.status === status) return;
        if (Date.now() > until) throw new Error(`haproxy: ${name} not ${status} within ${timeoutMs} ms (${last})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The cluster runner

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

function intFlag(name: string, fallback: number): number {
  const raw = flag(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`--${name} must be a positive integer`);
  return n;
}

function fail(message: string, code = 1): never {
  process.stderr.write(`cluster: ${message}\n`);
  process.exit(code);
}

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port });
    s.setTimeout(1000, () => s.destroy());
    s.on('connect', () => {
      s.destroy();
      res(true);
    });
    s.on('error', () => res(false));
    s.on('close', () => res(false));
  });
}

async function until(what: string, timeoutMs: number, ok: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  process.stderr.write(`cluster: ${what} not ready after ${timeoutMs / 1000} s\n`);
  return false;
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 78);
    throw err;
  }
  if (!haproxyBinary()) fail(HAPROXY_INSTALL_HINT);
  const sidecars = intFlag('sidecars', 2);
  const port = intFlag('port', config.port);
  const statsPort = intFlag('stats-port', 8404);
  const keep = flag('data');
  const redisUrl = config.redisUrl || 'redis://127.0.0.1:6379/0';
  const pbUrl = new URL(config.pbUrl);
  // Nothing else may be listening where this cluster's processes will (sidecars would follow another
  // PocketBase).
  const pbPort = Number(pbUrl.port || 80);
  const ports = [pbPort, port, statsPort, ...Array.from({ length: sidecars }, (_, i) => port + i + 1)];
  for (const p of ports) if (await answers(pbUrl.hostname, p) || await answers('127.0.0.1', p)) fail(`port ${p} is in use (PB_URL, --port, --stats-port and the next ${sidecars} ports after --port must be free)`);
  const dataDir = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'hapta-cluster-'));
  mkdirSync(dataDir, { recursive: true });
  const secretFile = join(dataDir, 'session-secret');
  const secret = config.sessions.secret || (existsSync(secretFile) ? readFileSync(secretFile, 'utf8').trim() : randomBytes(32).toString('base64url'));
  if (!config.sessions.secret) writeFileSync(secretFile, secret, { mode: 0o600 });

  const names = ['pocketbase', 'redis', 'haproxy', ...Array.from({ length: sidecars }, (_, i) => `sidecar-${i + 1}`)];
  const width = Math.max(...names.map((n) => n.length));
  const label = (n: string) => n.padEnd(width);
  const say = (line: string) => process.stdout.write(`${label('cluster')} | ${line}\n`);
  const running: { name: string; proc: Supervised }[] = [];
  let haproxy: Haproxy | null = null;
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('stopping');
    if (haproxy) {
      await haproxy.stop();
      process.stdout.write(`${label('haproxy')} | exited\n`);
    }
    const order = ['sidecar', 'pocketbase', 'redis'];
    for (const kind of order) await Promise.all(running.filter((r) => r.name.startsWith(kind)).map((r) => r.proc.stop()));
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());

  // Redis: the machine's, started when nothing answers on a loopback address.
  const r = new URL(redisUrl);
  const redisHost = r.hostname || '127.0.0.1';
  const redisPort = Number(r.port || 6379);
  if (!(await answers(redisHost, redisPort))) {
    if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(redisHost)) fail(`Redis does not answer at ${redisUrl}`);
    if (spawnSync('redis-server', ['--version']).status !== 0) fail('Redis is not running and redis-server is not installed: `apt-get install -y redis-server`');
    const redis = new Supervised(label('redis'), { command: 'redis-server', args: ['--bind', '127.0.0.1', '-::1', '--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', dataDir], env: process.env });
    running.push({ name: 'redis', proc: redis });
    redis.start();
    await until('Redis', 10_000, () => answers(redisHost, redisPort));
  } else {
    say(`using the Redis at ${redisUrl}`);
  }

  const pb = new Supervised(label('pocketbase'), { command: process.execPath, args: moduleArgs('scripts/pocketbase'), env: {
    ...process.env, PB_DATA_DIR: join(dataDir, 'pb_data'), PB_URL: config.pbUrl,
  } });
  running.push({ name: 'pocketbase', proc: pb });
  pb.start();
  await until('PocketBase', 30_000, async () => (await fetch(`${pbUrl.origin}/api/health`)).ok);

  const backends: HaproxyBackend[] = [];
  for (let i = 1; i <= sidecars; i++) {
    const sidecarPort = port + i;
    backends.push({ name: `s${i}`, port: sidecarPort });
    const proc = new Supervised(label(`sidecar-${i}`), { command: process.execPath, args: moduleArgs('sidecar/server'), env: {
      ...process.env,
      HAPTA_PORT: String(sidecarPort), HAPTA_HOST: '127.0.0.1', HAPTA_DATA_DIR: join(dataDir, `sidecar-${i}`),
      HAPTA_CONSUMER_ID: `sidecar_${i}`, HAPTA_REDIS_URL: redisUrl, HAPTA_SESSION_SECRET: secret, PB_URL: config.pbUrl,
      HAPTA_TRUSTED_PROXIES: [config.gate.trustedProxies, 'loopback'].filter(Boolean).join(','),
      HAPTA_MIGRATIONS_DIR: join(projectRoot, 'migrations'),
    } });
    running.push({ name: `sidecar-${i}`, proc });
    proc.start();
  }
  // HAProxy starts with every server up; wait for the first bootstraps so that it has somewhere to send.
  await Promise.all(backends.map((b) => until(`sidecar ${b.name}`, 120_000, async () => (await fetch(`http://127.0.0.1:${b.port}/api/hapta/health`)).status === 200)));
  if (stopping) return;
  try {
    haproxy = await startHaproxy(dataDir, { port, statsPort, backends }, (l) => process.stderr.write(`${label('haproxy')} | ${l}\n`));
  } catch (err) {
    say((err as Error).message);
    return void shutdown();
  }
  void haproxy.exited.then(() => {
    if (!stopping) {
      say('haproxy exited; stopping');
      void shutdown();
    }
  });
  say(`${sidecars} sidecars behind HAProxy at ${haproxy.url} (stats http://127.0.0.1:${statsPort}/, PocketBase ${pbUrl.origin}, data ${dataDir})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err) => fail((err as Error).stack ?? String(err)));
}
