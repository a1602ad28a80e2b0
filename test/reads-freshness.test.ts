// Replica freshness through the read path: writes made straight to PocketBase (create, update, rule change,
// delete) are what the sidecar's reads show once the replica has applied them, and cached results never
// outlive the change that invalidates them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api } from './harness/dump.js';
import { waitForSync } from './harness/sidecar.js';
import { both, startReadsEnv, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;

before(async () => {
  env = await startReadsEnv({ counts: { users: 4, posts: 20, comments: 20, likes: 10, follows: 4 } });
}, { timeout: 120_000 });

after(async () => { await env?.stop(); });

async function same(path: string, whoIndex: number): Promise<string> {
  const r = await both(env, path, env.identities[whoIndex]);
  assert.equal(r.sc.status, r.pb.status, path);
  assert.equal(r.sc.body, r.pb.body, path);
  return r.sc.body;
}

describe('read path freshness', () => {
  it('create, update, rule change and delete in PocketBase show through the sidecar', { timeout: 60_000 }, async () => {
    const user = env.identities[1];
    const list = '/api/collections/posts/records?sort=-created,id&perPage=5&filter=' + encodeURIComponent('title ~ "Fresh"');
    assert.match(await same(list, 1), /"totalItems":0/);

    const created = await api<{ id: string }>(env.pb.url, '/api/collections/posts/records', {
      method: 'POST', token: user.token, body: { title: 'Fresh draft', author: user.id, published: false },
    });
    await waitForSync(env.sidecar);
    assert.match(await same(list, 1), /Fresh draft/);
    assert.match(await same(list, 0), /"totalItems":0/); // a draft: anonymous does not see it
    await same(`/api/collections/posts/records/${created.id}`, 1);
    await same(`/api/collections/posts/records/${created.id}`, 0);

    await api(env.pb.url, `/api/collections/posts/records/${created.id}`, { method: 'PATCH', token: user.token, body: { title: 'Fresh published', published: true } });
    await waitForSync(env.sidecar);
    assert.match(await same(list, 0), /Fresh published/);

    await api(env.pb.url, '/api/collections/posts', { method: 'PATCH', token: env.superToken, body: { listRule: 'author = @request.auth.id' } });
    await waitForSync(env.sidecar);
    assert.match(await same(list, 0), /"totalItems":0/);
    assert.match(await same(list, 1), /Fresh published/);

    await api(env.pb.url, `/api/collections/posts/records/${created.id}`, { method: 'DELETE', token: user.token });
    await waitForSync(env.sidecar);
    assert.match(await same(list, 1), /"totalItems":0/);
    await same(`/api/collections/posts/records/${created.id}`, 1);
    assert.deepEqual((await env.fallbacks()), []);
  });

  it('cached answers follow changes to every table they read: expands, joins, back-relations and the requester', { timeout: 60_000 }, async () => {
    const user = env.identities[1];
    const rule = 'published = true || author = @request.auth.id';
    await api(env.pb.url, '/api/collections/posts', { method: 'PATCH', token: env.superToken, body: { listRule: rule } });
    await waitForSync(env.sidecar);
    const post = await api<{ id: string }>(env.pb.url, '/api/collections/posts/records', {
      method: 'POST', token: user.token, body: { title: 'Dependency probe', author: user.id, published: true },
    });
    await waitForSync(env.sidecar);
    const rename = async (name: string) => {
      await api(env.pb.url, `/api/collections/users/records/${user.id}`, { method: 'PATCH', token: user.token, body: { name } });
      await waitForSync(env.sidecar);
    };

    // An expand reads users.
    const expanded = `/api/collections/posts/records/${post.id}?expand=author`;
    assert.doesNotMatch(await same(expanded, 1), /Renamed Once/);
    await rename('Renamed Once');
    assert.match(await same(expanded, 1), /"name":"Renamed Once"/);

    // A relation filter joins users.
    const joined = '/api/collections/posts/records?perPage=50&sort=-created,id&filter=' + encodeURIComponent('author.name = "Renamed Twice"');
    assert.match(await same(joined, 1), /"totalItems":0/);
    await rename('Renamed Twice');
    assert.match(await same(joined, 1), /Dependency probe/);

    // A back-relation filter reads comments.
    const back = '/api/collections/posts/records?perPage=50&sort=-created,id&filter=' + encodeURIComponent('comments_via_post.text ?~ "needle"');
    assert.match(await same(back, 1), /"totalItems":0/);
    await api(env.pb.url, '/api/collections/comments/records', { method: 'POST', token: user.token, body: { post: post.id, author: user.id, text: 'a needle here' } });
    await waitForSync(env.sidecar);
    assert.match(await same(back, 1), /Dependency probe/);

    // A rule on the requester's own record: the answer changes when only that record does.
    await api(env.pb.url, '/api/collections/posts', { method: 'PATCH', token: env.superToken, body: { listRule: '@request.auth.name = "Rule Fan"' } });
    await waitForSync(env.sidecar);
    const all = '/api/collections/posts/records?perPage=1&sort=-created,id';
    assert.match(await same(all, 1), /"totalItems":0/);
    await rename('Rule Fan');
    assert.doesNotMatch(await same(all, 1), /"totalItems":0/);
    await api(env.pb.url, '/api/collections/posts', { method: 'PATCH', token: env.superToken, body: { listRule: rule } });
    await waitForSync(env.sidecar);
    assert.deepEqual((await env.fallbacks()), []);
  });
});
