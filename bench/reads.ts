// Read-path benchmark: PocketBase direct vs the sidecar's read routes, same run, same requests, 50 keep-alive
// connections. Cases: view by id; list perPage=20&sort=-created; a relation filter as a signed-in user under
// a rule using @request.auth.id; an expand of author and comments. Prints req/s, p50, p99 and the ratios.
//   npx tsx bench/reads.ts [--seconds 8] [--connections 50]
// The load generator runs in a child process (this file with --load) so it does not share the sidecar's
// event loop; on this 2-core machine it still shares the CPUs with PocketBase and the sidecar.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { tsLoader } from '../lib/runtime.js';
import { startReadsEnv } from '../test/reads-env.js';
import { arg } from './stats.js';

interface LoadSpec { url: string; path: string; headers: Record<string, string>; seconds: number; connections: number }
interface LoadResult { rps: number; p50: number; p99: number; errors: number; non2xx: number }


async function load(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.url, { connections: spec.connections, pipelining: 1 });
  const lat: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let measuring = false;
  const warmupEnd = Date.now() + 1000;
  const end = warmupEnd + spec.seconds * 1000;
  const one = async () => {
    while (Date.now() < end) {
      const t0 = performance.now();
      try {
        const res = await pool.request({ method: 'GET', path: spec.path, headers: spec.headers });
        await res.body.arrayBuffer();
        if (res.statusCode !== 200) non2xx++;
      } catch {
        errors++;
      }
      if (!measuring && Date.now() >= warmupEnd) measuring = true;
      if (measuring) lat.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, one));
  await pool.close();
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? 0;
  return { rps: lat.length / spec.seconds, p50: q(0.5), p99: q(0.99), errors, non2xx };
}

function loadInChild(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...tsLoader, fileURLToPath(import.meta.url), '--load', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load child exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 8);
  const connections = arg('connections', 50);
  console.log('seeding 53 users, 10,000 posts, 3,000 comments ...');
  const env = await startReadsEnv({ counts: { users: 53, posts: 10_000, comments: 3_000, likes: 2_000, follows: 300 }, seed: 3 });
  try {
    const user = env.identities[1];
    const postId = env.seeded.posts[17];
    const cases = [
      { name: 'view by id (anon)', path: `/api/collections/posts/records/${postId}`, as: env.identities[0] },
      { name: 'list perPage=20&sort=-created (anon)', path: '/api/collections/posts/records?perPage=20&sort=-created', as: env.identities[0] },
      { name: 'list relation filter as user', path: `/api/collections/posts/records?perPage=20&sort=-created&filter=${encodeURIComponent('author.name="User 12"')}`, as: user },
      { name: 'list expand author,comments (anon)', path: '/api/collections/posts/records?perPage=20&sort=-created&expand=author,comments_via_post', as: env.identities[0] },
    ];
    const rows: string[] = [];
    for (const c of cases) {
      const pb = await loadInChild({ url: env.pb.url, path: c.path, headers: c.as.token ? { authorization: c.as.token } : {}, seconds, connections });
      const sc = await loadInChild({ url: env.url, path: c.path, headers: c.as.key ? { authorization: c.as.key } : {}, seconds, connections });
      rows.push(`| ${c.name} | ${pb.rps.toFixed(0)} | ${pb.p50.toFixed(1)} | ${pb.p99.toFixed(1)} | ${sc.rps.toFixed(0)} | ${sc.p50.toFixed(1)} | ${sc.p99.toFixed(1)} | ${(sc.rps / pb.rps).toFixed(1)}x | ${(pb.p99 / Math.max(sc.p99, 0.01)).toFixed(1)}x | ${pb.errors + pb.non2xx}/${sc.errors + sc.non2xx} |`);
      console.log(rows[rows.length - 1]);
    }
    console.log(`\n${connections} connections, ${seconds}s per run after 1s warm-up\n`);
    console.log('| case | PB req/s | PB p50 ms | PB p99 ms | sidecar req/s | sidecar p50 ms | sidecar p99 ms | req/s ratio | p99 ratio (PB/sidecar) | errors PB/sidecar |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    console.log('fallbacks:', JSON.stringify(await env.fallbacks()));
  } finally {
    await env.stop();
  }
}

const loadIdx = process.argv.indexOf('--load');
if (loadIdx !== -1) {
  load(JSON.parse(process.argv[loadIdx + 1]) as LoadSpec).then((r) => { process.stdout.write(JSON.stringify(r)); process.exit(0); });
} else {
  main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}
