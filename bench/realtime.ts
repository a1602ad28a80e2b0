// Realtime fan-out benchmark (prints figures; not a test): PocketBase's realtime API direct against the
// sidecar's (sidecar/realtime/), in one run, at several subscriber counts. Every subscriber is a distinct
// user subscribed to `posts/*`, whose list rule is per subscriber (`published = true || author =
// @request.auth.id`). Writes go straight to PocketBase at a fixed rate (a share of them published: every
// subscriber gets those; the others only reach their author). Reported per size and target: writes/s
// achieved, events delivered / expected, write-to-event latency p50/p99 (from the write being sent to
// the frame being read by the subscriber), CPU of PocketBase and the sidecar during the writes, peak RSS.
//
// Processes: this orchestrator (PocketBase's writes), PocketBase (restarted before each run), the sidecar (its own process, realtime
// mounted in front of the shipped app as the route table will), and `--loads` load processes holding
// the subscribers as raw SSE clients.
//
// Usage: npm run bench:realtime [-- --sizes 500,2000,5000,10000 --rate 20 --seconds 15 --published 0.1 --loads 2
//   --targets pocketbase,sidecar[,floor] --heap DIR]
// `floor` adds bare Node relaying one PocketBase stream to the same subscribers (no rules, no rendering):
// the delivery latency this machine allows any Node process, beside which the sidecar's is read.
// --heap DIR writes a heap snapshot of the sidecar into DIR at the end of each of its runs (subscribers
// still connected); the sidecar's heap and RSS at that point are printed either way.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tsLoader } from '../lib/runtime.js';
import { superuserToken } from '../test/harness/dump.js';
import { startPocketBase, SUPERUSER } from '../test/harness/pocketbase.js';
import { startSidecar, waitForSync } from '../test/harness/sidecar.js';
import { watch } from './procstat.js';
import { realtimeChartSvg } from './chart.js';
import { saveResult, summary, table } from './stats.js';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    sizes: { type: 'string', default: '500,2000,5000,10000' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '15' },
    published: { type: 'string', default: '0.1' },
    loads: { type: 'string', default: '2' },
    targets: { type: 'string', default: 'pocketbase,sidecar' },
    drain: { type: 'string', default: '20' },
    pb: { type: 'string', default: '' },
    migrations: { type: 'string', default: '' },
    heap: { type: 'string', default: '' },
    token: { type: 'string', default: '' },
  },
});

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const userId = (i: number) => `bench${String(i).padStart(10, '0')}`;

/** Bulk users (raw SQL copies of one template user: no password hashing per user) and their tokens. */
const BENCH_HOOK = `
routerAdd("POST", "/api/hapta-bench/users", (e) => {
  const n = e.requestInfo().body.n;
  const users = e.app.findCollectionByNameOrId("users");
  let tpl = null;
  try { tpl = e.app.findAuthRecordByEmail("users", "bench-template@example.com"); } catch (_) { tpl = null; }
  if (!tpl) {
    tpl = new Record(users);
    tpl.setEmail("bench-template@example.com");
    tpl.setPassword("bench-template-password");
    e.app.save(tpl);
  }
  e.app.db().newQuery(
    "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {:last}) " +
    "INSERT OR IGNORE INTO users (id, email, password, tokenKey, emailVisibility, verified, name, created, updated) " +
    "SELECT printf('bench%010d', i), printf('bench%d@example.com', i), t.password, lower(hex(randomblob(25))), 0, 1, printf('Bench %d', i), t.created, t.updated " +
    "FROM seq, users t WHERE t.id = {:tpl}"
  ).bind({ last: n - 1, tpl: tpl.id }).execute();
  return e.json(200, { ok: true });
}, $apis.requireSuperuserAuth());

routerAdd("POST", "/api/hapta-bench/tokens", (e) => {
  const ids = e.requestInfo().body.ids;
  const out = [];
  for (const id of ids) out.push(e.app.findRecordById("users", id).newAuthToken());
  return e.json(200, out);
}, $apis.requireSuperuserAuth());
`;

// ----------------------------------------------------------------------------------------------------
// Role: the shipped sidecar, in its own process (realtime answered by its route table).

