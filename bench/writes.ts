// Writes benchmark (prints figures; not a test): what each kind of invalid write costs PocketBase
// (requests the sidecar sends upstream per client write: the goal is 0 wherever the answer can be
// decided locally), what valid writes cost, validation and rule-evaluation time per write (in process),
// and create throughput through the sidecar against PocketBase direct (same run, same machine).
// Usage: npm run bench:writes [-- --seconds 8 --connections 20 --per-kind 30]
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';
import { validateWrite } from '../sidecar/writes/validate.js';
import type { PbCollection } from '../replica/schema.js';
import { api, superuserToken } from '../test/harness/dump.js';
import { startPocketBase } from '../test/harness/pocketbase.js';
import { seedReference, USER_PASSWORD } from '../test/harness/seed.js';
import { startSidecarProcess } from '../test/harness/sidecar-process.js';
import { saveResult, summary, table } from './stats.js';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '8' }, connections: { type: 'string', default: '20' }, 'per-kind': { type: 'string', default: '30' } } });
const DURATION = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const PER_KIND = Number(args['per-kind']);

/** Upstream requests so far: those sent on callers' behalf (proxy) and all of them (sync, log head, ...). */
async function upstream(url: string): Promise<{ proxy: number; all: number }> {
  const text = await (await fetch(`${url}/api/hapta/metrics`)).text();
  let proxy = 0;
  let all = 0;
  for (const l of text.split('\n')) {
    if (!l.startsWith('hapta_upstream_requests_total')) continue;
    const n = Number(l.split(' ').pop());
    all += n;
    if (l.includes('purpose="proxy"')) proxy += n;
  }
  return { proxy, all };
}

interface Kind {
  kind: string;
  /** Whether the answer follows from the request and the schema alone (else: replicated data that may lag). */
  local: boolean;
  method: 'POST' | 'PATCH' | 'DELETE';
  path: string;
  token: string | null;
  body?: (i: number) => unknown;
}

