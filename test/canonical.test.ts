// The sidecar judges the request PocketBase executes: request targets spelled in every way PocketBase's
// router accepts (escapes, case-folded collection names, ids, dot segments, absolute-form, `*`) get the
// same routing as at PocketBase, and no spelling walks around a guard (auth routes, the login guard,
// the superuser API, the dashboard, the change log).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';
import { cleanPath, foldName, parseTarget, SYSTEM_COLLECTIONS } from '../sidecar/http/target.js';

interface Raw { status: number; headers: Record<string, string>; body: string }

/** One request on its own connection, written byte for byte (fetch would normalise the target). */
function raw(base: string, method: string, target: string, headers: Record<string, string> = {}, body = ''): Promise<Raw> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => {
      const h = { host: 'x', connection: 'close', ...headers, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) };
      s.write(`${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`);
    });
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head, ...rest] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headersOut: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headersOut[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      let b = rest.join('\r\n\r\n');
      if (headersOut['transfer-encoding'] === 'chunked') b = dechunk(b);
      resolve({ status: Number(lines[0].split(' ')[1]), headers: headersOut, body: b });
    });
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

function dechunk(s: string): string {
  let out = '';
  for (;;) {
    const i = s.indexOf('\r\n');
    const n = parseInt(s.slice(0, i), 16);
    if (!n) return out;
    out += s.slice(i + 2, i + 2 + n);
    s = s.slice(i + 4 + n);
  }
}


