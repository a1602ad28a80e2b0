// The replica against the real PocketBase: bootstrap equality, live changes, restart without
// re-bootstrap, rebuild when the log does not continue the replica, health before the first bootstrap.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { api, diffDumps, dumpPocketBase, dumpReplica, superuserToken } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import { FORMAT_VERSION } from '../replica/store.js';
import { TcpCutter } from './harness/net.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

async function assertConverged(pb: PocketBase, sidecar: TestSidecar, token: string): Promise<void> {
  await waitForSync(sidecar);
  const diffs = diffDumps(await dumpPocketBase(pb.url, token), dumpReplica(sidecar.replicator.store!));
  assert.deepEqual(diffs, [], 'replica differs from PocketBase');
}

const counter = (sidecar: TestSidecar, purpose: string) => metricSum(sidecar.metrics.upstreamRequests, { purpose });

describe('replica', () => {
  let pb: PocketBase;
  let token: string;
  let seeded: Seeded;

  before(async () => {
    pb = await startPocketBase();
    token = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, token, { users: 40, posts: 12_000, comments: 5_000, likes: 3_000, follows: 800 });
  });
  after(async () => pb?.destroy());

  test('bootstrap of 20k records equals PocketBase record for record, in PocketBase order', async () => {
    const sidecar = await startSidecar(pb);
    try {
      await sidecar.replicator.whenReady();
      const dump = dumpReplica(sidecar.replicator.store!);
      const total = Object.values(dump).reduce((n, rows) => n + rows.length, 0);
      assert.ok(total >= 20_000, `only ${total} records`);
      assert.deepEqual(diffDumps(await dumpPocketBase(pb.url, token), dump), []);
      assert.equal(existsSync(join(sidecar.dataDir, 'replica.db.building')), false);
      const health = await (await fetch(`${sidecar.url}/api/hapta/health`)).json() as any;
      assert.equal(health.replica.ready, true);
      assert.equal(health.replica.collections, 7);
      assert.equal(typeof health.replica.seq, 'number');
      assert.ok(health.replica.seq > 0);
    } finally {
      await sidecar.destroy();
    }
  });

  test('creates, updates and deletes made in PocketBase reach the replica; reads through the proxy see them', async () => {
    const sidecar = await startSidecar(pb);
    try {
      await waitForSync(sidecar);
      const user = seeded.users[1];
      const userToken = (await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: user.email, password: USER_PASSWORD } })).token;
      const created = await api(pb.url, '/api/collections/posts/records', { method: 'POST', token: userToken, body: { title: 'fresh', author: user.id, published: true, tags: ['tech'] } });
      await waitForSync(sidecar);
      const row = sidecar.replicator.store!.db.prepare('SELECT title, tags, published FROM posts WHERE id = ?').get(created.id) as any;
      assert.deepEqual(row, { title: 'fresh', tags: '["tech"]', published: 1 });
      const viaProxy = await api(sidecar.url, `/api/collections/posts/records/${created.id}`);
      assert.equal(viaProxy.title, 'fresh');

      await api(pb.url, `/api/collections/posts/records/${created.id}`, { method: 'PATCH', token: userToken, body: { title: 'edited', 'tags+': 'fun' } });
      await waitForSync(sidecar);
      assert.deepEqual(sidecar.replicator.store!.db.prepare('SELECT title, tags FROM posts WHERE id = ?').get(created.id), { title: 'edited', tags: '["tech","fun"]' });

      await api(pb.url, `/api/collections/posts/records/${created.id}`, { method: 'DELETE', token: userToken });
      await waitForSync(sidecar);
      assert.equal(sidecar.replicator.store!.db.prepare('SELECT 1 FROM posts WHERE id = ?').get(created.id), undefined);
      const gone = await fetch(`${sidecar.url}/api/collections/posts/records/${created.id}`);
      assert.equal(gone.status, 404);
      assert.deepEqual(await gone.json(), { data: {}, message: "The requested resource wasn't found.", status: 404 });

      // A cascade: deleting a post removes its comments and likes in PocketBase and in the replica.
      const post = seeded.posts[0];
      await api(pb.url, `/api/collections/posts/records/${post}`, { method: 'DELETE', token });
      await assertConverged(pb, sidecar, token);
      assert.equal((sidecar.replicator.store!.db.prepare('SELECT COUNT(*) AS n FROM comments WHERE post = ?').get(post) as any).n, 0);
    } finally {
      await sidecar.destroy();
    }
  });

  test("PocketBase's indexes are recreated on the replica's tables and used", async () => {
    const sidecar = await startSidecar(pb);
    try {
      await waitForSync(sidecar);
      const db = sidecar.replicator.store!.db;
      const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '_hapta_ix_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      for (const n of ['_hapta_ix_posts__idx_posts_created', '_hapta_ix_posts__idx_posts_author', '_hapta_ix_likes__idx_likes_post_user', '_hapta_ix_comments__idx_comments_post']) {
        assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
      }
      const plan = (db.prepare('EXPLAIN QUERY PLAN SELECT id FROM posts ORDER BY created DESC LIMIT 20').all() as { detail: string }[]).map((r) => r.detail).join(' | ');
      assert.match(plan, /_hapta_ix_posts__idx_posts_created/);
    } finally {
      await sidecar.destroy();
    }
  });

  test('the replica file can be opened read-only by another SQLite client while the sidecar runs', async () => {
    const sidecar = await startSidecar(pb);
    try {
      await waitForSync(sidecar);
      const ro = new Database(join(sidecar.dataDir, 'replica.db'), { readonly: true, fileMustExist: true });
      try {
        const top = ro.prepare(`SELECT u.name, COUNT(*) AS posts FROM posts p JOIN users u ON u.id = p.author GROUP BY u.id ORDER BY posts DESC LIMIT 3`).all() as any[];
        assert.equal(top.length, 3);
        assert.ok(top[0].posts >= top[2].posts);
        const hidden = ro.prepare(`SELECT field FROM _hapta_fields WHERE collection = 'posts' AND hidden = 1`).all();
        assert.deepEqual(hidden, [{ field: 'secret' }]);
        // Writes made while the reader is open are seen by it.
        const before = (ro.prepare('SELECT COUNT(*) AS n FROM likes').get() as any).n;
        const u = seeded.users[2];
        const t = (await api(pb.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: u.email, password: USER_PASSWORD } })).token;
        const liked = new Set((ro.prepare('SELECT post FROM likes WHERE user = ?').all(u.id) as any[]).map((r) => r.post));
        const target = seeded.posts.slice(1).find((p) => !liked.has(p))!;
        await api(pb.url, '/api/collections/likes/records', { method: 'POST', token: t, body: { post: target, user: u.id } });
        await waitForSync(sidecar);
        assert.equal((ro.prepare('SELECT COUNT(*) AS n FROM likes').get() as any).n, before + 1);
      } finally {
        ro.close();
      }
    } finally {
      await sidecar.destroy();
    }
  });

  test('a restart resumes from the stored position without copying again', async () => {
    const first = await startSidecar(pb);
    const dataDir = first.dataDir;
    await waitForSync(first);
    await first.stop();
    // Changes while the sidecar is down.
    await api(pb.url, `/api/collections/posts/records/${seeded.posts[5]}`, { method: 'PATCH', token, body: { title: 'changed while down' } });
    await api(pb.url, `/api/collections/posts/records/${seeded.posts[6]}`, { method: 'DELETE', token });
    const second = await startSidecar(pb, { dataDir });
    try {
      await assertConverged(pb, second, token);
      assert.equal(await counter(second, 'bootstrap'), 0, 'no collection was copied again');
    } finally {
      await second.stop();
    }
  });

  test('a replica file of another format version is rebuilt', async () => {
    const first = await startSidecar(pb);
    await waitForSync(first);
    first.replicator.store!.setState('format', '0');
    await first.stop();
    const second = await startSidecar(pb, { dataDir: first.dataDir });
    try {
      await assertConverged(pb, second, token);
      assert.ok((await counter(second, 'bootstrap')) > 0, 'the replica was copied anew');
      assert.equal(second.replicator.store!.format, FORMAT_VERSION);
    } finally {
      await second.destroy();
    }
  });

  test('a replica of a different PocketBase database is rebuilt', async () => {
    const other = await startPocketBase();
    try {
      const otherToken = await superuserToken(other.url);
      await seedReference(other.url, otherToken, { users: 3, posts: 50, comments: 10, likes: 5, follows: 2 }, 7);
      const first = await startSidecar(pb);
      await waitForSync(first);
      await first.stop();
      const second = await startSidecar(other, { dataDir: first.dataDir });
      try {
        await assertConverged(other, second, otherToken);
        assert.ok((await counter(second, 'bootstrap')) > 0, 'the replica was copied anew');
      } finally {
        await second.stop();
      }
    } finally {
      await other.destroy();
    }
  });

  test('a sidecar that fell behind the log retention rebuilds', async () => {
    const pruning = await startPocketBase({ env: { HAPTA_LOG_RETENTION_SECONDS: '0', HAPTA_LOG_MAX_AGE_SECONDS: '0' } });
    try {
      const t = await superuserToken(pruning.url);
      await seedReference(pruning.url, t, { users: 2, posts: 30, comments: 5, likes: 3, follows: 1 }, 3);
      const first = await startSidecar(pruning);
      await waitForSync(first);
      await first.stop();
      const posts = (await api(pruning.url, '/api/collections/posts/records?perPage=5', { token: t })).items;
      await api(pruning.url, `/api/collections/posts/records/${posts[0].id}`, { method: 'PATCH', token: t, body: { title: 'lost from the log' } });
      const pruned = await api(pruning.url, '/api/hapta-sync/prune', { method: 'POST', token: t });
      assert.ok(pruned.prunedThrough > 0);
      const second = await startSidecar(pruning, { dataDir: first.dataDir });
      try {
        await assertConverged(pruning, second, t);
        assert.ok((await counter(second, 'bootstrap')) > 0, 'the replica was copied anew');
      } finally {
        await second.stop();
      }
    } finally {
      await pruning.destroy();
    }
  });

  test('health answers 503 with the same shape until the first bootstrap completes', async () => {
    const cutter = new TcpCutter({ host: '127.0.0.1', port: () => pb.port });
    await cutter.start();
    cutter.block();
    const sidecar = await startSidecar({ url: cutter.url, migrationsDir: pb.migrationsDir });
    try {
      const res = await fetch(`${sidecar.url}/api/hapta/health`);
      assert.equal(res.status, 503);
      const body = await res.json() as any;
      assert.deepEqual(body.replica, { ready: false, lagMs: null, collections: 0, seq: 0 });
      const proxied = await fetch(`${sidecar.url}/api/health`);
      assert.equal(proxied.status, 502);
      assert.equal((await proxied.json() as any).status, 502);
      cutter.resume();
      await waitForSync(sidecar);
      assert.equal((await fetch(`${sidecar.url}/api/hapta/health`)).status, 200);
    } finally {
      await sidecar.destroy();
      await cutter.stop();
    }
  });
});
