// The headline benchmark (`npm run bench`): a social app's traffic against PocketBase direct and through
// the sidecar, in one run, on the same data.
//   1. Seeds the reference schema through PocketBase's API (batch, as a superuser), with skew.
//   2. Builds one request plan (mix.ts) and replays it (replay.ts, its own process) against:
//      PocketBase direct; one sidecar; a bare Node server answering the sidecar's bodies (the floor);
//      two sidecars sharing Redis behind HAProxy (scripts/cluster.ts's configuration: round robin,
//      health checks on /api/hapta/health, X-Forwarded-For).
//   3. Counts what PocketBase received from its own request log (_logs in auxiliary.db), samples CPU and
//      RSS of every process and each sidecar's event-loop delay (a monitor preloaded into the sidecar
//      process: ELD_MONITOR), and probes replication lag while the mix runs.
//   4. Writes bench/results/headline.json and bench/results/headline.svg and prints the tables.
// Options (defaults in brackets): --users [1000] --posts [100000] --likes [500000] --comments [100000]
// --follows [30000] --requests [50000] --signed-in [300] --anonymous [200] --write-share [0.02]
// --concurrency [50] --data <dir> (keep the seeded PocketBase there and reuse it next time) --seed-only --no-pair --skip-direct --chart-only.
// --quick: a smaller size with the same shape (SIZE below: a fifth of the posts, comments and requests),
// for iterating in a few minutes; it skips the two-sidecar run (unless --pair) and saves its results to
// the system's temp directory, not as the figure of record (nor the chart).
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { HAPROXY_INSTALL_HINT, haproxyBinary, startHaproxy, type Haproxy } from '../scripts/cluster.js';
import { moduleArgs } from '../lib/runtime.js';
import { projectRoot } from '../scripts/pocketbase-binary.js';
import { api, superuserToken } from '../test/harness/dump.js';
import { freePort } from '../test/harness/net.js';
import { startPocketBase, type PocketBase } from '../test/harness/pocketbase.js';
import { batch, seedReference, USER_PASSWORD } from '../test/harness/seed.js';
import { startSidecarProcess, type SidecarProcess } from '../test/harness/sidecar-process.js';
import { chartSvg } from './chart.js';
import { buildPlan, WRITE_KINDS, type Kind, type MixData } from './mix.js';
import { threadDelta, threadTimes, watch, type ThreadTimes, type Usage } from './procstat.js';
import type { ReplayResult, ReplaySpec } from './replay.js';
import { arg, saveResult, summary, table } from './stats.js';

const QUICK = process.argv.includes('--quick');
/** The full size (the figure of record) and --quick's: the same shape (skew, follows per user, write share), smaller. */
const SIZE = QUICK
  ? { users: 300, posts: 20_000, likes: 60_000, comments: 20_000, follows: 9000, requests: 10_000, signedIn: 150, anonymous: 100, warm: 1000 }
  : { users: 1000, posts: 100_000, likes: 500_000, comments: 100_000, follows: 30_000, requests: 50_000, signedIn: 300, anonymous: 200, warm: 3000 };
const SIZES = { users: arg('users', SIZE.users), posts: arg('posts', SIZE.posts), likes: arg('likes', SIZE.likes), comments: arg('comments', SIZE.comments), follows: arg('follows', SIZE.follows) };
const MIX = { requests: arg('requests', SIZE.requests), signedIn: arg('signed-in', SIZE.signedIn), anonymous: arg('anonymous', SIZE.anonymous), writeShare: arg('write-share', 0.02), seed: 7 };
const CONCURRENCY = arg('concurrency', 50);
const dataArg = process.argv.indexOf('--data');
const DATA_DIR = dataArg === -1 ? null : process.argv[dataArg + 1];
/** --costs: instead of the comparison, each request type replayed alone on one sidecar, its CPU per request by thread. */
const COSTS = process.argv.includes('--costs');
const PAIR = !COSTS && (QUICK ? process.argv.includes('--pair') : !process.argv.includes('--no-pair'));
const SKIP_DIRECT = COSTS || process.argv.includes('--skip-direct');
const REDIS_URL = 'redis://127.0.0.1:6379/8';

const work = mkdtempSync(join(tmpdir(), 'hapta-bench-'));
const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

interface SeedFile { sizes: typeof SIZES; seededAt?: string; users: { id: string; email: string }[]; posts: string[]; likePairs: string[]; followPairs: string[]; drafts: string[] }

