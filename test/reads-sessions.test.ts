// The read path end to end in the real sidecar: the requester is the auth record behind the session key,
// and answers equal PocketBase's for the same user with its own token, byte for byte, without PocketBase.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

describe('reads through sessions', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let seeded: Seeded;
  const keys: string[] = [];
  const pbTokens: string[] = [];
  let drafts: string[] = [];

  before(async () => {
    pb = await startPocketBase();
    const admin = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, admin, { users: 4, posts: 60, comments: 40, likes: 30, follows: 6 }, 66);
    sidecar = await startSidecar(pb, { rateLimits: { enabled: false } });
    await waitForSync(sidecar);
    for (const i of [0, 1]) {
      const body = { identity: seeded.users[i].email, password: USER_PASSWORD };
      keys.push((await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body })).token);
      pbTokens.push((await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body })).token);
    }
    keys.push((await api(sidecar.url, '/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: SUPERUSER.email, password: SUPERUSER.password } })).token);
    pbTokens.push(admin);
    drafts = [];
    for (const i of [0, 1]) {
      drafts.push((await api(pb.url, '/api/collections/posts/records', { method: 'POST', token: pbTokens[i], body: { title: `draft of ${i}`, author: seeded.users[i].id, published: false, secret: 'hidden' } })).id);
    }
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  const paths = () => [
    '/api/collections/posts/records?perPage=50&sort=-created,id',
    `/api/collections/posts/records?filter=${encodeURIComponent("published = false")}&sort=id`,
    `/api/collections/posts/records/${drafts[0]}`,
    `/api/collections/posts/records/${drafts[1]}?expand=author`,
    '/api/collections/posts/records?perPage=5&sort=id&expand=author,comments_via_post.author&fields=id,title,expand.author.name,expand.comments_via_post.text',
    '/api/collections/users/records?sort=id',
    `/api/collections/users/records/${seeded.users[1].id}`,
    '/api/collections/follows/records?sort=id',
    '/api/collections/comments/records?sort=id&perPage=100',
    `/api/collections/posts/records?filter=${encodeURIComponent('author.name ~ "User"')}&sort=id&skipTotal=1`,
    '/api/collections/audit_log/records',
    '/api/collections/posts/records?filter=%40request.auth.id%3D%22x%22',
  ];

  test('anonymous, two users and a superuser get exactly what PocketBase gives them', async () => {
    const before = await answeredLocally();
    let compared = 0;
    for (let who = -1; who < keys.length; who++) {
      for (const path of paths()) {
        const mine = await fetch(sidecar.url + path, { headers: who >= 0 ? { authorization: keys[who] } : {} });
        const theirs = await fetch(pb.url + path, { headers: who >= 0 ? { authorization: pbTokens[who] } : {} });
        assert.equal(mine.status, theirs.status, `${who} ${path}`);
        // With `fields`, PocketBase emits keys in random order: compare values there, bytes elsewhere.
        if (path.includes('fields=')) assert.deepEqual(JSON.parse(await mine.text()), JSON.parse(await theirs.text()), `${who} ${path}`);
        else assert.equal(await mine.text(), await theirs.text(), `${who} ${path}`);
        assert.equal(mine.headers.get('content-type'), theirs.headers.get('content-type'));
        compared++;
      }
    }
    assert.equal(compared, 48);
    assert.equal((await answeredLocally()) - before, compared, 'every read answered from the replica');
    assert.equal(await fallbacks(), 0);
  });

  const answeredLocally = () => metricSum(sidecar.metrics.requests, { route: 'read', upstream: 'false' });
  const fallbacks = () => metricSum(sidecar.metrics.readFallbacks);
});
