// Replication benchmark (prints figures; not a test):
//  1. lag from a PocketBase write acknowledged to the change readable in the sidecar's replica, p50/p99,
//     at 100 and 1,000 writes/s offered;
//  2. bootstrap of ~200k records: records/s of the sidecar's copy against a bare client paging the same
//     records API (perPage 1000, skipTotal).
// Usage: npm run bench:replication [-- --records 200000 --seconds 10]
import { parseArgs } from 'node:util';
import { api, superuserToken } from '../test/harness/dump.js';
import { startPocketBase } from '../test/harness/pocketbase.js';
import { seedReference } from '../test/harness/seed.js';
import { startSidecar, waitForSync } from '../test/harness/sidecar.js';
import { saveResult, summary, table } from './stats.js';

const { values: args } = parseArgs({ options: { records: { type: 'string', default: '200000' }, seconds: { type: 'string', default: '10' } } });
const RECORDS = Number(args.records);
const SECONDS = Number(args.seconds);

async function lagAt(rate: number, ctx: { pbUrl: string; token: string; posts: string[]; sidecar: Awaited<ReturnType<typeof startSidecar>> }) {
  const { sidecar } = ctx;
  const store = () => sidecar.replicator.store!;
  const pending = new Map<string, { title: string; ackAt: number }>();
  const lags: number[] = [];
  const check = () => {
    const now = performance.now();
    const stmt = store().db.prepare('SELECT title FROM posts WHERE id = ?');
    for (const [id, p] of pending) {
      const row = stmt.get(id) as { title: string } | undefined;
      if (row?.title === p.title) {
        lags.push(now - p.ackAt);
        pending.delete(id);
      }
    }
  };
  const off = sidecar.replicator.onApplied(check);
  const total = rate * SECONDS;
  const started = performance.now();
  let sent = 0;
  let failed = 0;
  const inflight = new Set<Promise<void>>();
  let n = 0;
  while (sent < total) {
    const due = started + (sent * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    // One record per write at a time, so "visible" means this write's value.
    const id = ctx.posts[n++ % ctx.posts.length];
    if (pending.has(id)) continue;
    const title = `lag ${rate} ${sent}`;
    sent++;
    const p = api(ctx.pbUrl, `/api/collections/posts/records/${id}`, { method: 'PATCH', token: ctx.token, body: { title } })
      .then(() => { pending.set(id, { title, ackAt: performance.now() }); check(); })
      .catch(() => { failed++; })
      .finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size > 256) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const elapsed = (performance.now() - started) / 1000;
  const deadline = Date.now() + 10_000;
  while (pending.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  off();
  return { offered: rate, achieved: Math.round((sent - failed) / elapsed), failed, unseen: pending.size, ...summary(lags) };
}

async function bareClientPaging(pbUrl: string, token: string, collections: string[]): Promise<{ records: number; ms: number }> {
  const started = performance.now();
  let records = 0;
  for (const c of collections) {
    for (let page = 1; ; page++) {
      const res = await api(pbUrl, `/api/collections/${c}/records?page=${page}&perPage=1000&skipTotal=1`, { token });
      records += res.items.length;
      if (res.items.length < 1000) break;
    }
  }
  return { records, ms: performance.now() - started };
}

async function main(): Promise<void> {
  const pb = await startPocketBase();
  try {
    const token = await superuserToken(pb.url);
    process.stderr.write(`seeding ~${RECORDS} records...\n`);
    const posts = Math.round(RECORDS * 0.6);
    const seeded = await seedReference(pb.url, token, { users: 50, posts, comments: Math.round(RECORDS * 0.2), likes: Math.round(RECORDS * 0.15), follows: 1000 }, 1,
      (what, done) => { if (done % 20000 === 0) process.stderr.write(`  ${what}: ${done}\n`); });

    // Bootstrap: sidecar copy vs a bare client, each twice, alternating; best of each.
    const collections = ['users', 'posts', 'comments', 'likes', 'follows'];
    const bare: number[] = [];
    const sidecarRates: number[] = [];
    let copied = 0;
    for (let round = 0; round < 2; round++) {
      const b = await bareClientPaging(pb.url, token, collections);
      bare.push(b.records / (b.ms / 1000));
      const t0 = performance.now();
      const sc = await startSidecar(pb);
      await sc.replicator.whenReady();
      const ms = performance.now() - t0;
      copied = (sc.replicator.store!.db.prepare('SELECT (SELECT COUNT(*) FROM posts) + (SELECT COUNT(*) FROM comments) + (SELECT COUNT(*) FROM likes) + (SELECT COUNT(*) FROM follows) + (SELECT COUNT(*) FROM users) AS n').get() as { n: number }).n;
      sidecarRates.push(copied / (ms / 1000));
      await sc.destroy();
    }
    const bootstrap = { records: copied, sidecarPerSecond: Math.round(Math.max(...sidecarRates)), bareClientPerSecond: Math.round(Math.max(...bare)) };
    const ratio = bootstrap.sidecarPerSecond / bootstrap.bareClientPerSecond;

    const sidecar = await startSidecar(pb);
    await waitForSync(sidecar);
    const lag100 = await lagAt(100, { pbUrl: pb.url, token, posts: seeded.posts, sidecar });
    const lag1000 = await lagAt(1000, { pbUrl: pb.url, token, posts: seeded.posts, sidecar });
    await sidecar.destroy();

    const out = [
      'Replication lag (PocketBase write acknowledged -> readable in the replica)',
      table(['offered writes/s', 'achieved writes/s', 'p50 ms', 'p99 ms', 'max ms', 'samples', 'unseen'],
        [lag100, lag1000].map((l) => [l.offered, l.achieved, l.p50, l.p99, l.max, l.n, l.unseen])),
      '',
      'Bootstrap (records/s, best of 2)',
      table(['records', 'sidecar copy', 'bare client paging', 'ratio'],
        [[bootstrap.records, bootstrap.sidecarPerSecond, bootstrap.bareClientPerSecond, `${(ratio * 100).toFixed(0)}%`]]),
    ].join('\n');
    process.stdout.write(out + '\n');
    const file = saveResult('replication', { lag: [lag100, lag1000], bootstrap: { ...bootstrap, ratio }, command: 'npm run bench:replication' });
    process.stdout.write(`\nsaved ${file}\n`);
  } finally {
    await pb.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