async function main(): Promise<void> {
  const pb = await startPocketBase();
  const sidecar = await startSidecarProcess(pb, { HAPTA_RATELIMIT: 'false' });
  try {
    const admin = await superuserToken(pb.url);
    const seeded = await seedReference(pb.url, admin, { users: 3, posts: 100, comments: 0, likes: 0, follows: 0 }, 4);
    const [user, other] = seeded.users;
    const login = async (base: string, email: string) => (await api(base, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: email, password: USER_PASSWORD } })).token as string;
    const key = await login(sidecar.url, user.email);
    const pbToken = await login(pb.url, user.email);
    const valid = JSON.stringify({ title: 'A benchmark post', body: '<p>hello</p>', author: user.id, published: true, tags: ['news'] });
    const posts = '/api/collections/posts/records';
    const mine = await api(pb.url, posts, { method: 'POST', token: admin, body: { title: 'Mine', author: user.id, published: true, likes: 3 } });
    const theirs = await api(pb.url, posts, { method: 'POST', token: admin, body: { title: 'Theirs', author: other.id, published: false } });
    // the replica holds both (a read through the sidecar waits for nothing once they are there)
    for (let i = 0; i < 100 && (await fetch(`${sidecar.url}${posts}/${theirs.id}`, { headers: { authorization: await login(sidecar.url, other.email) } })).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));

    const kinds: Kind[] = [
      { kind: 'create: required field missing', local: true, method: 'POST', path: posts, token: key, body: () => ({ author: user.id }) },
      { kind: 'create: text too long', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 'x'.repeat(300), author: user.id }) },
      { kind: 'create: too many select values', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: user.id, tags: ['news', 'tech', 'fun', 'misc'] }) },
      { kind: 'create: not a select value', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: user.id, category: 'zzz' }) },
      { kind: 'create: number below min', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: user.id, likes: -1 }) },
      { kind: 'create: cast "1.5" to an integer field', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: user.id, likes: '1.5' }) },
      { kind: 'create: cast ["x"] to a text field (blank)', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: ['x'], author: user.id }) },
      { kind: 'create: json over maxSize', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: user.id, meta: { x: 'y'.repeat(3000) } }) },
      { kind: 'create rule: author is someone else', local: true, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: other.id }) },
      { kind: 'create rule: anonymous', local: true, method: 'POST', path: posts, token: null, body: () => ({ title: 't', author: user.id }) },
      { kind: 'create: superusers-only collection', local: true, method: 'POST', path: '/api/collections/audit_log/records', token: key, body: () => ({ action: 'create' }) },
      { kind: 'create rule: comment on a draft (reads the post)', local: false, method: 'POST', path: '/api/collections/comments/records', token: key, body: () => ({ post: theirs.id, author: user.id, text: 'hi' }) },
      { kind: 'create: relation to a missing record', local: false, method: 'POST', path: posts, token: key, body: () => ({ title: 't', author: user.id, coauthors: ['missingmissing1'] }) },
      { kind: 'update own post: text too long', local: true, method: 'PATCH', path: `${posts}/${mine.id}`, token: key, body: () => ({ title: 'x'.repeat(300) }) },
      { kind: 'update own post: number below min', local: true, method: 'PATCH', path: `${posts}/${mine.id}`, token: key, body: () => ({ likes: -5 }) },
      { kind: 'update own post: likes- below min (reads the stored value)', local: false, method: 'PATCH', path: `${posts}/${mine.id}`, token: key, body: () => ({ 'likes-': 100 }) },
      { kind: "update rule: another user's profile", local: true, method: 'PATCH', path: `/api/collections/users/records/${other.id}`, token: key, body: () => ({ name: 'hijack' }) },
      { kind: "update rule: another user's post (reads the stored author)", local: false, method: 'PATCH', path: `${posts}/${theirs.id}`, token: key, body: () => ({ title: 'mine now' }) },
      { kind: "delete rule: another user's account", local: true, method: 'DELETE', path: `/api/collections/users/records/${other.id}`, token: key },
      { kind: "delete rule: another user's post (reads the stored author)", local: false, method: 'DELETE', path: `${posts}/${theirs.id}`, token: key },
      { kind: 'batch: second request invalid', local: true, method: 'POST', path: '/api/batch', token: key, body: () => ({ requests: [{ method: 'POST', url: posts, body: { title: 'ok', author: user.id } }, { method: 'POST', url: posts, body: { author: user.id } }] }) },
    ];
    await api(pb.url, '/api/settings', { method: 'PATCH', token: admin, body: { batch: { enabled: true } } });

    const send = async (k: Kind, i: number) => {
      const headers: Record<string, string> = {};
      if (k.token) headers.authorization = k.token;
      let body: string | undefined;
      if (k.body) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(k.body(i));
      }
      const t0 = performance.now();
      const res = await fetch(`${sidecar.url}${k.path}`, { method: k.method, headers, body });
      await res.arrayBuffer();
      return { status: res.status, ms: performance.now() - t0 };
    };

    // 1. Invalid writes by kind: upstream requests per client write.
    const invalidRows: (string | number)[][] = [];
    const invalidResults: Record<string, unknown>[] = [];
    for (const k of kinds) {
      const before = await upstream(sidecar.url);
      const statuses = new Map<number, number>();
      const ms: number[] = [];
      for (let i = 0; i < PER_KIND; i++) {
        const r = await send(k, i);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        ms.push(r.ms);
      }
      const after = await upstream(sidecar.url);
      const perWrite = (after.proxy - before.proxy) / PER_KIND;
      const status = [...statuses].map(([s, n]) => (statuses.size > 1 ? `${s}x${n}` : String(s))).join(' ');
      invalidRows.push([k.kind, status, k.local ? 'yes' : 'no', perWrite, summary(ms).p50]);
      invalidResults.push({ kind: k.kind, status, decidableLocally: k.local, upstreamPerWrite: perWrite, p50Ms: summary(ms).p50 });
    }

    // 2. Valid writes: what each costs upstream (the write itself, and everything else it causes).
    const validKinds: Kind[] = [
      { kind: 'valid create', local: false, method: 'POST', path: posts, token: key, body: (i) => ({ title: `Valid ${i}`, author: user.id, tags: ['news'] }) },
      { kind: 'valid update (own post)', local: false, method: 'PATCH', path: `${posts}/${mine.id}`, token: key, body: (i) => ({ title: `Edited ${i}` }) },
    ];
    const validRows: (string | number)[][] = [];
    const validResults: Record<string, unknown>[] = [];
    for (const k of validKinds) {
      const before = await upstream(sidecar.url);
      const ms: number[] = [];
      let ok = 0;
      for (let i = 0; i < PER_KIND; i++) {
        const r = await send(k, i);
        if (r.status === 200) ok++;
        ms.push(r.ms);
      }
      const after = await upstream(sidecar.url);
      const s = summary(ms);
      validRows.push([k.kind, `${ok}/${PER_KIND} ok`, (after.proxy - before.proxy) / PER_KIND, (after.all - before.all) / PER_KIND, s.p50, s.p99]);
      validResults.push({ kind: k.kind, ok, proxyPerWrite: (after.proxy - before.proxy) / PER_KIND, allPerWrite: (after.all - before.all) / PER_KIND, p50Ms: s.p50, p99Ms: s.p99 });
    }

    // 3. Validation cost per write (in process, the schema of posts from PocketBase).
    const postsColl = (await api(pb.url, '/api/collections/posts', { token: admin })) as PbCollection;
    const body = JSON.parse(valid) as Record<string, unknown>;
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) validateWrite({ collection: postsColl, action: 'create', body, uploads: new Map(), current: null, superuser: false, relationExists: () => true });
    const validationUs = ((performance.now() - t0) / n) * 1000;

    // 4. Create throughput, same body, sidecar vs PocketBase direct.
    const load = async (url: string, authorization: string) => {
      const r = await autocannon({ url: `${url}${posts}`, method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: valid, connections: CONNECTIONS, duration: DURATION });
      return { rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
    };
    const direct = await load(pb.url, pbToken);
    const through = await load(sidecar.url, key);

    const totalInvalid = invalidResults.reduce((a, r) => a + (r.upstreamPerWrite as number), 0);
    const localKinds = invalidResults.filter((r) => r.decidableLocally);
    const out = [
      `Invalid writes through the sidecar, ${PER_KIND} of each kind, sequential (upstream: requests sent to PocketBase on the caller's behalf)`,
      table(['kind', 'status', 'decidable locally', 'upstream per write', 'p50 ms'], invalidRows),
      `kinds decidable locally: ${localKinds.length}, their upstream requests per write: ${localKinds.reduce((a, r) => a + (r.upstreamPerWrite as number), 0).toFixed(2)} in all (goal 0); all kinds: ${totalInvalid.toFixed(2)}`,
      '',
      `Valid writes, ${PER_KIND} of each (upstream per write: the write itself; all purposes: plus the log-head read and replication it causes)`,
      table(['kind', 'answers', 'upstream per write', 'all purposes per write', 'p50 ms', 'p99 ms'], validRows),
      '',
      `Validation of a post create: ${validationUs.toFixed(1)} us per write (in process)`,
      '',
      `Create throughput (${CONNECTIONS} connections, ${DURATION} s each)`,
      table(['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx'], [
        ['PocketBase direct', direct.rps, direct.p50, direct.p99, direct.errors, direct.non2xx],
        ['through the sidecar', through.rps, through.p50, through.p99, through.errors, through.non2xx],
      ]),
      `ratio: ${(through.rps / direct.rps * 100).toFixed(0)}% of PocketBase's create throughput`,
    ].join('\n');
    process.stdout.write(out + '\n');
    const file = saveResult('writes', { invalid: invalidResults, valid: validResults, validationUs, direct, through, command: 'npm run bench:writes' });
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