async function pocketbase(): Promise<{ pb: PocketBase; data: MixData & { users: { id: string; email: string }[] } }> {
  const baseDir = DATA_DIR ?? join(work, 'pb');
  mkdirSync(baseDir, { recursive: true });
  const seedFile = join(baseDir, 'hapta-bench-seed.json');
  const previous = existsSync(seedFile) ? (JSON.parse(readFileSync(seedFile, 'utf8')) as SeedFile) : null;
  if (previous && (JSON.stringify(previous.sizes) !== JSON.stringify(SIZES) || !previous.drafts)) throw new Error(`${baseDir} holds data seeded with other sizes: use another --data directory`);
  const reuse = previous !== null;
  const pb = await startPocketBase({ baseDir, automigrate: false });
  if (!reuse) {
    log(`seeding through PocketBase's batch API: ${JSON.stringify(SIZES)}`);
    const t0 = Date.now();
    let last = 0;
    const seeded = await seedReference(pb.url, await superuserToken(pb.url), SIZES, 1, (what, done) => {
      if (Date.now() - last > 5000) { last = Date.now(); log(`  ${what}: ${done}`); }
    });
    const seconds = (Date.now() - t0) / 1000;
    const total = Object.values(SIZES).reduce((a, b) => a + b, 0);
    log(`seeded ${total} records in ${seconds.toFixed(0)} s (${Math.round(total / seconds)}/s)`);
    const file: SeedFile = { sizes: SIZES, seededAt: new Date().toISOString(), users: seeded.users.map(({ id, email }) => ({ id, email })), posts: seeded.posts, likePairs: [...seeded.likePairs], followPairs: [...seeded.followPairs], drafts: [...seeded.drafts] };
    writeFileSync(seedFile, JSON.stringify(file));
  } else {
    log(`reusing the seeded PocketBase in ${baseDir}`);
  }
  const f = JSON.parse(readFileSync(seedFile, 'utf8')) as SeedFile;
  await removeLeftovers(pb, f.seededAt ?? statSync(seedFile).mtime.toISOString());
  return { pb, data: { users: f.users, posts: f.posts, likePairs: new Set(f.likePairs), followPairs: new Set(f.followPairs), drafts: new Set(f.drafts ?? []) } };
}

/**
 * Likes and follows made after seeding: a run undoes its own, but an interrupted one leaves some, and
 * the plan would then create them again (not unique). Deleted before the runs, as a superuser.
 */
async function removeLeftovers(pb: PocketBase, seededAt: string): Promise<void> {
  const token = await superuserToken(pb.url);
  const since = seededAt.replace('T', ' ');
  for (const coll of ['likes', 'follows']) {
    const filter = encodeURIComponent(`created > '${since}'`);
    const res = await api<{ items: { id: string }[] }>(pb.url, `/api/collections/${coll}/records?perPage=1000&skipTotal=1&fields=id&filter=${filter}`, { token });
    if (res.items.length === 0) continue;
    await batch(pb.url, token, res.items.map((r) => ({ method: 'DELETE' as const, url: `/api/collections/${coll}/records/${r.id}` })));
    log(`removed ${res.items.length} ${coll} left by an interrupted run`);
  }
}

