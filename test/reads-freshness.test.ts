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
    assert.deepEqual([...env.fallbacks], []);
  });
});
