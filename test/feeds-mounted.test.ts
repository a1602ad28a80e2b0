// The feed route as the sidecar serves it: session keys, PocketBase's list shape, drafts only for their
// author, PocketBase-shaped errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

describe('feeds in the sidecar', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let seeded: Seeded;
  let key = '';
  let draft = '';

  before(async () => {
    pb = await startPocketBase();
    const admin = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, admin, { users: 3, posts: 40, comments: 30, likes: 40, follows: 3 }, 99);
    sidecar = await startSidecar(pb, { rateLimits: { enabled: false } });
    await waitForSync(sidecar);
    key = (await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[1].email, password: USER_PASSWORD } })).token;
    draft = (await api(sidecar.url, '/api/collections/posts/records', { method: 'POST', token: key, body: { title: 'my draft news', author: seeded.users[1].id, published: false } })).id;
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  const allIds = async (path: string, token?: string) => {
    const ids: string[] = [];
    let url = `${sidecar.url}${path}${path.includes('?') ? '&' : '?'}perPage=100`;
    for (let i = 0; i < 20; i++) {
      const res = await api(url, '', { token });
      ids.push(...res.items.map((r: { id: string }) => r.id));
      if (!res.cursor) break;
      url = `${sidecar.url}${path}${path.includes('?') ? '&' : '?'}perPage=100&cursor=${encodeURIComponent(res.cursor)}`;
    }
    return ids;
  };

  test('a draft shows in its author\'s feed only', async () => {
    const mine = await allIds('/api/hapta/feeds/latest', key);
    const anon = await allIds('/api/hapta/feeds/latest');
    assert.ok(mine.includes(draft));
    assert.ok(!anon.includes(draft));
    assert.equal(new Set(mine).size, mine.length, 'no repeats');
    const published = (await api(pb.url, `/api/collections/posts/records?perPage=500&filter=${encodeURIComponent('published = true')}&fields=id`)).items.map((r: { id: string }) => r.id);
    assert.deepEqual([...anon].sort(), [...published].sort(), 'anonymous callers get exactly the published posts');
  });

  test('list shape and PocketBase-shaped errors', async () => {
    const page = await api(sidecar.url, '/api/hapta/feeds/trending?perPage=5');
    assert.deepEqual(Object.keys(page).filter((k) => k !== 'cursor').sort(), ['items', 'page', 'perPage', 'totalItems', 'totalPages']);
    assert.equal(page.items.length, 5);
    const unknown = await fetch(`${sidecar.url}/api/hapta/feeds/nope`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as any).status, 404);
    const search = await fetch(`${sidecar.url}/api/hapta/feeds/search`);
    assert.equal(search.status, 400);
    const hostile = await fetch(`${sidecar.url}/api/hapta/feeds/search?q=${encodeURIComponent('"NEAR( title:* ^ ) OR')}`);
    assert.ok([200, 400].includes(hostile.status));
    const forged = await fetch(`${sidecar.url}/api/hapta/feeds/latest?cursor=abc.def`);
    assert.equal(forged.status, 400);
  });
});