describe('canonical request targets', () => {
  let pb: PocketBase;
  let open: TestSidecar;
  let closed: TestSidecar;
  let su: string;
  let seeded: Seeded;

  /** Whether PocketBase itself accepts this as an auth token (a session key never is). */
  const pbAccepts = async (t: string) => (await fetch(`${pb.url}/api/collections/users/auth-refresh`, { method: 'POST', headers: { authorization: t } })).status === 200;

  before(async () => {
    pb = await startPocketBase();
    su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 3, posts: 6, comments: 2, likes: 2, follows: 1 }, 21);
    open = await startSidecar(pb, { rateLimits: { enabled: false } });
    closed = await startSidecar(pb, {
      gate: { exposeSuperuserApi: false, exposeDashboard: false },
      loginGuard: { maxFailuresPerIdentityIp: 3 },
      rateLimits: { enabled: false },
    });
    await waitForSync(open);
    await waitForSync(closed);
  });
  after(async () => {
    await open?.destroy();
    await closed?.destroy();
    await pb?.destroy();
  });

  test('parseTarget: Go path cleaning, escapes and collection folding', () => {
    assert.equal(cleanPath('/a//b/./c/../d/'), '/a/b/d/');
    assert.equal(cleanPath('/a/b/..'), '/a');
    assert.equal(foldName('_\u017Fuperusers'), '_superusers');
    assert.equal(foldName('\u212Aey'), 'key');
    const refs = [{ id: 'pbc_1', name: 'posts' }, ...SYSTEM_COLLECTIONS];
    const ok = (m: string, u: string) => {
      const p = parseTarget(m, u, refs);
      assert.equal(p.kind, 'ok', u);
      return p.kind === 'ok' ? p.target : null!;
    };
    assert.equal(ok('GET', '/api/collections/P%4FSTS/records?x=%zz').path, '/api/collections/posts/records');
    assert.equal(ok('GET', '/api/collections/pbc_1/records').path, '/api/collections/posts/records');
    assert.equal(ok('GET', '/api/collections/PBC_1/records').path, '/api/collections/PBC_1/records');
    assert.equal(ok('GET', '/api/collections/posts%2Frecords').path, '/api/collections/posts%2Frecords');
    assert.equal(ok('GET', '/api/%2E%2E/x').path, '/api/%2E%2E/x');
    assert.equal(ok('GET', '/api/collections/_%C5%BFuperusers/auth-with-password').collection?.ref?.id, 'pbc_3142635823');
    assert.equal(ok('GET', 'http://h:1/api/health?a=1').path, '/api/health');
    assert.deepEqual(parseTarget('GET', '/a//b?q=1', refs), { kind: 'redirect', location: '/a/b?q=1' });
    assert.equal(parseTarget('GET', '/api/he%zzalth', refs).kind, 'bad');
    assert.equal(parseTarget('GET', '*', refs).kind, 'bad');
    assert.equal(parseTarget('OPTIONS', '*', refs).kind, 'options-star');
  });

  test('every spelling is routed as PocketBase routes it (same status, redirect and error body)', async () => {
    const post = seeded.posts[0];
    const targets = [
      '*', 'http://elsewhere/api/health', 'api/health', '/api//health', '/api/./health', '/api/x/../health', '/api/x/..',
      '/api/%68ealth', '/api/health/', '/API/health', '/api/he%zzalth', '/api/health?%zz', '/api/health#frag',
      '/api/collections/posts/records', '/api/collections/POSTS/records', '/api/collections/p%6Fsts/records',
      '/api/collections/posts%2Frecords', '/api/collections/posts/records/', `/api/collections/posts/records/${post}`,
      `/api/collections/posts/records/${post.toUpperCase()}`, `/api/collections/posts/records/%2E%2E`,
      '/api/collections/_superusers/records', '/api/collections/%5Fsuperusers/records', '/api/collections/_%C5%BFuperusers/records',
      '/api/collections/nope/records', '/api/%2E%2E/api/health', '/api/collections/users/auth%2Dmethods', '/api/realtime%2F',
      '/api/files/posts/x/y', '/%5F/', '/_', '/a/b/../../api/health?x=1', '/api/collections/posts/records?filter=%zz',
    ];
    const diffs: string[] = [];
    for (const t of targets) {
      for (const method of t === '*' ? ['GET', 'OPTIONS'] : ['GET']) {
        const [d, s] = await Promise.all([raw(pb.url, method, t), raw(open.url, method, t)]);
        const same = d.status === s.status && (d.headers.location ?? '') === (s.headers.location ?? '')
          && (d.status >= 400 || d.status === 307 ? d.body === s.body : true);
        if (!same) diffs.push(`${method} ${t}: PocketBase ${d.status} ${d.headers.location ?? ''} ${d.body.slice(0, 80)} | sidecar ${s.status} ${s.headers.location ?? ''} ${s.body.slice(0, 80)}`);
      }
    }
    assert.deepEqual(diffs, []);
  });

  test('escaped auth routes still go through sessions: no PocketBase token ever reaches the client', async () => {
    const user = seeded.users[0];
    const login = await raw(closed.url, 'POST', '/api/collections/users/auth%2Dwith-password', { 'content-type': 'application/json' },
      JSON.stringify({ identity: user.email, password: USER_PASSWORD }));
    assert.equal(login.status, 200, login.body);
    const key = JSON.parse(login.body).token as string;
    assert.ok(!(await pbAccepts(key)), 'a session key, not a PocketBase token');
    const refreshed = await raw(closed.url, 'POST', '/api/collections/U%53ERS/auth%2Drefresh', { authorization: key });
    assert.equal(refreshed.status, 200, refreshed.body);
    const rotated = JSON.parse(refreshed.body).token as string;
    assert.ok(rotated !== key && !(await pbAccepts(rotated)), 'refresh rotates the session key');
    const fileToken = await raw(closed.url, 'POST', '/api/files/%74oken', { authorization: rotated });
    assert.equal(fileToken.status, 200, fileToken.body);
    assert.match(JSON.parse(fileToken.body).token, /^hft_/, 'a file-token handle, not PocketBase file token');
    // Login spellings and casings share the login guard's buckets.
    const spellings = ['/api/collections/users/auth-with-password', '/api/collections/USERS/auth%2Dwith-password', '/api/collections/_pb_users_auth_/auth-with-password', '/api/collections/u%73ers/auth-with-password'];
    const statuses: number[] = [];
    for (const [i, t] of spellings.entries()) {
      const identity = i % 2 ? user.email.toUpperCase() : user.email;
      statuses.push((await raw(closed.url, 'POST', t, { 'content-type': 'application/json' }, JSON.stringify({ identity, password: 'wrong-password' }))).status);
    }
    assert.deepEqual(statuses, [400, 400, 400, 429], 'the fourth failure, however spelled, is refused');
    // A body PocketBase binds (keys in any case, trailing bytes after the JSON value) is judged too.
    const odd = await raw(closed.url, 'POST', '/api/collections/users/auth-with-password', { 'content-type': 'application/json' },
      `{"IDENTITY":${JSON.stringify(user.email)},"Password":"wrong-password"} trailing`);
    assert.equal(odd.status, 429, odd.body);
    assert.ok(await metricSum(closed.metrics.requests, { route: 'auth' }) >= 8, 'escaped auth routes are counted as auth');
  });

  test('no spelling reaches the superuser API, the dashboard or the change log when they are closed', async () => {
    const postsBefore = (await api(pb.url, '/api/collections/posts/records?perPage=1', { token: su })).totalItems as number;
    const login = { identity: SUPERUSER.email, password: SUPERUSER.password };
    for (const c of ['_superusers', '_Superusers', '%5Fsuperusers', 'pbc_3142635823', '_%C5%BFuperusers', '_SUPERUSERS']) {
      const r = await raw(closed.url, 'POST', `/api/collections/${c}/auth-with-password`, { 'content-type': 'application/json' }, JSON.stringify(login));
      assert.equal(r.status, 404, `${c}: ${r.body}`);
      assert.ok(!r.body.includes('token'), c);
    }
    // As a superuser (passed through as its PocketBase token), every spelling of an admin route is still closed.
    const adminPaths: Array<[string, string]> = [
      ['GET', '/api/%73ettings'], ['GET', '/api/%6Cogs'], ['GET', '/api/%62ackups'], ['GET', '/api/%63ollections'], ['GET', '/api/crons'],
      ['DELETE', '/api/collections/posts/%74runcate'], ['DELETE', '/api/collections/P%4FSTS/truncate'], ['GET', '/api/collections/posts'],
      ['GET', '/api/collections/meta/scaffolds'], ['POST', '/api/collections/users/impersonate/x'], ['GET', '/%5F/'], ['GET', '/_/'], ['GET', '/_'],
    ];
    for (const [m, p] of adminPaths) {
      const r = await raw(closed.url, m, p, { authorization: su });
      assert.equal(r.status, 404, `${m} ${p}: ${r.status} ${r.body.slice(0, 100)}`);
    }
    for (const p of ['/api/hapta%2Dsync/changes?after=0&records=1', '/api/hapta-sync/changes?after=0', '/api/hapta-sync/%63hanges', '/api/hapta-sync']) {
      const r = await raw(open.url, 'GET', p, { authorization: su });
      assert.equal(r.status, 404, `${p}: ${r.body.slice(0, 100)}`);
    }
    assert.equal((await api(pb.url, '/api/collections/posts/records?perPage=1', { token: su })).totalItems, postsBefore, 'nothing was truncated');
    // The open sidecar forwards the same admin routes (the guard is the configuration, not the spelling).
    assert.equal((await raw(open.url, 'GET', '/api/%73ettings', { authorization: (await (await fetch(`${open.url}/api/collections/_superusers/auth-with-password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(login) })).json()).token })).status, 200);
  });
});
