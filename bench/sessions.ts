// Sessions benchmark (prints figures; not a test): the cost of checking a session key on every request
// (signed vs anonymous, same route, 50 connections), and rotation throughput (auth-refresh through the
// sidecar against auth-refresh straight to PocketBase).
// Usage: npm run bench:sessions [-- --seconds 10]
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';
import { api, superuserToken } from '../test/harness/dump.js';
import { startPocketBase } from '../test/harness/pocketbase.js';
import { seedReference, USER_PASSWORD } from '../test/harness/seed.js';
import { startSidecarProcess } from '../test/harness/sidecar-process.js';
import { saveResult, table } from './stats.js';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } } });
const DURATION = Number(args.seconds);
const CONNECTIONS = Number(args.connections);

interface Run { name: string; rps: number; p50: number; p99: number; errors: number; non2xx: number }

async function load(name: string, url: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'GET', connections = CONNECTIONS): Promise<Run> {
  const r = await autocannon({ url, method, headers, connections, duration: DURATION });
  return { name, rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

async function main(): Promise<void> {
  const pb = await startPocketBase();
  const sidecar = await startSidecarProcess(pb, { HAPTA_RATELIMIT: 'false' });
  try {
    const seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: 5, posts: 50, comments: 0, likes: 0, follows: 0 }, 3);
    const key = (await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[0].email, password: USER_PASSWORD } })).token;
    const pbToken = (await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[0].email, password: USER_PASSWORD } })).token;
    const post = seeded.posts[0];

    const runs: Run[] = [];
    runs.push(await load('sidecar-only route, anonymous', `${sidecar.url}/api/hapta/health`));
    runs.push(await load('sidecar-only route, signed', `${sidecar.url}/api/hapta/health`, { authorization: key }));
    runs.push(await load('record view, anonymous', `${sidecar.url}/api/collections/posts/records/${post}`));
    runs.push(await load('record view, signed', `${sidecar.url}/api/collections/posts/records/${post}`, { authorization: key }));
    // Rotation: every request retires the key it presents, so each connection needs its own chain;
    // auth-refresh with a key inside its grace window returns the session's current key, so 1
    // connection per chain measures real rotations.
    const rotation = await rotations(sidecar.url, pb.url, seeded.users[1].email);
    const pbRefresh = await load('auth-refresh, PocketBase direct', `${pb.url}/api/collections/users/auth-refresh`, { authorization: pbToken }, 'POST', 10);

    const overheadHealth = runs[0].p50 && runs[1].p50 - runs[0].p50;
    const out = [
      `Session check overhead (${CONNECTIONS} connections, ${DURATION} s each)`,
      table(['request', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx'], runs.map((r) => [r.name, r.rps, r.p50, r.p99, r.errors, r.non2xx])),
      '',
      `signed vs anonymous: ${(runs[1].rps / runs[0].rps * 100).toFixed(0)}% of the req/s on the sidecar-only route (p50 +${overheadHealth} ms), ${(runs[3].rps / runs[2].rps * 100).toFixed(0)}% on a record view`,
      '',
      'Rotation throughput',
      table(['what', 'per second'], [
        ['auth-refresh through the sidecar (new key each time, 10 sessions in parallel)', rotation],
        ['auth-refresh straight to PocketBase (10 connections)', pbRefresh.rps],
      ]),
    ].join('\n');
    process.stdout.write(out + '\n');
    const file = saveResult('sessions', { runs, rotationsPerSecond: rotation, pocketbaseRefreshPerSecond: pbRefresh.rps, command: 'npm run bench:sessions' });
    process.stdout.write(`\nsaved ${file}\n`);
  } finally {
    await sidecar.stop();
    await pb.destroy();
  }
}

/** 10 independent sessions, each refreshing its own key in a loop for the duration. */
async function rotations(sidecarUrl: string, _pbUrl: string, email: string): Promise<number> {
  const keys: string[] = [];
  for (let i = 0; i < 10; i++) keys.push((await api(sidecarUrl, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: email, password: USER_PASSWORD } })).token);
  let done = 0;
  const end = Date.now() + DURATION * 1000;
  await Promise.all(keys.map(async (key) => {
    let k = key;
    while (Date.now() < end) {
      const next = (await api(sidecarUrl, '/api/collections/users/auth-refresh', { method: 'POST', token: k })).token as string;
      if (next === k) throw new Error('key did not rotate');
      k = next;
      done++;
    }
  }));
  return Math.round(done / DURATION);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
