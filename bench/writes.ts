// Writes benchmark (prints figures; not a test): upstream requests per client request for a write-heavy
// mix of valid and invalid writes, validation cost per write, and create throughput through the sidecar
// against PocketBase direct (same run, same machine).
// Usage: npm run bench:writes [-- --seconds 8 --connections 20]
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';
import { validateWrite } from '../sidecar/writes/validate.js';
import type { PbCollection } from '../replica/schema.js';
import { api, superuserToken } from '../test/harness/dump.js';
import { startPocketBase } from '../test/harness/pocketbase.js';
import { seedReference, USER_PASSWORD } from '../test/harness/seed.js';
import { startSidecarProcess } from '../test/harness/sidecar-process.js';
import { saveResult, table } from './stats.js';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '8' }, connections: { type: 'string', default: '20' } } });
const DURATION = Number(args.seconds);
const CONNECTIONS = Number(args.connections);

async function metricTotal(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/api/hapta/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

async function main(): Promise<void> {
  const pb = await startPocketBase();
  const sidecar = await startSidecarProcess(pb, { HAPTA_RATELIMIT: 'false' });
  try {
    const admin = await superuserToken(pb.url);
    const seeded = await seedReference(pb.url, admin, { users: 3, posts: 100, comments: 0, likes: 0, follows: 0 }, 4);
    const user = seeded.users[0];
    const key = (await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: user.email, password: USER_PASSWORD } })).token;
    const pbToken = (await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: user.email, password: USER_PASSWORD } })).token;
    const valid = JSON.stringify({ title: 'A benchmark post', body: '<p>hello</p>', author: user.id, published: true, tags: ['news'] });

    // 1. Upstream requests per client request, for a mix of 70% valid and 30% invalid creates.
    const invalid = [
      { author: user.id }, // title missing
      { title: 'x'.repeat(300), author: user.id }, // too long
      { title: 't', author: user.id, tags: ['news', 'tech', 'fun', 'misc'] }, // too many
      { title: 't', author: user.id, category: 'zzz' }, // not a value
      { title: 't', author: user.id, likes: -1 }, // below min
    ];
    const upstreamBefore = await metricTotal(sidecar.url, 'hapta_upstream_requests_total');
    let validSent = 0;
    let invalidSent = 0;
    let rejectedLocally = 0;
    for (let i = 0; i < 500; i++) {
      const bad = i % 10 < 3;
      const body = bad ? JSON.stringify(invalid[i % invalid.length]) : valid;
      const res = await fetch(`${sidecar.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key, 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      if (bad) { invalidSent++; if (res.status === 400) rejectedLocally++; } else validSent++;
    }
    const upstream = (await metricTotal(sidecar.url, 'hapta_upstream_requests_total')) - upstreamBefore;
    const rejected = await metricTotal(sidecar.url, 'hapta_writes_rejected_total');

    // 2. Validation cost per write (in process, the schema of posts from PocketBase).
    const posts = (await api(pb.url, '/api/collections/posts', { token: admin })) as PbCollection;
    const body = JSON.parse(valid) as Record<string, unknown>;
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) validateWrite({ collection: posts, action: 'create', body, uploads: new Map(), current: null, superuser: false, relationExists: () => true });
    const validationUs = ((performance.now() - t0) / n) * 1000;

    // 3. Create throughput, same body, sidecar vs PocketBase direct.
    const load = async (url: string, authorization: string) => {
      const r = await autocannon({ url: `${url}/api/collections/posts/records`, method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: valid, connections: CONNECTIONS, duration: DURATION });
      return { rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
    };
    const direct = await load(pb.url, pbToken);
    const through = await load(sidecar.url, key);

    const out = [
      'Write-heavy mix through the sidecar (500 creates: 70% valid, 30% invalid)',
      table(['client writes', 'valid', 'invalid', 'answered by the sidecar', 'upstream requests (all purposes)', 'per client write'], [
        [validSent + invalidSent, validSent, invalidSent, rejected, upstream, (upstream / (validSent + invalidSent)).toFixed(2)],
      ]),
      '',
      `Validation of a post create: ${validationUs.toFixed(1)} us per write (in process)`,
      '',
      `Create throughput (${CONNECTIONS} connections, ${DURATION} s each, read-your-writes included on the sidecar)`,
      table(['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx'], [
        ['PocketBase direct', direct.rps, direct.p50, direct.p99, direct.errors, direct.non2xx],
        ['through the sidecar', through.rps, through.p50, through.p99, through.errors, through.non2xx],
      ]),
      `ratio: ${(through.rps / direct.rps * 100).toFixed(0)}% of PocketBase's create throughput`,
    ].join('\n');
    process.stdout.write(out + '\n');
    void rejectedLocally;
    const file = saveResult('writes', { mix: { validSent, invalidSent, rejected, upstream }, validationUs, direct, through, command: 'npm run bench:writes' });
    process.stdout.write(`\nsaved ${file}\n`);
  } finally {
    await sidecar.stop();
    await pb.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
