// Rotating sessions against the real PocketBase: clients only ever hold sidecar keys; rotation with a
// grace window; a replayed retired key burns its session; logout and revocation; sessions end when
// PocketBase stops accepting their token; restarts keep users signed in; forged keys get nowhere.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import PocketBaseSDK from 'pocketbase';
import { KeySigner } from '../sidecar/sessions/token.js';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

(globalThis as any).EventSource ??= EventSource;
const GRACE_MS = 400;

function claims(token: string): any {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

describe('sessions', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let pbAdmin: string;
  let seeded: Seeded;

  before(async () => {
    pb = await startPocketBase();
    pbAdmin = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, pbAdmin, { users: 6, posts: 30, comments: 5, likes: 3, follows: 2 }, 21);
    sidecar = await startSidecar(pb, { sessions: { graceMs: GRACE_MS }, rateLimits: { enabled: false } });
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  const login = async (i: number, url = sidecar.url) =>
    (await api(url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[i].email, password: USER_PASSWORD } })).token as string;

  /** Whether a key is accepted: auth-refresh needs a valid key (PocketBase answers 401 otherwise). */
  const accepted = async (key: string, url = sidecar.url) => {
    const res = await fetch(`${url}/api/hapta/health`, { headers: { authorization: key } });
    assert.equal(res.status, 200);
    const me = await fetch(`${url}/api/collections/users/records?perPage=1&fields=id`, { headers: { authorization: key } });
    // users' listRule is `@request.auth.id != ""`: anonymous callers get an empty list.
    return ((await me.json()) as any).items.length > 0;
  };

  test('the official SDK runs a whole journey with rotating keys', async () => {
    const client = new PocketBaseSDK(sidecar.url);
    client.autoCancellation(false);
    const user = seeded.users[0];
    const auth = await client.collection('users').authWithPassword(user.email, USER_PASSWORD);
    assert.equal(auth.record.id, user.id);
    assert.equal(auth.record.email, user.email);
    assert.equal(client.authStore.isValid, true);
    assert.equal(client.authStore.record?.id, user.id);
    const first = client.authStore.token;
    assert.ok(claims(first).sid && claims(first).kid, 'a sidecar key');
    // PocketBase itself does not accept the key: it is not a PocketBase token.
    const direct = await fetch(`${pb.url}/api/collections/users/auth-refresh`, { method: 'POST', headers: { authorization: first } });
    assert.equal(direct.status, 401);

    const events: string[] = [];
    const unsubscribe = await client.collection('posts').subscribe('*', (e) => events.push(e.action));
    const post = await client.collection('posts').create({ title: 'journey', author: user.id, published: false });
    assert.equal((await client.collection('posts').getOne(post.id)).title, 'journey');
    const list = await client.collection('posts').getList(1, 10, { filter: `id = "${post.id}"` });
    assert.deepEqual(list.items.map((p) => p.id), [post.id], 'own draft is listed');
    await client.collection('posts').update(post.id, { title: 'journey 2' });
    await client.collection('posts').delete(post.id);
    const deadline = Date.now() + 5000;
    while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events, ['create', 'update', 'delete'], 'realtime events of an own draft need the identity behind the session');
    await unsubscribe();

    await client.collection('users').authRefresh();
    const second = client.authStore.token;
    assert.notEqual(second, first);
    assert.equal(claims(second).sid, claims(first).sid);
    assert.equal(await accepted(first), true, 'the retired key works inside the grace window');
    await new Promise((r) => setTimeout(r, GRACE_MS + 200));
    assert.equal(await accepted(first), false, 'the retired key is dead after the grace window');
    assert.equal(await accepted(second), false, 'and replaying it burned the whole session');

    await client.collection('users').authWithPassword(user.email, USER_PASSWORD);
    const third = client.authStore.token;
    assert.equal(await accepted(third), true);
    await client.send('/api/hapta/logout', { method: 'POST' });
    assert.equal(await accepted(third), false, 'logout ends the session');
  });

  test('parallel refreshes of one key agree on the next key', async () => {
    const key = await login(1);
    const [a, b] = await Promise.all([1, 2].map(() => api(sidecar.url, '/api/collections/users/auth-refresh', { method: 'POST', token: key })));
    assert.equal(a.token, b.token);
    assert.equal(await accepted(a.token), true);
  });

  test('every authentication issues a new key; PocketBase tokens never reach the client', async () => {
    const a = await login(2);
    const b = await login(2);
    assert.notEqual(a, b);
    assert.notEqual(claims(a).sid, claims(b).sid);
    const file = await api(sidecar.url, '/api/files/token', { method: 'POST', token: a });
    assert.match(file.token, /^hft_/);
    const res = await fetch(`${sidecar.url}/api/collections/users/auth-with-password`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: seeded.users[2].email, password: USER_PASSWORD }),
    });
    const text = await res.text();
    assert.ok(!/"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9\.[^"]*collectionId/.test(text));
    const pbToken = (await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[2].email, password: USER_PASSWORD } })).token;
    assert.equal(await accepted(pbToken), false, 'a PocketBase token presented to the sidecar is no token');
  });

  test('protected files open with a file token handed out through the session', async () => {
    const key = await login(2);
    const form = new FormData();
    form.set('title', 'draft with a private doc');
    form.set('author', seeded.users[2].id);
    form.set('published', 'false');
    form.set('private_doc', new Blob(['top secret\n'], { type: 'text/plain' }), 'secret.txt');
    const res = await fetch(`${sidecar.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key }, body: form });
    assert.equal(res.status, 200);
    const rec = await res.json() as any;
    const fileUrl = `${sidecar.url}/api/files/posts/${rec.id}/${rec.private_doc}`;
    assert.equal((await fetch(fileUrl)).status, 404);
    assert.equal((await fetch(fileUrl, { headers: { authorization: key } })).status, 404, 'the header alone does not open a protected file, as in PocketBase');
    const { token } = await api(sidecar.url, '/api/files/token', { method: 'POST', token: key });
    assert.match(token, /^hft_/);
    const ok = await fetch(`${fileUrl}?token=${token}`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'top secret\n');
    assert.equal((await fetch(`${fileUrl}?token=hft_${'A'.repeat(32)}`)).status, 404);
    const stranger = await api(sidecar.url, '/api/files/token', { method: 'POST', token: await login(1) });
    assert.equal((await fetch(`${fileUrl}?token=${stranger.token}`)).status, 404, "another user's file token does not open it");
  });

  test('forged keys are treated as no token, never a 500', async () => {
    const good = await login(3);
    const [h, p, s] = good.split('.');
    const payload = claims(good);
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const secret = readFileSync(join(sidecar.dataDir, 'session-secret'));
    const otherUserKey = await login(4);
    const forged = [
      `${enc({ alg: 'none', typ: 'JWT' })}.${p}.`,
      `${enc({ alg: 'none', typ: 'JWT' })}.${p}`,
      `${h}.${p}.${createHmac('sha256', 'wrong-secret-wrong-secret-wrong-secret').update(`${h}.${p}`).digest('base64url')}`,
      `${h}.${enc({ ...payload, id: seeded.users[0].id })}.${s}`,
      `${h}.${enc({ ...payload, sid: claims(otherUserKey).sid })}.${s}`,
      `${h}.${enc({ ...payload, exp: payload.exp + 86400 })}.${s}`,
      new KeySigner(secret).sign({ ...payload, exp: Math.floor(Date.now() / 1000) - 10 }),
      new KeySigner(secret).sign({ ...payload, sid: claims(otherUserKey).sid }),
      'x'.repeat(5000), 'a.b.c', '...', 'Bearer', `${h}.${p}`, '\u00e9\u00e8', `${good}x`,
    ];
    for (const key of forged) {
      const res = await fetch(`${sidecar.url}/api/collections/users/auth-refresh`, { method: 'POST', headers: { authorization: key } });
      assert.equal(res.status, 401, `forged key accepted: ${key.slice(0, 60)}`);
      assert.deepEqual(await res.json(), { data: {}, message: 'The request requires valid record authorization token.', status: 401 });
      assert.equal(await accepted(key), false);
    }
    assert.equal(await accepted(good), true, 'the genuine key still works');
    assert.equal(await accepted(`Bearer ${good}`), true, 'with or without Bearer, as PocketBase accepts');
  });

  test("a superuser revokes every session of a user; a user can't", async () => {
    const a = await login(5);
    const b = await login(5);
    const admin = (await api(sidecar.url, '/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: SUPERUSER.email, password: SUPERUSER.password } })).token;
    const denied = await fetch(`${sidecar.url}/api/hapta/sessions/revoke`, { method: 'POST', headers: { authorization: a, 'content-type': 'application/json' }, body: JSON.stringify({ collection: 'users', recordId: seeded.users[5].id }) });
    assert.equal(denied.status, 403);
    const res = await api(sidecar.url, '/api/hapta/sessions/revoke', { method: 'POST', token: admin, body: { collection: 'users', recordId: seeded.users[5].id } });
    assert.equal(res.revoked, 2);
    assert.equal(await accepted(a), false);
    assert.equal(await accepted(b), false);
  });

  test('a session ends when PocketBase stops accepting its token (password changed, record deleted)', async () => {
    const key = await login(4);
    assert.equal(await accepted(key), true);
    await api(pb.url, `/api/collections/users/records/${seeded.users[4].id}`, { method: 'PATCH', token: pbAdmin, body: { password: 'changed-password-1', passwordConfirm: 'changed-password-1' } });
    const deadline = Date.now() + 10_000;
    while ((await accepted(key)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await accepted(key), false);

    const other = await login(3);
    await api(pb.url, `/api/collections/users/records/${seeded.users[3].id}`, { method: 'DELETE', token: pbAdmin });
    const until = Date.now() + 10_000;
    while ((await accepted(other)) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await accepted(other), false);
  });

  test('a restart of the sidecar keeps users signed in', async () => {
    const key = await login(1);
    const dataDir = sidecar.dataDir;
    await sidecar.stop();
    const next = await startSidecar(pb, { dataDir, sessions: { graceMs: GRACE_MS }, rateLimits: { enabled: false } });
    sidecar = { ...next, dataDir, destroy: () => next.destroy() } as TestSidecar;
    await waitForSync(sidecar);
    assert.equal(await accepted(key), true);
    const refreshed = await api(sidecar.url, '/api/collections/users/auth-refresh', { method: 'POST', token: key });
    assert.equal(await accepted(refreshed.token), true);
  });
});
