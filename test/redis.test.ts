// Several sidecars sharing Redis (the real one on 127.0.0.1:6379): a key issued by one works on the
// other, a revocation on one is effective on the other at once, rotation is shared, and a limit of N per
// window admits N in total across both.
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const REDIS_URL = process.env.HAPTA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/9';

describe('two sidecars sharing Redis', () => {
  let pb: PocketBase;
  let a: TestSidecar;
  let b: TestSidecar;
  let seeded: Seeded;

  before(async () => {
    const redis = new Redis(REDIS_URL);
    await redis.flushdb();
    await redis.quit();
    pb = await startPocketBase();
    seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: 3, posts: 5, comments: 1, likes: 1, follows: 1 }, 44);
    const shared = {
      redisUrl: REDIS_URL,
      sessions: { graceMs: 300 },
      rateLimits: { read: { max: 6, duration: 60_000, ip: true, message: 'Slow down.' } },
    };
    a = await startSidecar(pb, { ...shared, replica: { consumerId: 'a' } });
    b = await startSidecar(pb, { ...shared, replica: { consumerId: 'b' } });
    await Promise.all([waitForSync(a), waitForSync(b)]);
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    await pb?.destroy();
  });

  const signedIn = async (url: string, key: string) => {
    const res = await fetch(`${url}/api/collections/users/auth-refresh`, { method: 'POST', headers: { authorization: key } });
    await res.arrayBuffer();
    return res.status === 200;
  };

  test('a key issued by one sidecar works on the other; logout on one is effective on the other', async () => {
    const key = (await api(a.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[0].email, password: USER_PASSWORD } })).token;
    const me = await api(b.url, `/api/collections/posts/records`, { method: 'POST', token: key, body: { title: 'via b', author: seeded.users[0].id } });
    assert.equal(me.author, seeded.users[0].id);
    const res = await fetch(`${a.url}/api/hapta/logout`, { method: 'POST', headers: { authorization: key } });
    assert.equal(res.status, 204);
    assert.equal(await signedIn(b.url, key), false);
  });

  test('a key rotated on one sidecar and replayed on the other after the grace window burns the session', async () => {
    const key = (await api(a.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[1].email, password: USER_PASSWORD } })).token;
    const next = (await api(b.url, '/api/collections/users/auth-refresh', { method: 'POST', token: key })).token;
    assert.notEqual(next, key);
    await new Promise((r) => setTimeout(r, 500));
    const replay = await fetch(`${a.url}/api/collections/posts/records`, { headers: { authorization: key } });
    assert.equal(replay.status, 200); // treated as no token
    await replay.arrayBuffer();
    assert.equal(await signedIn(b.url, next), false);
  });

  test('a limit of N per window admits N in total across both sidecars', async () => {
    const redis = new Redis(REDIS_URL);
    const used = await redis.keys('hapta:rl:read:*');
    if (used.length) await redis.del(...used); // earlier tests read too
    await redis.quit();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${(i % 2 ? a : b).url}/api/collections/posts/records?perPage=1`);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.equal(statuses.filter((s) => s === 200).length, 6);
    assert.equal(statuses.filter((s) => s === 429).length, 4);
  });

  test('both sidecars share one session secret, kept in Redis', async () => {
    const redis = new Redis(REDIS_URL);
    try {
      assert.ok((await redis.get('hapta:session-secret'))!.length >= 32);
    } finally {
      await redis.quit();
    }
  });
});
