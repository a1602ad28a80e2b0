// Every route the sidecar does not answer itself is proxied to PocketBase unchanged: the official JS SDK
// works through it, including realtime (SSE) and multipart uploads; statuses, errors and file ranges too.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import PocketBaseSDK from 'pocketbase';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

// Node 20 has no EventSource; the SDK's realtime service needs one (as PocketBase's docs say).
(globalThis as any).EventSource ??= EventSource;

describe('proxy', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let token: string;
  let seeded: Seeded;

  before(async () => {
    pb = await startPocketBase();
    token = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, token, { users: 3, posts: 20, comments: 5, likes: 3, follows: 1 }, 9);
    sidecar = await startSidecar(pb);
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  test('the official SDK runs a user journey through the sidecar, realtime included', async () => {
    const client = new PocketBaseSDK(sidecar.url);
    client.autoCancellation(false);
    const user = seeded.users[0];
    const auth = await client.collection('users').authWithPassword(user.email, USER_PASSWORD);
    assert.equal(auth.record.id, user.id);
    assert.equal(client.authStore.isValid, true);

    const events: { action: string; id: string }[] = [];
    const unsubscribe = await client.collection('posts').subscribe('*', (e) => events.push({ action: e.action, id: e.record.id }));
    const created = await client.collection('posts').create({ title: 'through the sidecar', author: user.id, published: true });
    const fetched = await client.collection('posts').getOne(created.id);
    assert.equal(fetched.title, 'through the sidecar');
    await client.collection('posts').update(created.id, { title: 'updated' });
    const list = await client.collection('posts').getList(1, 5, { filter: `id = "${created.id}"` });
    assert.equal(list.items[0].title, 'updated');
    await client.collection('posts').delete(created.id);
    const deadline = Date.now() + 5000;
    while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events.map((e) => e.action), ['create', 'update', 'delete']);
    assert.ok(events.every((e) => e.id === created.id));
    await unsubscribe();
    const refreshed = await client.collection('users').authRefresh();
    assert.equal(refreshed.record.id, user.id);
  });

  test('errors come back with PocketBase status and body unchanged', async () => {
    const direct = await fetch(`${pb.url}/api/collections/posts/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const proxied = await fetch(`${sidecar.url}/api/collections/posts/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(proxied.status, direct.status);
    assert.deepEqual(await proxied.json(), await direct.json());
    const missing = await fetch(`${sidecar.url}/api/collections/nope/records`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { data: {}, message: 'Missing collection context.', status: 404 });
  });

  test('multipart uploads and ranged file downloads pass through', async () => {
    const user = seeded.users[1];
    const userToken = (await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: user.email, password: USER_PASSWORD } })).token;
    const content = 'hello from a text file\n'.repeat(100);
    const form = new FormData();
    form.set('title', 'with attachment');
    form.set('author', user.id);
    form.set('published', 'true');
    form.set('attachment', new Blob([content], { type: 'text/plain' }), 'notes.txt');
    const res = await fetch(`${sidecar.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: userToken }, body: form });
    assert.equal(res.status, 200);
    const rec = await res.json() as any;
    assert.match(rec.attachment, /^notes_\w+\.txt$/);
    const file = await fetch(`${sidecar.url}/api/files/posts/${rec.id}/${rec.attachment}`);
    assert.equal(file.status, 200);
    assert.equal(await file.text(), content);
    const ranged = await fetch(`${sidecar.url}/api/files/posts/${rec.id}/${rec.attachment}`, { headers: { range: 'bytes=6-9' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'from');
    assert.equal(ranged.headers.get('content-range'), `bytes 6-9/${content.length}`);
  });

  test('HEAD, query strings and response headers are kept', async () => {
    const head = await fetch(`${sidecar.url}/api/health`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const direct = await fetch(`${pb.url}/api/collections/posts/records?perPage=2&sort=-title&fields=id,title`);
    const proxied = await fetch(`${sidecar.url}/api/collections/posts/records?perPage=2&sort=-title&fields=id,title`);
    assert.deepEqual(await proxied.json(), await direct.json());
    assert.equal(proxied.headers.get('content-type'), direct.headers.get('content-type'));
  });

  test("the sync endpoints are not reachable through the sidecar's port", async () => {
    const res = await fetch(`${sidecar.url}/api/hapta-sync/changes?after=0`, { headers: { authorization: token } });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { data: {}, message: "The requested resource wasn't found.", status: 404 });
  });

  test('metrics are Prometheus text with the upstream and request counters', async () => {
    assert.equal((await fetch(`${sidecar.url}/api/hapta/health`)).status, 200);
    const res = await fetch(`${sidecar.url}/api/hapta/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^hapta_upstream_requests_total\{purpose="proxy"\} \d+$/m);
    assert.match(text, /^hapta_upstream_requests_total\{purpose="sync"\} \d+$/m);
    assert.match(text, /^hapta_requests_total\{route="read",upstream="true"\} \d+$/m);
    assert.match(text, /^hapta_requests_total\{route="hapta",upstream="false"\} \d+$/m);
  });
});
