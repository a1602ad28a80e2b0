// Cluster benchmark (`npm run bench:cluster`; prints figures, not a test): what each added sidecar costs
// PocketBase. For 1, 2, 4 and 8 sidecar processes sharing Redis behind HAProxy (scripts/cluster.ts's
// configuration), it measures, first idle and then at a steady rate of writes through HAProxy (creates by
// signed-in users, sent on a fixed schedule whatever the latency), the change-log requests PocketBase
// receives (from each sidecar's hapta_upstream_requests_total{purpose="sync"}, and from PocketBase's own
// request log, _logs in auxiliary.db), PocketBase's CPU (from /proc), the sidecars' and HAProxy's, and
// the writes' latency; then fits PocketBase's cost per sidecar and says how many sidecars one PocketBase
// can feed, and what stops it.
// Options: --sidecars 1,2,4,8 --rate 20 (writes/s) --seconds 20 (measured load) --idle 8 (measured idle)
// --out NAME (results file bench/results/NAME.json, default cluster) --report FILE (print a saved run again).
// Redis: 127.0.0.1:6379 database 12 (HAPTA_BENCH_REDIS_URL), emptied before each size.
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { HAPROXY_INSTALL_HINT, haproxyBinary, startHaproxy, type Haproxy } from '../scripts/cluster.js';
import { api, superuserToken } from '../test/harness/dump.js';
import { freePort } from '../test/harness/net.js';
import { startPocketBase, type PocketBase } from '../test/harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from '../test/harness/seed.js';
import { startSidecarProcess, type SidecarProcess } from '../test/harness/sidecar-process.js';
import { watch, type Usage } from './procstat.js';
import { saveResult, summary, table } from './stats.js';

const flag = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
};
const SIZES = (flag('sidecars') ?? '1,2,4,8').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
const RATE = Number(flag('rate') ?? 20);
const SECONDS = Number(flag('seconds') ?? 20);
const IDLE_SECONDS = Number(flag('idle') ?? 8);
const REDIS_URL = process.env.HAPTA_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';
const WRITERS = 20;

const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Upstream requests a sidecar has sent so far, by purpose. */
async function upstream(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/api/hapta/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^hapta_upstream_requests_total\{purpose="([^"]*)"\} (\S+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

/** Requests PocketBase logged between two instants: change-log reads, log-head reads, other. */
function pocketbaseLog(pb: PocketBase, from: string, to: string): { changes: number; head: number; other: number } {
  const db = new Database(join(pb.dataDir, 'auxiliary.db'), { readonly: true, fileMustExist: true });
  try {
    const t = (iso: string) => iso.replace('T', ' ');
    const rows = db.prepare(`SELECT json_extract(data, '$.url') AS url, COUNT(*) AS n FROM _logs
      WHERE json_extract(data, '$.type') = 'request' AND created >= ? AND created <= ? GROUP BY 1`).all(t(from), t(to)) as { url: string; n: number }[];
    const out = { changes: 0, head: 0, other: 0 };
    for (const r of rows) {
      const path = r.url.split('?')[0];
      if (path === '/api/hapta-sync/changes') out.changes += r.n;
      else if (path === '/api/hapta-sync/head') out.head += r.n;
      else out.other += r.n;
    }
    return out;
  } finally {
    db.close();
  }
}

interface Phase {
  seconds: number;
  /** Change-log requests (purpose sync: changes and head) per second, all sidecars together. */
  syncPerSecond: number;
  pocketbase: { changes: number; head: number; other: number };
  usage: Record<string, Usage>;
  /** The machine's 1-minute load average at the end (other work on the machine shows here). */
  loadAverage: number;
  writes?: { offered: number; ok: number; failed: number; perSecond: number; p50: number; p99: number; max: number };
}

interface SizeReport { sidecars: number; idle: Phase; load: Phase }