async function runSidecar(): Promise<void> {
  const sidecar = await startSidecar({ url: args.pb!, migrationsDir: args.migrations! }, {
    rateLimits: { enabled: false },
    sessions: { validateIntervalMs: 0 },
    replica: { watchMigrations: false },
    realtime: { fromReplica: true, maxClients: 100_000, maxClientsPerIp: 100_000 },
  });
  await waitForSync(sidecar, 120_000);
  process.send!({ ready: sidecar.url });
  // Peaks of the process's memory by kind since the last 'memory' message (sampled every 100 ms): which
  // kind the RSS peak under the writes is made of.
  const peaks = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  const sample = () => {
    const u = process.memoryUsage();
    for (const k of Object.keys(peaks) as Array<keyof typeof peaks>) peaks[k] = Math.max(peaks[k], u[k]);
  };
  setInterval(sample, 100).unref();
  process.on('message', (m: { cmd: string; dir?: string }) => {
    if (m.cmd === 'stats') process.send!({ stats: sidecar.realtime.stats() });
    if (m.cmd === 'memory') {
      sample();
      const peaked = { ...peaks };
      for (const k of Object.keys(peaks) as Array<keyof typeof peaks>) peaks[k] = 0;
      const snapshot = m.dir ? writeHeapSnapshot(join(m.dir, `realtime-sidecar-${Date.now()}.heapsnapshot`)) : '';
      // Resident memory by kind where the system tells (anonymous memory is the heaps, stacks and buffers).
      let anon = 0;
      try {
        anon = Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
      } catch { /* not Linux */ }
      process.send!({ memory: { ...process.memoryUsage(), anon }, peaks: peaked, snapshot });
    }
  });
  process.on('disconnect', () => process.exit(0));
  // A clean exit (a --cpu-prof profile is written on exit).
  process.on('SIGTERM', () => process.exit(0));
}

// ----------------------------------------------------------------------------------------------------
// Role: the floor, bare Node with nothing of the sidecar: one PocketBase stream (as superuser, `posts/*`)
// relayed to every subscriber (published posts) or to its author's (the others), each frame written to
// the socket as one chunk, as the sidecar writes them. No rules, no rendering, no sessions: what any
// Node process on this machine needs to deliver these events to these subscribers.

async function runFloor(): Promise<void> {
  interface Sub { id: string; socket: import('node:net').Socket }
  const subs = new Map<string, Sub>();
  const byUser = new Map<string, Sub>();
  const chunk = (text: string) => {
    const body = Buffer.from(text);
    return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]);
  };
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      const id = randomBytes(20).toString('hex');
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
      res.flushHeaders();
      const sub: Sub = { id, socket: res.socket! };
      sub.socket.setNoDelay(true);
      subs.set(id, sub);
      res.on('close', () => subs.delete(id));
      sub.socket.write(chunk(`id:${id}\nevent:PB_CONNECT\ndata:{"clientId":"${id}"}\n\n`));
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const { clientId } = JSON.parse(body) as { clientId: string };
      const payload = String(req.headers.authorization ?? '').split('.')[1] ?? '';
      const user = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8') || '{}') as { id?: string }).id;
      const sub = subs.get(clientId);
      if (sub && user) byUser.set(user, sub);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const deliver = (data: string) => {
    const record = (JSON.parse(data) as { record: { author: string; published: boolean } }).record;
    const tail = `event:posts/*\ndata:${data}\n\n`;
    const to = record.published ? subs.values() : [byUser.get(record.author)].filter((x): x is Sub => !!x);
    for (const sub of to) if (!sub.socket.destroyed) sub.socket.write(chunk(`id:${sub.id}\n${tail}`));
  };
  // The one upstream stream, reopened when PocketBase restarts between runs.
  const upstream = () => {
    const req = request(`${args.pb}/api/realtime`, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event:(.*)$/m.exec(frame)?.[1];
          const data = /^data:(.*)$/m.exec(frame)?.[1] ?? '';
          if (event === 'PB_CONNECT') {
            const { clientId } = JSON.parse(data) as { clientId: string };
            void fetch(`${args.pb}/api/realtime`, {
              method: 'POST', headers: { 'content-type': 'application/json', authorization: args.token! },
              body: JSON.stringify({ clientId, subscriptions: ['posts/*'] }),
            }).then((r) => r.status === 204 ? process.send!({ floorSubscribed: true }) : console.error(`floor: subscribe ${r.status}`));
          } else if (event === 'posts/*') deliver(data);
        }
      });
      res.on('close', () => setTimeout(upstream, 200));
    });
    req.on('error', () => setTimeout(upstream, 200));
    req.end();
  };
  upstream();
  process.send!({ ready: url });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

