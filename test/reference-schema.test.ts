// The reference schema's rules, checked against the real PocketBase: drafts stay private (also for
// posts without coauthors, where a bare `coauthors.id ?= @request.auth.id` would admit anonymous callers).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';

describe('reference schema rules', () => {
  let pb: PocketBase;
  let seeded: Seeded;
  const tokens: string[] = [];
  let draft = '';
  let coauthored = '';

  before(async () => {
    pb = await startPocketBase();
    seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: 3, posts: 1, comments: 0, likes: 0, follows: 0 }, 55);
    for (const u of seeded.users) tokens.push((await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: u.email, password: USER_PASSWORD } })).token);
    draft = (await api(pb.url, '/api/collections/posts/records', { method: 'POST', token: tokens[0], body: { title: 'draft', author: seeded.users[0].id, published: false } })).id;
    coauthored = (await api(pb.url, '/api/collections/posts/records', { method: 'POST', token: tokens[0], body: { title: 'with coauthor', author: seeded.users[0].id, coauthors: [seeded.users[1].id], published: false } })).id;
  });
  after(async () => pb?.destroy());

  const status = async (path: string, token?: string, method = 'GET', body?: unknown) =>
    (await fetch(pb.url + path, { method, headers: { ...(token ? { authorization: token } : {}), 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined })).status;

  test('a draft without coauthors is invisible and immutable to anonymous callers and strangers', async () => {
    assert.equal(await status(`/api/collections/posts/records/${draft}`), 404);
    assert.equal(await status(`/api/collections/posts/records/${draft}`, tokens[2]), 404);
    assert.equal(await status(`/api/collections/posts/records/${draft}`, undefined, 'PATCH', { title: 'hijacked' }), 404);
    assert.equal(await status(`/api/collections/posts/records/${draft}`, tokens[0]), 200);
  });

  test('a coauthor views and edits a draft; others do not', async () => {
    assert.equal(await status(`/api/collections/posts/records/${coauthored}`, tokens[1]), 200);
    assert.equal(await status(`/api/collections/posts/records/${coauthored}`, tokens[1], 'PATCH', { title: 'edited by coauthor' }), 200);
    assert.equal(await status(`/api/collections/posts/records/${coauthored}`, tokens[2]), 404);
    assert.equal(await status(`/api/collections/posts/records/${coauthored}`), 404);
  });

  test('a block cannot be created anonymously', async () => {
    assert.equal(await status('/api/collections/blocks/records', undefined, 'POST', { blocker: '', blocked: seeded.users[1].id }), 400);
  });
});