async function measure(pb: PocketBase, sidecars: SidecarProcess[], haproxy: Haproxy, seconds: number, writers: { id: string; key: string }[] | null): Promise<Phase> {
  const pids: Record<string, number> = { PocketBase: pb.pid! };
  sidecars.forEach((s, i) => (pids[`sidecar ${i + 1}`] = s.pid));
  pids.HAProxy = haproxy.proc.pid!;
  const before = await Promise.all(sidecars.map((s) => upstream(s.url)));
  const from = new Date().toISOString();
  const w = watch(pids);
  const latencies: number[] = [];
  let offered = 0;
  let failed = 0;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  if (writers) {
    // Open loop: write n is sent at t0 + n / RATE, whether or not the earlier ones have been answered.
    for (let n = 0; performance.now() - t0 < seconds * 1000; n++) {
      const due = t0 + (n * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const u = writers[n % writers.length];
      offered++;
      const started = performance.now();
      pending.push(fetch(`${haproxy.url}/api/collections/posts/records`, {
        method: 'POST', headers: { authorization: u.key, 'content-type': 'application/json' },
        body: JSON.stringify({ title: `bench ${n}`, author: u.id, published: true }),
      }).then(async (res) => {
        await res.arrayBuffer();
        if (res.status === 200) latencies.push(performance.now() - started);
        else failed++;
      }, () => {
        failed++;
      }));
    }
    await Promise.all(pending);
  } else {
    await sleep(seconds * 1000);
  }
  const wall = (performance.now() - t0) / 1000;
  const usage = w.stop();
  const to = new Date().toISOString();
  const after = await Promise.all(sidecars.map((s) => upstream(s.url)));
  const sync = after.reduce((a, m, i) => a + (m.sync ?? 0) - (before[i].sync ?? 0), 0);
  await sleep(4000); // PocketBase writes its request log in batches
  const phase: Phase = { seconds: wall, syncPerSecond: sync / wall, pocketbase: pocketbaseLog(pb, from, to), usage, loadAverage: loadavg()[0] };
  if (writers) {
    const s = summary(latencies);
    phase.writes = { offered, ok: latencies.length, failed, perSecond: latencies.length / wall, p50: s.p50, p99: s.p99, max: s.max };
  }
  return phase;
}

async function runSize(pb: PocketBase, seeded: Seeded, n: number, work: string): Promise<SizeReport> {
  const redis = new Redis(REDIS_URL);
  await redis.flushdb();
  await redis.quit();
  const env = (i: number) => ({
    HAPTA_REDIS_URL: REDIS_URL, HAPTA_SESSION_SECRET: 'bench-cluster-secret-0123456789abcdefghij', HAPTA_TRUSTED_PROXIES: 'loopback',
    HAPTA_CONSUMER_ID: `bench_cluster_${n}_${i}`, HAPTA_RATELIMIT: 'false', HAPTA_WATCH_MIGRATIONS: 'false', HAPTA_LOG_LEVEL: 'warn',
  });
  const sidecars: SidecarProcess[] = [];
  let haproxy: Haproxy | null = null;
  try {
    log(`${n} sidecar(s): starting`);
    // Two at a time: eight bootstraps at once on two cores take longer than in turn.
    for (let i = 0; i < n; i += 2) sidecars.push(...await Promise.all([i, i + 1].filter((j) => j < n).map((j) => startSidecarProcess(pb, env(j + 1)))));
    haproxy = await startHaproxy(join(work, `haproxy-${n}`), { port: await freePort(), backends: sidecars.map((s, i) => ({ name: `s${i + 1}`, port: Number(new URL(s.url).port) })) });
    for (let i = 0; i < n; i++) await haproxy.waitFor(`s${i + 1}`, 'UP');
    const writers = await Promise.all(seeded.users.slice(0, WRITERS).map(async (u) => ({
      id: u.id, key: (await api(haproxy!.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: u.email, password: USER_PASSWORD } })).token as string,
    })));
    await sleep(3000);
    log(`${n} sidecar(s): idle, ${IDLE_SECONDS} s`);
    const idle = await measure(pb, sidecars, haproxy, IDLE_SECONDS, null);
    log(`${n} sidecar(s): ${RATE} writes/s through HAProxy, ${SECONDS} s`);
    const load = await measure(pb, sidecars, haproxy, SECONDS, writers);
    log(`  PocketBase ${idle.usage.PocketBase.cores.toFixed(3)} -> ${load.usage.PocketBase.cores.toFixed(3)} cores, ${load.syncPerSecond.toFixed(1)} change-log req/s, writes p99 ${load.writes!.p99.toFixed(1)} ms`);
    return { sidecars: n, idle, load };
  } finally {
    await haproxy?.stop();
    await Promise.all(sidecars.map((s) => s.stop().catch(() => {})));
  }
}