// ----------------------------------------------------------------------------------------------------
// Role: a load process holding subscribers as raw SSE clients.

interface LoadReport { received: number; latencies: number[]; perSeq: Record<number, number>; open: number }

async function runLoad(): Promise<void> {
  const streams = new Agent({ keepAlive: false, maxSockets: Infinity });
  const posts = new Agent({ keepAlive: true, maxSockets: 64 });
  let live: IncomingMessage[] = [];
  let latencies: number[] = [];
  let perSeq = new Map<number, number>();
  let received = 0;
  const TITLE = /"title":"bw:(\d+):([0-9.]+)"/;

  const onFrame = (frame: string) => {
    const m = TITLE.exec(frame);
    if (!m) return;
    const seq = Number(m[1]);
    latencies.push(now() - Number(m[2]));
    perSeq.set(seq, (perSeq.get(seq) ?? 0) + 1);
    received++;
  };

  const subscribe = (url: string, clientId: string, token: string, topic: string) => new Promise<number>((resolve, reject) => {
    const body = JSON.stringify({ clientId, subscriptions: [topic] });
    const req = request(`${url}/api/realtime`, {
      method: 'POST', agent: posts, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: token },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', reject);
    req.end(body);
  });

  const open = (url: string, token: string, topic: string) => new Promise<void>((resolve, reject) => {
    const req = request(`${url}/api/realtime`, { agent: streams, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); return reject(new Error(`connect ${res.statusCode}`)); }
      live.push(res);
      res.setEncoding('utf8');
      let buf = '';
      let connected = false;
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!connected) {
            connected = true;
            const id = /^id:(.*)$/m.exec(frame)?.[1] ?? '';
            subscribe(url, id, token, topic).then((s) => (s === 204 ? resolve() : reject(new Error(`subscribe ${s}`))), reject);
            continue;
          }
          onFrame(frame);
        }
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end();
  });

  process.on('message', async (m: { cmd: string; url?: string; tokens?: string[]; topic?: string }) => {
    if (m.cmd === 'open') {
      const tokens = m.tokens!;
      let next = 0;
      let failed = 0;
      const worker = async () => {
        while (next < tokens.length) {
          const t = tokens[next++];
          try {
            await open(m.url!, t, m.topic!);
          } catch {
            failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: 100 }, worker));
      process.send!({ opened: tokens.length - failed, failed });
    } else if (m.cmd === 'reset') {
      latencies = [];
      perSeq = new Map();
      received = 0;
      process.send!({ reset: true });
    } else if (m.cmd === 'count') {
      process.send!({ count: received, open: live.filter((r) => !r.destroyed && !r.complete).length });
    } else if (m.cmd === 'report') {
      const report: LoadReport = { received, latencies, perSeq: Object.fromEntries(perSeq), open: live.filter((r) => !r.destroyed && !r.complete).length };
      process.send!({ report });
    } else if (m.cmd === 'close') {
      for (const r of live) r.destroy();
      live = [];
      process.send!({ closed: true });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true });
}

// ----------------------------------------------------------------------------------------------------
// The orchestrator.

class Child {
  private waiting: Array<{ key: string; resolve: (m: any) => void }> = [];
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: Record<string, unknown>) => {
      const i = this.waiting.findIndex((w) => w.key in m);
      if (i >= 0) this.waiting.splice(i, 1)[0].resolve(m);
    });
  }

  static spawn(role: string, extra: string[] = [], nodeArgs: string[] = []): Child {
    const proc = spawn(process.execPath, [...nodeArgs, ...tsLoader, fileURLToPath(import.meta.url), '--role', role, ...extra], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Child(proc);
  }

  next<T = any>(key: string): Promise<T> {
    return new Promise((resolve) => this.waiting.push({ key, resolve }));
  }

  ask<T = any>(msg: Record<string, unknown>, key: string): Promise<T> {
    const p = this.next<T>(key);
    this.proc.send(msg);
    return p;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
  }
}