function child(script: string, args: string[]): { proc: ChildProcess; output: Promise<string>; firstLine: Promise<string> } {
  const proc = spawn(process.execPath, [...moduleArgs(`bench/${script}`), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let resolveLine: (s: string) => void;
  const firstLine = new Promise<string>((r) => (resolveLine = r));
  proc.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    if (out.includes('\n')) resolveLine(out.split('\n')[0]);
  });
  const output = new Promise<string>((resolve, reject) => proc.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited ${code}`)))));
  output.catch(() => {}); // the floor server is killed; replays are awaited
  return { proc, output, firstLine };
}

/** Replays the plan in a child process while watching CPU and memory of `pids` and of the generator. */
async function replay(spec: Omit<ReplaySpec, 'users' | 'concurrency'>, users: { email: string }[], pids: Record<string, number>, concurrency = CONCURRENCY): Promise<{ result: ReplayResult; usage: Record<string, Usage>; from: string; to: string; threads: Record<string, ThreadTimes> }> {
  const file = join(work, `spec-${spec.tag}.json`);
  writeFileSync(file, JSON.stringify({ ...spec, concurrency, announce: true, users: users.map((u) => ({ email: u.email, password: USER_PASSWORD })) }));
  const from = new Date().toISOString();
  const c = child('replay', [file]);
  await c.firstLine; // signed in: the timed part starts
  const w = watch(pids);
  const t0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, threadTimes(pid)]));
  const out = await c.output;
  const usage = w.stop();
  const threads = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, threadDelta(t0[k], threadTimes(pid))]));
  const result = JSON.parse(out.split('\n')[1]) as ReplayResult;
  usage['load generator'] = { cpuSeconds: result.generatorCpuSeconds, cores: result.generatorCpuSeconds / result.seconds, rssPeakMiB: NaN, rssEndMiB: NaN };
  return { result, usage, from, to: new Date().toISOString(), threads };
}

/** Requests PocketBase logged between two instants, by what they were. */
function pocketbaseRequests(pb: PocketBase, from: string, to: string): Record<string, number> {
  const db = new Database(join(pb.dataDir, 'auxiliary.db'), { readonly: true, fileMustExist: true });
  try {
    const pbTime = (iso: string) => iso.replace('T', ' ');
    const rows = db.prepare(`SELECT json_extract(data, '$.method') AS method, json_extract(data, '$.url') AS url, COUNT(*) AS n FROM _logs
      WHERE json_extract(data, '$.type') = 'request' AND created >= ? AND created <= ? GROUP BY 1, 2`).all(pbTime(from), pbTime(to)) as { method: string; url: string; n: number }[];
    const out: Record<string, number> = { reads: 0, writes: 0, auth: 0, replication: 0, 'lag probe': 0, other: 0, total: 0 };
    for (const r of rows) {
      const path = r.url.split('?')[0];
      let k = 'other';
      if (path.startsWith('/api/hapta-sync/') || path.startsWith('/api/realtime') || path === '/api/collections' || path.startsWith('/api/collections?')) k = 'replication';
      else if (path.startsWith('/api/collections/audit_log/')) k = 'lag probe';
      // The sidecar checking the lag probe's superuser session (the only superuser signed in through it).
      else if (/^\/api\/collections\/(_superusers|pbc_3142635823)(\/|$)/.test(path)) k = 'lag probe';
      else if (/\/auth-|\/request-|\/confirm-/.test(path)) k = 'auth';
      else if (path.startsWith('/api/batch') || (/^\/api\/collections\/[^/]+\/records/.test(path) && r.method !== 'GET')) k = 'writes';
      else if (/^\/api\/(collections\/[^/]+\/records|files)/.test(path)) k = 'reads';
      out[k] += r.n;
      out.total += r.n;
    }
    return out;
  } finally {
    db.close();
  }
}

/** Replication lag: a superuser writes to PocketBase, then asks the sidecar until the record is there. */
function lagProbe(pbUrl: string, pbToken: string, sidecarUrl: string, sidecarToken: string): { stop(): Promise<number[]> } {
  const lags: number[] = [];
  let running = true;
  const loop = (async () => {
    let n = 0;
    while (running) {
      const id = `lp${randomBytes(8).readBigUInt64BE().toString(36).padStart(13, '0').slice(-13)}`;
      n++;
      const rec = await api(pbUrl, '/api/collections/audit_log/records', { method: 'POST', token: pbToken, body: { id, action: 'create', payload: { probe: n } } }).catch(() => null);
      if (rec) {
        const t0 = performance.now();
        for (let i = 0; i < 5000; i++) {
          const res = await fetch(`${sidecarUrl}/api/collections/audit_log/records/${id}`, { headers: { authorization: sidecarToken } });
          await res.arrayBuffer();
          if (res.status === 200) { lags.push(performance.now() - t0); break; }
          await new Promise((r) => setTimeout(r, 1));
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return { async stop() { running = false; await loop; return lags; } };
}

/**
 * The sidecar's own counters: upstream requests by purpose, read fallbacks by reason, records lists by
 * where they ran, feed pages by profile and whether they were kept, the replica lag histogram, and feed
 * rankings by profile (how many, how each was obtained, and their total time, pool queue included).
 */
async function sidecarUpstream(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/api/hapta/metrics`)).text();
  const out: Record<string, number> = {};
  const add = (key: string, v: string) => { out[key] = (out[key] ?? 0) + Number(v); };
  for (const m of text.matchAll(/^hapta_(upstream_requests_total|read_fallback_total)\{([^}]*)\} (\S+)$/gm)) {
    const label = /(?:purpose|reason)="([^"]*)"/.exec(m[2])?.[1] ?? '';
    add(`${m[1] === 'read_fallback_total' ? 'fallback' : 'upstream'}:${label}`, m[3]);
  }
  for (const m of text.matchAll(/^hapta_replica_lag_ms_bucket\{le="([^"]*)"\} (\S+)$/gm)) add(`lag_le:${m[1]}`, m[2]);
  for (const m of text.matchAll(/^hapta_feed_pages_total\{profile="([^"]*)",result="([^"]*)"\} (\S+)$/gm)) add(`pages:${m[1]}:${m[2]}`, m[3]);
  for (const m of text.matchAll(/^hapta_replica_reads_total\{by="([^"]*)"\} (\S+)$/gm)) add(`log_reads:${m[1]}`, m[2]);
  for (const m of text.matchAll(/^hapta_list_reads_total\{placement="([^"]*)"\} (\S+)$/gm)) add(`lists:${m[1]}`, m[2]);
  for (const m of text.matchAll(/^hapta_feed_rankings_total\{profile="([^"]*)",result="([^"]*)"\} (\S+)$/gm)) add(`rankings:${m[1]}:${m[2]}`, m[3]);
  for (const m of text.matchAll(/^hapta_feed_ranking_ms_(sum|count)\{profile="([^"]*)"\} (\S+)$/gm)) add(`ranking_ms_${m[1]}:${m[2]}`, m[3]);
  return out;
}

/**
 * Preloaded into each sidecar process (main thread only): samples the event-loop delay every millisecond
 * and, on SIGUSR2, writes the delay since the previous signal to BENCH_ELD_FILE and starts over. A
 * sample is the time between two ticks of a 1 ms timer, so an idle loop reads about 1 ms.
 */
const ELD_MONITOR = `import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
const file = process.env.BENCH_ELD_FILE;
if (isMainThread && file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let seq = 0;
  const write = () => writeFileSync(file, JSON.stringify({ seq: seq++, n: h.count, p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 }));
  write();
  process.on('SIGUSR2', () => { write(); h.reset(); });
}
`;

interface LoopDelay { seq: number; n: number; p50: number; p99: number; max: number }

/** The sidecar's event-loop delay since the previous call (the first call starts the count); null without a monitor. */
async function loopDelay(s: SidecarProcess, file: string): Promise<LoopDelay | null> {
  if (!existsSync(file)) return null;
  const before = (JSON.parse(readFileSync(file, 'utf8')) as LoopDelay).seq;
  process.kill(s.pid, 'SIGUSR2');
  for (let i = 0; i < 250; i++) {
    await new Promise((r) => setTimeout(r, 20));
    try {
      const now = JSON.parse(readFileSync(file, 'utf8')) as LoopDelay;
      if (now.seq > before) return now;
    } catch { /* being written */ }
  }
  return null;
}

/** Starts a sidecar process with the event-loop monitor preloaded; `eld` is its monitor's file. */
async function startMonitoredSidecar(pb: PocketBase, name: string, env: Record<string, string>): Promise<{ s: SidecarProcess; eld: string }> {
  const monitor = join(work, 'eld-monitor.mjs');
  if (!existsSync(monitor)) writeFileSync(monitor, ELD_MONITOR);
  const eld = join(work, `eld-${name}.json`);
  const s = await startSidecarProcess(pb, { ...env, BENCH_ELD_FILE: eld }, { nodeArgs: [...nodeArgs, '--import', pathToFileURL(monitor).href] });
  return { s, eld };
}

const sidecarEnv = (extra: Record<string, string> = {}) => ({ HAPTA_TRUSTED_PROXIES: 'loopback', HAPTA_WATCH_MIGRATIONS: 'false', HAPTA_LOG_LEVEL: 'warn', ...extra });
// BENCH_SIDECAR_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the sidecars.
const nodeArgs = process.env.BENCH_SIDECAR_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

interface TargetReport {
  name: string; result: ReplayResult; usage: Record<string, Usage>; pocketbase?: Record<string, number>; lagMs?: ReturnType<typeof summary>; sidecarCounters?: Record<string, number>;
  /** Event-loop delay (ms) of each sidecar process over the measured run. */
  loopDelayMs?: Record<string, LoopDelay>;
  /** The one sidecar's threads over the measured run. */
  threads?: ThreadTimes;
}

async function main(): Promise<void> {
  const began = Date.now();
  if (PAIR && !process.argv.includes('--seed-only') && !haproxyBinary()) throw new Error(`${HAPROXY_INSTALL_HINT} (the two-sidecar run needs it; --no-pair skips it)`);
  const { pb, data } = await pocketbase();
  if (process.argv.includes('--seed-only')) { await pb.stop(); return; }
  const reports: TargetReport[] = [];
  let sidecar: SidecarProcess | null = null;
  const extra: SidecarProcess[] = [];
  const children: ChildProcess[] = [];
  let haproxy: Haproxy | null = null;
  try {
    const plan = buildPlan(data, MIX);
    const warm = buildPlan(data, { ...MIX, requests: SIZE.warm, seed: 8, readOnly: true });
    const planFile = join(work, 'plan.json');
    const warmFile = join(work, 'warm.json');
    writeFileSync(planFile, JSON.stringify(plan));
    writeFileSync(warmFile, JSON.stringify(warm));
    const counts: Record<string, number> = {};
    for (const s of plan) for (const r of s.requests) counts[r.kind] = (counts[r.kind] ?? 0) + 1;
    const planned = Object.values(counts).reduce((a, b) => a + b, 0);
    log(`plan: ${planned} requests in ${plan.length} sessions; ${JSON.stringify(counts)}`);
    const suPb = await superuserToken(pb.url);
    const settle = () => new Promise((r) => setTimeout(r, 4000)); // PocketBase writes its request log in batches

    // 1. PocketBase direct (--skip-direct: only the sidecar's side, for profiling).
    if (!SKIP_DIRECT) {
      log('PocketBase direct: warm-up');
      await replay({ url: pb.url, mode: 'direct', planFile: warmFile, tag: 'w' }, data.users, {});
      log('PocketBase direct: measured run');
      const direct = await replay({ url: pb.url, mode: 'direct', planFile, tag: 'p' }, data.users, { PocketBase: pb.pid! });
      await settle();
      reports.push({ name: 'PocketBase direct', result: direct.result, usage: direct.usage, pocketbase: pocketbaseRequests(pb, direct.from, direct.to) });
      log(`  ${Math.round(direct.result.rps)} req/s, p99 ${direct.result.overall.p99.toFixed(1)} ms`);
    }

    // 2. One sidecar.
    log('sidecar: starting (replica bootstrap)');
    const t0 = Date.now();
    const started = await startMonitoredSidecar(pb, 'one', sidecarEnv());
    sidecar = started.s;
    log(`  ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // Signed in before the warm-up, so the sign-in itself is not in the measured run.
    const suSidecar = await superuserToken(sidecar.url);
    await replay({ url: sidecar.url, mode: 'sidecar', planFile: warmFile, tag: 'x' }, data.users, {});
    if (COSTS) {
      await costs(sidecar, pb, plan, data.users);
      return;
    }
    const before = await sidecarUpstream(sidecar.url);
    const probe = lagProbe(pb.url, suPb, sidecar.url, suSidecar);
    log('sidecar: measured run');
    const captureFile = join(work, 'capture.json');
    await loopDelay(sidecar, started.eld);
    const one = await replay({ url: sidecar.url, mode: 'sidecar', planFile, tag: 's', captureFile }, data.users, { PocketBase: pb.pid!, sidecar: sidecar.pid });
    const eldOne = await loopDelay(sidecar, started.eld);
    const lags = await probe.stop();
    const after = await sidecarUpstream(sidecar.url);
    await settle();
    reports.push({
      name: 'sidecar', result: one.result, usage: one.usage, pocketbase: pocketbaseRequests(pb, one.from, one.to), lagMs: summary(lags),
      loopDelayMs: eldOne ? { sidecar: eldOne } : undefined, threads: one.threads.sidecar,
      sidecarCounters: Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0)),
    });
    log(`  ${Math.round(one.result.rps)} req/s, p99 ${one.result.overall.p99.toFixed(1)} ms`);

    // 3. The floor: bare Node with the sidecar's bodies.
    const floor = child('floor', [captureFile]);
    children.push(floor.proc);
    const floorUrl = `http://127.0.0.1:${(await floor.firstLine).trim()}`;
    log('floor: measured run');
    const bare = await replay({ url: floorUrl, mode: 'floor', planFile, tag: 'f' }, data.users, { 'floor server': floor.proc.pid! });
    reports.push({ name: 'Node floor', result: bare.result, usage: bare.usage });
    floor.proc.kill();

    // 4. Two sidecars sharing Redis behind HAProxy.
    if (PAIR) {
      await sidecar.stop();
      sidecar = null;
      const redis = new Redis(REDIS_URL);
      await redis.flushdb();
      redis.disconnect();
      log('two sidecars with Redis: starting');
      const env = sidecarEnv({ HAPTA_REDIS_URL: REDIS_URL });
      const ma = await startMonitoredSidecar(pb, 'a', { ...env, HAPTA_CONSUMER_ID: 'bench_a' });
      const a = ma.s;
      extra.push(a);
      const mb = await startMonitoredSidecar(pb, 'b', { ...env, HAPTA_CONSUMER_ID: 'bench_b' });
      const b = mb.s;
      extra.push(b);
      haproxy = await startHaproxy(join(work, 'haproxy'), { port: await freePort(), backends: [a, b].map((s, i) => ({ name: `s${i + 1}`, port: Number(new URL(s.url).port) })) },
        (line) => { if (/is (UP|DOWN)/.test(line)) log(`  haproxy: ${line}`); });
      for (const name of ['s1', 's2']) await haproxy.waitFor(name, 'UP');
      const lbUrl = haproxy.url;
      const suPair = await superuserToken(lbUrl);
      await replay({ url: lbUrl, mode: 'sidecar', planFile: warmFile, tag: 'y' }, data.users, {});
      const probe2 = lagProbe(pb.url, suPb, lbUrl, suPair);
      log('two sidecars: measured run');
      await loopDelay(a, ma.eld);
      await loopDelay(b, mb.eld);
      const two = await replay({ url: lbUrl, mode: 'sidecar', planFile, tag: 'r' }, data.users, { PocketBase: pb.pid!, 'sidecar A': a.pid, 'sidecar B': b.pid, HAProxy: haproxy.proc.pid! });
      const [eldA, eldB] = [await loopDelay(a, ma.eld), await loopDelay(b, mb.eld)];
      const lags2 = await probe2.stop();
      await settle();
      reports.push({
        name: '2 sidecars + Redis, HAProxy', result: two.result, usage: two.usage, pocketbase: pocketbaseRequests(pb, two.from, two.to), lagMs: summary(lags2),
        loopDelayMs: eldA && eldB ? { 'sidecar A': eldA, 'sidecar B': eldB } : undefined,
      });
      log(`  ${Math.round(two.result.rps)} req/s, p99 ${two.result.overall.p99.toFixed(1)} ms`);
    }

    print(reports, counts, planned);
    log(`done in ${((Date.now() - began) / 1000).toFixed(0)} s`);
  } finally {
    for (const c of children) c.kill();
    await haproxy?.stop();
    await sidecar?.stop().catch(() => {});
    for (const s of extra) await s.stop().catch(() => {});
    await pb.stop();
    rmSync(work, { recursive: true, force: true }); // with --data, the seeded PocketBase lives elsewhere
  }
}

/**
 * --costs: each request type of the plan replayed alone (the plan's own requests of that type, in their
 * sessions' order; the writes together, since an unlike undoes a like) at a concurrency of 4 on the warm
 * sidecar, with what each request cost the sidecar's main thread, its other threads and PocketBase.
 * At the mix's load requests share loop turns and caches differently, so these are costs of one request
 * on a lightly loaded sidecar, not shares of the mix.
 */
async function costs(sidecar: SidecarProcess, pb: PocketBase, plan: ReturnType<typeof buildPlan>, users: { email: string }[]): Promise<void> {
  const groups: [string, (k: Kind) => boolean][] = [];
  const kinds = [...new Set(plan.flatMap((s) => s.requests.map((r) => r.kind)))];
  for (const k of kinds) if (!WRITE_KINDS.has(k)) groups.push([k, (x) => x === k]);
  groups.push(['writes', (x) => WRITE_KINDS.has(x)]);
  const rows: (string | number)[][] = [];
  let tag = 0;
  for (const [name, pick] of groups) {
    const sessions = plan.map((s) => ({ ...s, requests: s.requests.filter((r) => pick(r.kind)) })).filter((s) => s.requests.length > 0);
    const file = join(work, `costs-${name}.json`);
    writeFileSync(file, JSON.stringify(sessions));
    const r = await replay({ url: sidecar.url, mode: 'sidecar', planFile: file, tag: 'klmnopqrstuvwxyz'[tag++ % 16] }, users, { sidecar: sidecar.pid, PocketBase: pb.pid! }, 4);
    const n = r.result.requests;
    const us = (s: number) => Math.round((s * 1e6) / n);
    const t = r.threads.sidecar;
    rows.push([name, n, Math.round(r.result.rps), r.result.overall.p50, r.result.overall.p99, us(t.mainRun), us(t.otherRun), us(r.usage.PocketBase.cpuSeconds), r.result.overall.errors]);
    log(`  ${name}: ${n} requests, main thread ${us(t.mainRun)} µs each`);
  }
  console.log(`\neach request type alone, 4 concurrent, on the warm sidecar (CPU per request, µs; PocketBase's to 10 ms ticks)\n`);
  console.log(table(['type', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'main thread', 'other threads', 'PocketBase', 'errors'], rows));
}

function print(reports: TargetReport[], counts: Record<string, number>, planned: number): void {
  const direct = reports.find((r) => r.name === 'PocketBase direct') ?? null;
  const one = reports.find((r) => r.name === 'sidecar') ?? null;
  const others = reports.filter((r) => r !== direct && r !== one);
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const overall = reports.map((r) => [r.name, Math.round(r.result.rps), r.result.overall.p50, r.result.overall.p95, r.result.overall.p99, r.result.overall.errors,
    !direct ? '-' : r === direct ? '1.0x' : `${(r.result.rps / direct.result.rps).toFixed(1)}x`,
    !direct ? '-' : r === direct ? '1.0x' : `${(direct.result.overall.p99 / r.result.overall.p99).toFixed(1)}x`]);
  console.log(`\n${planned} requests (${Object.entries(counts).filter(([k]) => WRITE_KINDS.has(k as Kind)).reduce((a, [, n]) => a + n, 0)} writes), ${MIX.signedIn} signed-in + ${MIX.anonymous} anonymous visitors, ${CONCURRENCY} concurrent; data ${JSON.stringify(SIZES)}${QUICK ? ' (--quick)' : ''}\n`);
  console.log(table(['target', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'throughput vs PB', 'p99 PB/this'], overall));

  // Per kind: PocketBase direct and the sidecar side by side, whether the sidecar's p99 is at most
  // PocketBase's, then the other targets.
  const kinds = Object.keys(counts) as Kind[];
  const ms = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(1));
  const errs = (r: TargetReport, k: Kind) => (r.result.kinds[k]?.errors ? ` (${r.result.kinds[k]!.errors} err)` : '');
  const pair = [direct, one].filter((r): r is TargetReport => r !== null);
  const short = (r: TargetReport) => (r === direct ? 'PocketBase' : r.name);
  console.log('\nper request type (ms)\n');
  console.log(table(
    ['type', 'count', ...pair.flatMap((r) => [`${short(r)} p50`, `${short(r)} p99`]), ...(direct && one ? ['sidecar p99 <= PB p99'] : []), ...others.map((r) => `${r.name} p50 / p99`)],
    kinds.map((k) => {
      const row: (string | number)[] = [k, counts[k]];
      for (const r of pair) row.push(ms(r.result.kinds[k]?.p50), ms(r.result.kinds[k]?.p99) + errs(r, k));
      if (direct && one) {
        const [d, x] = [direct.result.kinds[k]?.p99, one.result.kinds[k]?.p99];
        row.push(d === undefined || x === undefined ? '-' : x <= d ? 'yes' : `no (${(x / d).toFixed(1)}x)`);
      }
      for (const r of others) { const x = r.result.kinds[k]; row.push(x ? `${ms(x.p50)} / ${ms(x.p99)}${errs(r, k)}` : '-'); }
      return row;
    })));

  for (const r of reports) {
    for (const [proc, d] of Object.entries(r.loopDelayMs ?? {})) {
      console.log(`event-loop delay of ${proc} (${r.name}) over the measured run: p50 ${d.p50.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms, max ${d.max.toFixed(1)} ms (${d.n} samples of a 1 ms timer)`);
    }
  }

  const cats = ['reads', 'writes', 'auth', 'replication', 'lag probe', 'other', 'total'];
  const withPb = reports.filter((r) => r.pocketbase);
  console.log("\nrequests PocketBase received (its own request log, sign-ins included)\n");
  console.log(table(['target', ...cats], withPb.map((r) => [r.name, ...cats.map((c) => r.pocketbase![c] ?? 0)])));

  const usageRows: (string | number)[][] = [];
  for (const r of reports) for (const [proc, u] of Object.entries(r.usage)) usageRows.push([r.name, proc, u.cpuSeconds, u.cores, Math.round(u.rssPeakMiB)]);
  console.log('\nCPU and memory during the measured run\n');
  console.log(table(['target', 'process', 'CPU s', 'cores busy', 'peak RSS MiB'], usageRows));
  for (const r of reports) {
    const t = r.threads;
    if (t) {
      const names = Object.entries(t.otherByName ?? {}).sort((a, b) => b[1] - a[1]).map(([name, s]) => `${name === 'node' ? "V8's and libuv's helpers" : name} ${s.toFixed(1)}`);
      console.log(`the sidecar's threads (${r.name}): the main thread ran ${t.mainRun.toFixed(1)} s of the ${r.result.seconds.toFixed(1)} s run (${Math.round((100 * t.mainRun) / r.result.seconds)}%) and waited ${t.mainWait.toFixed(1)} s for a core; its other threads ran ${t.otherRun.toFixed(1)} s${names.length ? ` (${names.join(', ')})` : ''}`);
    }
  }
  for (const r of reports) if (r.lagMs) console.log(`replication lag under the mix (${r.name}): p50 ${r.lagMs.p50.toFixed(1)} ms, p99 ${r.lagMs.p99.toFixed(1)} ms, max ${r.lagMs.max.toFixed(1)} ms (${r.lagMs.n} probes)`);

  // Feed rankings the sidecar ran during its measured run: how many, how obtained, their mean time
  // (the wait for a pool thread included).
  const c = one?.sidecarCounters;
  if (c) {
    const profiles = [...new Set(Object.keys(c).filter((k) => k.startsWith('ranking_ms_count:')).map((k) => k.split(':')[1]))].sort();
    if (profiles.length) {
      console.log('\nfeed rankings during the sidecar\'s run\n');
      console.log(table(['profile', 'rankings', 'window', 'widened', 'gave_up', 'full', 'mean ms (queue included)'], profiles.map((p) => [p, c[`ranking_ms_count:${p}`],
        ...['window', 'widened', 'gave_up', 'full'].map((res) => c[`rankings:${p}:${res}`] ?? 0), c[`ranking_ms_sum:${p}`] / c[`ranking_ms_count:${p}`]])));
    }
    // The sidecar's own lag histogram (a change's commit in PocketBase to its batch applied): the bucket
    // each quantile falls in, over the changes applied during the run.
    const buckets = Object.keys(c).filter((k) => k.startsWith('lag_le:')).map((k) => ({ le: k.slice(7), n: c[k] }))
      .sort((a, b) => (a.le === '+Inf' ? Infinity : Number(a.le)) - (b.le === '+Inf' ? Infinity : Number(b.le)));
    const all = buckets.at(-1)?.n ?? 0;
    if (all > 0) {
      const at = (q: number) => buckets.find((b) => b.n >= q * all)?.le ?? '+Inf';
      console.log(`replica lag as the sidecar measures it (commit in PocketBase to applied, ${all} batches): p50 <= ${at(0.5)} ms, p99 <= ${at(0.99)} ms`);
    }
    const rest = Object.fromEntries(Object.entries(c).filter(([k]) => !k.startsWith('ranking') && !k.startsWith('lag_le:')));
    console.log(`sidecar's own counters during its run: ${JSON.stringify(rest)}`);
  }
  for (const r of reports) if (r.result.errorSamples.length) console.log(`errors (${r.name}), first ones:\n  ${r.result.errorSamples.slice(0, 5).join('\n  ')}`);

  // The goals: per kind the sidecar's p99 at most PocketBase direct's, overall p99 <= 100 ms, event-loop
  // delay p99 <= 10 ms, no reads reaching PocketBase.
  if (direct && one) {
    const slower = kinds.filter((k) => (one.result.kinds[k]?.p99 ?? 0) > (direct.result.kinds[k]?.p99 ?? Infinity));
    const eld = one.loopDelayMs?.sidecar;
    console.log(`\ngoals: per-kind p99 <= PocketBase's: ${slower.length ? `no (${slower.join(', ')})` : 'yes'}; overall p99 ${one.result.overall.p99.toFixed(1)} ms <= 100: ${one.result.overall.p99 <= 100 ? 'yes' : 'no'}; `
      + `event-loop delay p99 ${eld ? eld.p99.toFixed(2) : '-'} ms <= 10: ${eld ? (eld.p99 <= 10 ? 'yes' : 'no') : '-'}; PocketBase reads ${one.pocketbase?.reads ?? '-'}: ${one.pocketbase?.reads === 0 ? 'yes' : 'no'}`);
  }

  const result = { command, quick: QUICK, sizes: SIZES, mix: MIX, concurrency: CONCURRENCY, planned: counts, reports };
  if (QUICK || !direct) {
    // Not the figure of record: kept out of bench/results.
    const file = join(tmpdir(), `hapta-headline${QUICK ? '-quick' : ''}${direct ? '' : '-sidecar'}.json`);
    writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2) + '\n');
    console.log(`\nsaved ${file}`);
    return;
  }
  writeChart(reports, planned);
  console.log(`\nsaved ${saveResult('headline', result)} and bench/results/headline.svg`);
}

interface RunShape { mix: typeof MIX; sizes: typeof SIZES; concurrency: number }

function writeChart(reports: TargetReport[], planned: number, run: RunShape = { mix: MIX, sizes: SIZES, concurrency: CONCURRENCY }): void {
  const { mix, sizes, concurrency } = run;
  const cores = cpus().length;
  const subtitle = `${planned} requests, ${mix.writeShare * 100}% writes, ${concurrency} concurrent, ${sizes.posts.toLocaleString('en-US')} posts / ${sizes.likes.toLocaleString('en-US')} likes; one ${cores}-core machine`;
  const svg = chartSvg('PocketBase direct vs the sidecar: one social-app request mix', subtitle,
    reports.map((r) => ({ name: r.name, rps: r.result.rps, p50: r.result.overall.p50, p95: r.result.overall.p95, p99: r.result.overall.p99 })));
  writeFileSync(join(projectRoot, 'bench', 'results', 'headline.svg'), svg);
}

// --chart-only: draw the chart again from the last results (bench/results/headline.json).
if (process.argv.includes('--chart-only')) {
  const last = JSON.parse(readFileSync(join(projectRoot, 'bench', 'results', 'headline.json'), 'utf8')) as RunShape & { reports: TargetReport[]; planned: Record<string, number> };
  writeChart(last.reports, Object.values(last.planned).reduce((a, b) => a + b, 0), last);
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