const sum = (u: Record<string, Usage>, prefix: string) => Object.entries(u).filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v.cores, 0);

/** Least-squares line y = a + b x. */
function fit(xs: number[], ys: number[]): { a: number; b: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  const b = den === 0 ? 0 : num / den;
  return { a: my - b * mx, b };
}

interface Meta { command: string; rate: number; seconds: number; idleSeconds: number }

function report(reports: SizeReport[], meta: Meta): Record<string, unknown> {
  const rows = reports.map((r) => {
    const w = r.load.writes!;
    const perWrite = (r.load.syncPerSecond - r.idle.syncPerSecond) / w.perSecond;
    return [r.sidecars, w.perSecond, `${w.p50.toFixed(1)} / ${w.p99.toFixed(1)}`, w.failed, r.idle.syncPerSecond, r.load.syncPerSecond, perWrite,
      r.load.pocketbase.changes / r.load.seconds, r.load.pocketbase.head / r.load.seconds, r.load.pocketbase.changes / r.load.seconds / w.perSecond / r.sidecars,
      r.idle.usage.PocketBase.cores, r.load.usage.PocketBase.cores, (r.load.usage.PocketBase.cpuSeconds / r.load.seconds / w.perSecond) * 1000,
      sum(r.load.usage, 'sidecar'), r.load.usage.HAProxy.cores, r.load.loadAverage];
  });
  console.log(`\nPocketBase's cost per sidecar: ${meta.rate} writes/s offered through HAProxy for ${meta.seconds} s (idle: ${meta.idleSeconds} s without writes); ${cpus().length} cores, everything on this machine\n`);
  console.log(table(['sidecars', 'writes/s', 'write p50 / p99 ms', 'failed', 'change-log req/s idle', 'change-log req/s', 'per write', 'PB log: changes/s', 'PB log: head/s',
    'log reads per write per sidecar', 'PB cores idle', 'PB cores', 'PB CPU ms per write', 'sidecars cores', 'HAProxy cores', 'load avg'], rows));

  // PocketBase's cost as a line in the number of sidecars, fitted over the sizes where every sidecar still
  // read the log once per write (beyond, reads carry several changes each and the cost stops being linear).
  const readsPerWrite = (r: SizeReport) => r.load.pocketbase.changes / r.load.seconds / r.load.writes!.perSecond / r.sidecars;
  const keptUp = reports.filter((r) => readsPerWrite(r) >= 0.9);
  const fitted = keptUp.length >= 2 ? keptUp : reports;
  const batched = reports.filter((r) => readsPerWrite(r) < 0.9);
  const xs = fitted.map((r) => r.sidecars);
  const cpu = fit(xs, fitted.map((r) => r.load.usage.PocketBase.cores));
  const cpuIdle = fit(reports.map((r) => r.sidecars), reports.map((r) => r.idle.usage.PocketBase.cores));
  const req = fit(xs, fitted.map((r) => r.load.syncPerSecond));
  const sidecarCores = fit(xs, fitted.map((r) => sum(r.load.usage, 'sidecar')));
  const rate = fitted[fitted.length - 1].load.writes!.perSecond;
  const cores = cpus().length;
  const perRead = req.b > 0 ? (cpu.b / req.b) * 1000 : NaN;
  const fullCore = cpu.b > 0 ? (1 - cpu.a) / cpu.b : Infinity;
  const machine = cpu.b + sidecarCores.b > 0 ? (cores - cpu.a - sidecarCores.a) / (cpu.b + sidecarCores.b) : Infinity;
  const n = (x: number) => (Number.isFinite(x) ? String(Math.floor(x)) : 'unbounded');
  console.log(`\nfit over ${xs.join(', ')} sidecars at ${rate.toFixed(1)} writes/s (least squares${batched.length ? `; ${batched.map((r) => r.sidecars).join(', ')} left out, see below` : ''}):`);
  console.log(`  change-log requests to PocketBase: ${req.a.toFixed(1)} + ${req.b.toFixed(1)} per sidecar per second (${(req.b / rate).toFixed(2)} per write per sidecar; the constant is mostly the writer's own log-head read)`);
  console.log(`  PocketBase CPU: ${cpu.a.toFixed(3)} + ${cpu.b.toFixed(4)} cores per sidecar, i.e. ${perRead.toFixed(2)} ms per change-log read (idle: ${cpuIdle.a.toFixed(3)} + ${cpuIdle.b.toFixed(4)} cores per sidecar)`);
  console.log(`  sidecars' CPU: ${sidecarCores.a.toFixed(3)} + ${sidecarCores.b.toFixed(3)} cores per sidecar`);
  console.log(`  one PocketBase core feeds (1 - ${cpu.a.toFixed(3)}) / ${cpu.b.toFixed(4)} = ${n(fullCore)} sidecars at this rate: its cost grows with sidecars x writes/s (each sidecar`);
  console.log(`    reads the log once per write while it keeps up), about ${n(1000 / perRead)} change-log reads/s per PocketBase core`);
  for (const r of batched) {
    console.log(`  with ${r.sidecars} sidecars a sidecar read the log ${readsPerWrite(r).toFixed(2)} times per write: reads carried several changes, PocketBase used ${r.load.usage.PocketBase.cores.toFixed(2)} cores`
      + ` (the line says ${(cpu.a + cpu.b * r.sidecars).toFixed(2)}), and writes took ${r.load.writes!.p50.toFixed(0)} / ${r.load.writes!.p99.toFixed(0)} ms p50 / p99: lag and latency grow instead of PocketBase's load`);
  }
  console.log(`  on this ${cores}-core machine, where PocketBase, the sidecars and the load share the cores, PocketBase plus the sidecars' replication work fill it at about ${n(machine)} sidecars`);
  return { fit: { pocketbaseCores: cpu, pocketbaseIdleCores: cpuIdle, changeLogPerSecond: req, sidecarCores, pocketbaseMsPerChangeLogRead: perRead } };
}

async function main(): Promise<void> {
  const saved = flag('report');
  if (saved) {
    // Print the figures of an earlier run again (its JSON in bench/results/).
    const r = JSON.parse(readFileSync(saved, 'utf8')) as Meta & { reports: SizeReport[] };
    report(r.reports, r);
    return;
  }
  if (!haproxyBinary()) throw new Error(HAPROXY_INSTALL_HINT);
  const work = mkdtempSync(join(tmpdir(), 'hapta-bench-cluster-'));
  const pb = await startPocketBase({ baseDir: join(work, 'pb'), automigrate: false });
  try {
    const seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: WRITERS, posts: 500, comments: 200, likes: 500, follows: 50 }, 5);
    const reports: SizeReport[] = [];
    for (const n of SIZES) reports.push(await runSize(pb, seeded, n, work));
    const meta: Meta = { command: `npm run bench:cluster${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`, rate: RATE, seconds: SECONDS, idleSeconds: IDLE_SECONDS };
    const fitted = report(reports, meta);
    console.log(`\nsaved ${saveResult(flag('out') ?? 'cluster', { ...meta, reports, ...fitted })}`);
  } finally {
    await pb.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