async function json<T>(url: string, init: { method?: string; token?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { ...(init.token ? { authorization: init.token } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url} -> ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}

const targetName = (t: string) => (t === 'pocketbase' ? 'PocketBase direct' : t === 'floor' ? 'bare Node relay (floor)' : 'sidecar');

interface Write { seq: number; author: number; published: boolean; sentAt: number; ackAt: number; ok: boolean }

interface Row {
  target: string; subscribers: number; connectS: number; asked: number; achieved: number; expected: number; delivered: number;
  duplicates: number; p50: number; p99: number; pbCores: number; sidecarCores: number; loadCores: number; pbRssMiB: number; sidecarRssMiB: number; loadRssMiB: number;
}

async function main(): Promise<void> {
  const sizes = args.sizes!.split(',').map(Number).filter((n) => n > 0);
  const rate = Number(args.rate);
  const seconds = Number(args.seconds);
  const share = Number(args.published);
  const loadCount = Math.max(1, Number(args.loads));
  const drainMs = Number(args.drain) * 1000;
  const maxN = Math.max(...sizes);
  const targets = args.targets!.split(',').filter((t): t is 'pocketbase' | 'sidecar' | 'floor' => t === 'pocketbase' || t === 'sidecar' || t === 'floor');
  const started = Date.now();
  const log = (msg: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}`);

  const pb = await startPocketBase({ extraHooks: { 'hapta_bench.pb.js': BENCH_HOOK } });
  const children: Child[] = [];
  try {
    const su = await superuserToken(pb.url);
    await json(`${pb.url}/api/hapta-bench/users`, { method: 'POST', token: su, body: { n: maxN } });
    const ids = Array.from({ length: maxN }, (_, i) => userId(i));
    const pbTokens: string[] = [];
    for (let i = 0; i < ids.length; i += 1000) pbTokens.push(...await json<string[]>(`${pb.url}/api/hapta-bench/tokens`, { method: 'POST', token: su, body: { ids: ids.slice(i, i + 1000) } }));
    log(`${maxN} users and their PocketBase tokens`);

    // BENCH_SIDECAR_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the sidecar process.
    const sidecarNodeArgs = (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const sidecar = Child.spawn('sidecar', ['--pb', pb.url, '--migrations', pb.migrationsDir], sidecarNodeArgs);
    children.push(sidecar);
    const { ready: scUrl } = await sidecar.next<{ ready: string }>('ready');
    const suKey = (await json<{ token: string }>(`${scUrl}/api/collections/_superusers/auth-with-password`, { method: 'POST', body: { identity: SUPERUSER.email, password: SUPERUSER.password } })).token;
    const keys: string[] = new Array(maxN);
    await pool(ids, 16, async (id, i) => {
      keys[i] = (await json<{ token: string }>(`${scUrl}/api/collections/users/impersonate/${id}`, { method: 'POST', token: suKey, body: { duration: 7200 } })).token;
    });
    log(`sidecar ready at ${scUrl}, ${maxN} session keys`);
    const memory = async (when: string, dir = '') => {
      const { memory: m, peaks: p, snapshot } = await sidecar.ask<{ memory: NodeJS.MemoryUsage & { anon: number }; peaks: Record<string, number>; snapshot: string }>({ cmd: 'memory', dir: dir || undefined }, 'memory');
      const mib = (v: number) => (v / 1048576).toFixed(0);
      log(`sidecar memory, ${when}: rss ${mib(m.rss)} MiB (anonymous ${mib(m.anon)}), heap used ${mib(m.heapUsed)} / total ${mib(m.heapTotal)} MiB, external ${mib(m.external)} MiB; ` +
        `peaks since the last report: rss ${mib(p.rss)}, heap used ${mib(p.heapUsed)} / total ${mib(p.heapTotal)}, external ${mib(p.external)} MiB${snapshot ? `, snapshot ${snapshot}` : ''}`);
    };
    await memory('no subscribers');

    let floor: Child | null = null;
    let floorUrl = '';
    if (targets.includes('floor')) {
      floor = Child.spawn('floor', ['--pb', pb.url, '--token', su]);
      children.push(floor);
      floorUrl = (await floor.next<{ ready: string }>('ready')).ready;
    }

    const loads = Array.from({ length: loadCount }, () => Child.spawn('load'));
    children.push(...loads);
    await Promise.all(loads.map((l) => l.next('ready')));

    const rows: Row[] = [];
    let seq = 0;
    for (const n of sizes) {
      for (const target of targets) {
        const url = target === 'pocketbase' ? pb.url : target === 'floor' ? floorUrl : scUrl;
        const tokens = (target === 'sidecar' ? keys : pbTokens).slice(0, n);
        // A fresh PocketBase process per run: its RSS and CPU are this run's alone (the data stays; the
        // sidecar and the floor reconnect by themselves).
        const floorSubscribed = floor?.next('floorSubscribed');
        await pb.restart();
        await sleep(3000);
        if (target === 'floor') await Promise.race([floorSubscribed, sleep(10_000).then(() => { throw new Error('the floor did not subscribe again'); })]);
        const t0 = Date.now();
        const opened = await Promise.all(loads.map((l, k) => l.ask<{ opened: number; failed: number }>({
          cmd: 'open', url, topic: 'posts/*', tokens: tokens.filter((_, i) => i % loadCount === k),
        }, 'opened')));
        const connectS = (Date.now() - t0) / 1000;
        const failed = opened.reduce((a, o) => a + o.failed, 0);
        log(`${target}: ${n} subscribers in ${connectS.toFixed(1)} s${failed ? ` (${failed} failed)` : ''}`);
        if (target === 'sidecar') await memory(`${n} subscribers connected`);
        await sleep(1000);
        await Promise.all(loads.map((l) => l.ask({ cmd: 'reset' }, 'reset')));

        // The relay's CPU and RSS columns: the sidecar's, or the floor's in its runs.
        const pids: Record<string, number> = { pocketbase: pb.pid!, sidecar: (target === 'floor' ? floor! : sidecar).proc.pid! };
        loads.forEach((l, k) => (pids[`load${k}`] = l.proc.pid!));
        const usage = watch(pids);
        const writes: Write[] = [];
        const inflight = new Set<Promise<void>>();
        const begin = now();
        let rand = 12345 + n;
        const random = () => ((rand = (rand * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
        for (let k = 0; now() - begin < seconds * 1000; k++) {
          const due = begin + (k * 1000) / rate;
          const wait = due - now();
          if (wait > 1) await sleep(wait);
          if (now() - begin >= seconds * 1000) break;
          while (inflight.size >= 16) await Promise.race(inflight);
          const w: Write = { seq: seq++, author: Math.floor(random() * n), published: random() < share, sentAt: now(), ackAt: 0, ok: false };
          writes.push(w);
          const p = json(`${pb.url}/api/collections/posts/records`, {
            method: 'POST', token: su, body: { title: `bw:${w.seq}:${w.sentAt.toFixed(3)}`, author: userId(w.author), published: w.published },
          }).then(() => { w.ok = true; w.ackAt = now(); }, () => {}).finally(() => inflight.delete(p));
          inflight.add(p);
        }
        const windowS = (now() - begin) / 1000;
        await Promise.all(inflight);
        const cpu = usage.stop();
        const acked = writes.filter((w) => w.ok);
        const expected = acked.reduce((a, w) => a + (w.published ? n : 1), 0);
        const drainUntil = Date.now() + drainMs;
        for (;;) {
          const counts = await Promise.all(loads.map((l) => l.ask<{ count: number }>({ cmd: 'count' }, 'count')));
          if (counts.reduce((a, c) => a + c.count, 0) >= expected || Date.now() > drainUntil) break;
          await sleep(250);
        }
        const reports = await Promise.all(loads.map((l) => l.ask<{ report: LoadReport }>({ cmd: 'report' }, 'report')));
        const latencies: number[] = [];
        const perSeq = new Map<number, number>();
        for (const { report } of reports) {
          for (const v of report.latencies) latencies.push(v);
          for (const [s, c] of Object.entries(report.perSeq)) perSeq.set(Number(s), (perSeq.get(Number(s)) ?? 0) + c);
        }
        let delivered = 0;
        let duplicates = 0;
        for (const w of acked) {
          const want = w.published ? n : 1;
          const got = perSeq.get(w.seq) ?? 0;
          delivered += Math.min(want, got);
          duplicates += Math.max(0, got - want);
        }
        const lat = summary(latencies);
        const loadRss = Object.entries(cpu).filter(([k]) => k.startsWith('load')).reduce((a, [, u]) => a + u.rssPeakMiB, 0);
        const loadCores = Object.entries(cpu).filter(([k]) => k.startsWith('load')).reduce((a, [, u]) => a + u.cores, 0);
        const row: Row = {
          target, subscribers: n, connectS, asked: rate, achieved: acked.length / windowS, expected, delivered, duplicates,
          p50: lat.p50, p99: lat.p99, pbCores: cpu.pocketbase.cores, sidecarCores: cpu.sidecar.cores, loadCores,
          pbRssMiB: cpu.pocketbase.rssPeakMiB, sidecarRssMiB: cpu.sidecar.rssPeakMiB, loadRssMiB: loadRss,
        };
        rows.push(row);
        log(`${target} ${n}: ${row.achieved.toFixed(1)} writes/s, ${delivered}/${expected} delivered, p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms, cores: PocketBase ${row.pbCores.toFixed(2)}, sidecar ${row.sidecarCores.toFixed(2)}, loads ${loadCores.toFixed(2)}`);
        if (target === 'sidecar') await memory(`after the writes, ${n} subscribers`, args.heap);
        await Promise.all(loads.map((l) => l.ask({ cmd: 'close' }, 'closed')));
        await sleep(1500);
      }
    }
    const stats = (await sidecar.ask<{ stats: unknown }>({ cmd: 'stats' }, 'stats')).stats;

    const out = [
      `Realtime fan-out: ${rate} writes/s asked for ${seconds} s, ${Math.round(share * 100)}% published (to every subscriber), the rest to their author only; ` +
        `listRule "published = true || author = @request.auth.id", one user per subscriber, ${loadCount} load process(es)`,
      table(
        ['target', 'subscribers', 'connect s', 'writes/s asked', 'writes/s achieved', 'delivered / expected', 'p50 ms', 'p99 ms', 'PocketBase CPU (cores)', 'sidecar / floor CPU (cores)', 'load CPU (cores)', 'PocketBase RSS MiB', 'sidecar / floor RSS MiB', 'load RSS MiB'],
        rows.map((r) => [
          targetName(r.target), r.subscribers, r.connectS, r.asked, r.achieved,
          `${r.delivered} / ${r.expected}${r.duplicates ? ` (+${r.duplicates} dup)` : ''}`, r.p50, r.p99, r.pbCores, r.target === 'pocketbase' ? '-' : r.sidecarCores, r.loadCores,
          r.pbRssMiB, r.target === 'pocketbase' ? '-' : r.sidecarRssMiB, r.loadRssMiB,
        ]),
      ),
      '',
      `total ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ].join('\n');
    console.log('\n' + out);
    const file = saveResult('realtime', { rate, seconds, published: share, loads: loadCount, rows, sidecarStats: stats });
    console.log(`\nsaved ${file}`);
    if (new Set(rows.map((r) => r.target)).size > 1) {
      const svg = join(dirname(file), 'realtime.svg');
      writeFileSync(svg, realtimeChartSvg(targets.includes('floor') ? 'Realtime fan-out: PocketBase direct, bare Node relaying one stream, the sidecar' : 'Realtime fan-out: PocketBase direct and through the sidecar',
        `${rate} writes/s asked, ${Math.round(share * 100)}% to every subscriber, a per-subscriber list rule, one 2-core machine`,
        rows.map((r) => ({ target: targetName(r.target), subscribers: r.subscribers, achieved: r.achieved, p99: r.p99 }))));
      console.log(`saved ${svg}`);
    }
  } finally {
    for (const c of children) c.kill();
    await pb.destroy();
  }
}

if (args.role === 'sidecar') {
  runSidecar().catch((e) => { console.error(e); process.exit(1); });
} else if (args.role === 'floor') {
  runFloor().catch((e) => { console.error(e); process.exit(1); });
} else if (args.role === 'load') {
  runLoad().catch((e) => { console.error(e); process.exit(1); });
} else {
  main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}
