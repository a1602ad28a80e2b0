// Replays a plan (mix.ts) against one target in its own process, so the load generator never shares an
// event loop with what it measures: `node --import tsx bench/replay.ts <spec.json>` prints the result as
// JSON on stdout. Signed-in visitors sign in first (not timed); then `concurrency` workers take whole
// sessions from the plan and run each session's requests in order.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Pool } from 'undici';
import { bindIds, type Kind, type PlannedRequest, type Session } from './mix.js';

export interface ReplaySpec {
  url: string;
  /** direct: PocketBase paths; sidecar: the sidecar's (feeds); floor: the sidecar's paths, no sign-in. */
  mode: 'direct' | 'sidecar' | 'floor';
  planFile: string;
  /** First character of ids this run creates; the next three are random per run. */
  tag: string;
  concurrency: number;
  users: { email: string; password: string }[];
  /** Write up to this many response bodies per kind to this file (for the floor server). */
  captureFile?: string;
  /** Print a line `signed-in` on stdout when the timed part starts (before the JSON result). */
  announce?: boolean;
}

export interface KindResult { n: number; errors: number; p50: number; p95: number; p99: number; statuses: Record<string, number> }
export interface ReplayResult {
  seconds: number;
  requests: number;
  rps: number;
  overall: KindResult;
  kinds: Partial<Record<Kind, KindResult>>;
  errorSamples: string[];
  signInSeconds: number;
  /** CPU seconds the generator itself used while replaying. */
  generatorCpuSeconds: number;
}

/** Statuses a request of this kind may answer without being an error (a view of a draft is a 404). */
function ok(kind: Kind, status: number): boolean {
  if (kind === 'unlike' || kind === 'unfollow') return status === 204;
  if (kind === 'view_post') return status === 200 || status === 404;
  return status === 200;
}

function stats(lat: number[], errors: number, statuses: Record<string, number>): KindResult {
  lat.sort((a, b) => a - b);
  const at = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)] : NaN);
  return { n: lat.length, errors, p50: at(0.5), p95: at(0.95), p99: at(0.99), statuses };
}

export async function replay(spec: ReplaySpec): Promise<ReplayResult> {
  const nonce = randomBytes(8).readBigUInt64BE().toString(36).slice(-3).padStart(3, '0');
  const sessions = JSON.parse(bindIds(readFileSync(spec.planFile, 'utf8'), spec.tag, nonce)) as Session[];
  const pool = new Pool(spec.url, { connections: spec.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const tokens = new Map<number, string>();
  const capture = new Map<Kind, [string, number, string][]>();

  const send = async (r: PlannedRequest, s: Session, path: string) => {
    const headers: Record<string, string> = { 'x-forwarded-for': s.ip, 'x-bench-kind': r.kind };
    const token = tokens.get(s.user);
    if (token) headers.authorization = token;
    let body: string | undefined;
    if (r.body) { body = JSON.stringify(r.body); headers['content-type'] = 'application/json'; }
    const res = await pool.request({ method: r.method, path, headers, body });
    return { status: res.statusCode, text: await res.body.text() };
  };

  // Sign-in (not timed): each signed-in visitor once, 8 at a time.
  const t0 = performance.now();
  if (spec.mode !== 'floor') {
    const signedIn = sessions.filter((s) => s.user >= 0);
    let i = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (i < signedIn.length) {
        const s = signedIn[i++];
        const u = spec.users[s.user];
        const res = await send({ kind: 'auth_refresh', method: 'POST', path: '', body: { identity: u.email, password: u.password } }, s, '/api/collections/users/auth-with-password');
        if (res.status !== 200) throw new Error(`sign-in of ${u.email} failed: ${res.status} ${res.text.slice(0, 200)}`);
        tokens.set(s.user, (JSON.parse(res.text) as { token: string }).token);
      }
    }));
  } else {
    for (const s of sessions) if (s.user >= 0) tokens.set(s.user, 'floor');
  }
  const signInSeconds = (performance.now() - t0) / 1000;
  if (spec.announce) process.stdout.write('signed-in\n');
  const cpu0 = process.cpuUsage();

  const lat = new Map<Kind, number[]>();
  const errs = new Map<Kind, number>();
  const statuses = new Map<Kind, Record<string, number>>();
  const errorSamples: string[] = [];
  let next = 0;
  const traceFile = process.env.BENCH_TRACE_FILE;
  const trace: unknown[] = [];
  const start = performance.now();
  const worker = async () => {
    while (next < sessions.length) {
      const s = sessions[next++];
      let prev = '';
      for (const r of s.requests) {
        const path = spec.mode === 'direct' && r.direct ? r.direct : r.path;
        const t = performance.now();
        let status = 0;
        let text = '';
        try {
          ({ status, text } = await send(r, s, path));
        } catch (e) {
          text = String(e);
        }
        const ms = performance.now() - t;
        if (traceFile) trace.push([r.kind, prev, Math.round(t - start), Math.round(ms * 10) / 10, path.slice(0, 160)]);
        prev = r.kind;
        (lat.get(r.kind) ?? lat.set(r.kind, []).get(r.kind)!).push(ms);
        const st = statuses.get(r.kind) ?? statuses.set(r.kind, {}).get(r.kind)!;
        st[status] = (st[status] ?? 0) + 1;
        if (!ok(r.kind, status)) {
          errs.set(r.kind, (errs.get(r.kind) ?? 0) + 1);
          if (errorSamples.length < 20) errorSamples.push(`${r.kind} ${r.method} ${path.slice(0, 120)} -> ${status} ${text.slice(0, 200)}`);
        } else if (r.kind === 'auth_refresh') {
          tokens.set(s.user, (JSON.parse(text) as { token: string }).token);
        }
        if (spec.captureFile) {
          const list = capture.get(r.kind) ?? capture.set(r.kind, []).get(r.kind)!;
          if (list.length < 50) list.push([r.path, status, text]);
        }
      }
    }
  };
  const total = sessions.reduce((n, s) => n + s.requests.length, 0);
  const progress = setInterval(() => {
    const done = [...lat.values()].reduce((n, l) => n + l.length, 0);
    process.stderr.write(`  ${spec.mode}: ${done}/${total} requests, ${Math.round(done / ((performance.now() - start) / 1000))} req/s\n`);
  }, 30_000);
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  clearInterval(progress);
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await pool.close();
  if (spec.captureFile) writeFileSync(spec.captureFile, JSON.stringify(Object.fromEntries(capture)));
  if (traceFile) writeFileSync(`${traceFile}.${spec.tag}.json`, JSON.stringify(trace));

  const kinds: Partial<Record<Kind, KindResult>> = {};
  const all: number[] = [];
  const allStatuses: Record<string, number> = {};
  let allErrors = 0;
  for (const [k, l] of lat) {
    for (const v of l) all.push(v); // no spread: a kind may hold more values than a call takes arguments
    allErrors += errs.get(k) ?? 0;
    for (const [st, n] of Object.entries(statuses.get(k) ?? {})) allStatuses[st] = (allStatuses[st] ?? 0) + n;
    kinds[k] = stats(l, errs.get(k) ?? 0, statuses.get(k) ?? {});
  }
  const overall = stats(all, allErrors, allStatuses);
  return { seconds, requests: overall.n, rps: overall.n / seconds, overall, kinds, errorSamples, signInSeconds, generatorCpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const spec = JSON.parse(readFileSync(process.argv[2], 'utf8')) as ReplaySpec;
  replay(spec).then(
    (r) => { process.stdout.write(`${JSON.stringify(r)}\n`); process.exit(0); },
    (e) => { console.error(e); process.exit(1); },
  );
}
