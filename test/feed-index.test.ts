// Ranking data kept in the replica by triggers (interaction counters, decayed sums, full-text indexes)
// equals a recount / reindex after random writes, deletes, cascade deletes, a schema change that copies
// a source table anew, and a restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { counterTable, decayFactor, ftsTable, julianDay } from '../replica/feed-index.js';
import { REFERENCE_FEEDS } from '../config.js';
import { feedIndexSpec } from '../sidecar/feeds/profiles.js';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { makeId, rng, seedReference, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const spec = feedIndexSpec(REFERENCE_FEEDS);

describe('feed index', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let token: string;
  let seeded: Seeded;
  const rand = rng(77);

  before(async () => {
    pb = await startPocketBase();
    token = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, token, { users: 10, posts: 300, comments: 400, likes: 800, follows: 20 }, 12);
    sidecar = await startSidecar(pb);
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  /** Every counter equals a fresh GROUP BY over its source; decayed sums agree to 1e-9 relative. */
  function assertCountersExact(): void {
    const db = sidecar.replicator.store!.db;
    assert.ok(spec.counters.length >= 3);
    for (const c of spec.counters) {
      const live = new Map((db.prepare(`SELECT target, n, d FROM ${counterTable(c.name)}`).all() as any[]).map((r) => [r.target, r]));
      const fresh = db.prepare(`SELECT "${c.field}" AS target, COUNT(*) AS n, ${c.timeField ? `GROUP_CONCAT("${c.timeField}", '|')` : "''"} AS times FROM "${c.source}" WHERE "${c.field}" != '' GROUP BY "${c.field}"`).all() as any[];
      assert.equal(live.size, fresh.length, `${c.name}: targets`);
      for (const f of fresh) {
        const l = live.get(f.target);
        assert.ok(l, `${c.name}: ${f.target} missing`);
        assert.equal(l.n, f.n, `${c.name}: count of ${f.target}`);
        if (c.halfLifeHours && c.timeField) {
          const now = Date.now();
          const epoch = Number(sidecar.replicator.store!.getState(`counter_epoch:${c.name}`));
          const expected = (f.times as string).split('|').reduce((sum: number, t: string) => sum + Math.pow(2, -((julianDay(now) - julianDay(Date.parse(t.replace(' ', 'T')))) * 24) / c.halfLifeHours!), 0);
          const got = l.d * decayFactor(c.halfLifeHours, epoch, now);
          assert.ok(Math.abs(got - expected) <= 1e-9 * Math.max(1, expected), `${c.name}: decayed ${got} vs ${expected}`);
        }
      }
    }
  }

  /** The live full-text index answers like one built from scratch. */
  function assertFtsExact(): void {
    const db = sidecar.replicator.store!.db;
    for (const t of spec.texts) {
      db.exec(`DROP TABLE IF EXISTS temp.fresh; CREATE VIRTUAL TABLE temp.fresh USING fts5(${t.fields.join(', ')}, tokenize='unicode61 remove_diacritics 2')`);
      db.exec(`INSERT INTO temp.fresh (rowid, ${t.fields.join(', ')}) SELECT rowid, ${t.fields.join(', ')} FROM "${t.collection}"`);
      for (const term of ['news', 'tech', 'lorem', 'chaos', 'edited', 'post', 'zzz']) {
        const live = (db.prepare(`SELECT rowid FROM ${ftsTable(t.collection)} WHERE ${ftsTable(t.collection)} MATCH ? ORDER BY rowid`).all(term) as any[]).map((r) => r.rowid);
        const fresh = (db.prepare('SELECT rowid FROM temp.fresh WHERE fresh MATCH ? ORDER BY rowid').all(term) as any[]).map((r) => r.rowid);
        assert.deepEqual(live, fresh, `${t.collection} MATCH ${term}`);
      }
      db.exec('DROP TABLE temp.fresh');
    }
  }

  async function randomWrites(n: number): Promise<void> {
    const users = seeded.users.map((u) => u.id);
    for (let i = 0; i < n; i++) {
      const r = rand();
      const post = seeded.posts[Math.floor(rand() * seeded.posts.length)];
      try {
        if (r < 0.3) await api(pb.url, '/api/collections/likes/records', { method: 'POST', token, body: { post, user: users[Math.floor(rand() * users.length)] } });
        else if (r < 0.45) {
          const likes = (await api(pb.url, `/api/collections/likes/records?perPage=1&sort=@random`, { token })).items;
          if (likes[0]) await api(pb.url, `/api/collections/likes/records/${likes[0].id}`, { method: 'DELETE', token });
        } else if (r < 0.6) await api(pb.url, '/api/collections/comments/records', { method: 'POST', token, body: { post, author: users[0], text: 'edited chaos' } });
        else if (r < 0.7) {
          const cs = (await api(pb.url, `/api/collections/comments/records?perPage=1&sort=@random`, { token })).items;
          if (cs[0]) await api(pb.url, `/api/collections/comments/records/${cs[0].id}`, { method: 'PATCH', token, body: { post } });
        } else if (r < 0.85) await api(pb.url, `/api/collections/posts/records/${post}`, { method: 'PATCH', token, body: { title: `edited ${i} tech`, body: `<p>chaos ${i}</p>` } });
        else if (r < 0.95) {
          const id = makeId(rand);
          seeded.posts.push(id);
          await api(pb.url, '/api/collections/posts/records', { method: 'POST', token, body: { id, title: `new post ${i} news`, author: users[1], published: true } });
        } else await api(pb.url, `/api/collections/posts/records/${post}`, { method: 'DELETE', token }); // cascades to likes and comments
      } catch { /* duplicate like, deleted post: fine */ }
    }
  }

  test('after bootstrap the derived data equals a recount and a reindex', async () => {
    assertCountersExact();
    assertFtsExact();
  });

  test('after random writes, deletes and cascade deletes', async () => {
    await randomWrites(250);
    await waitForSync(sidecar);
    assertCountersExact();
    assertFtsExact();
  });

  test('after a schema change that copies a source table anew', async () => {
    const likes = await api(pb.url, '/api/collections/likes', { token });
    await api(pb.url, '/api/collections/likes', { method: 'PATCH', token, body: { fields: [...likes.fields, { name: 'weight', type: 'number' }] } });
    await randomWrites(40);
    await waitForSync(sidecar);
    assertCountersExact();
    assertFtsExact();
  });

  test('after a restart (derived data kept, not rebuilt) and more writes', async () => {
    const dataDir = sidecar.dataDir;
    await sidecar.stop();
    await randomWrites(40);
    const next = await startSidecar(pb, { dataDir });
    sidecar = { ...next, dataDir, destroy: () => next.destroy() } as TestSidecar;
    await waitForSync(sidecar);
    await randomWrites(40);
    await waitForSync(sidecar);
    assertCountersExact();
    assertFtsExact();
  });
});

describe('decayed sums', () => {
  test('rebasing to a later epoch keeps every value and keeps exponents small', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { ReplicaStore } = await import('../replica/store.js');
    const { FeedIndex } = await import('../replica/feed-index.js');
    const dir = mkdtempSync(join(tmpdir(), 'hapta-fi-'));
    const store = new ReplicaStore(join(dir, 'r.db'));
    try {
      const likes = { id: 'pbc_likes', name: 'likes', type: 'base', fields: [{ name: 'id', type: 'text' }, { name: 'post', type: 'relation', maxSelect: 1 }, { name: 'created', type: 'autodate' }] };
      store.publishTable(likes, store.createBuildTable(likes));
      const index = new FeedIndex(store, { counters: [{ name: 'lp', source: 'likes', field: 'post', timeField: 'created', halfLifeHours: 6 }], texts: [] });
      index.attach();
      const ins = store.db.prepare('INSERT INTO likes (id, post, created, _pb_rowid) VALUES (?, ?, ?, 0)');
      const base = Date.now();
      for (let i = 0; i < 50; i++) ins.run(`l${i}`, `p${i % 3}`, new Date(base - i * 3_600_000).toISOString().replace('T', ' '));
      const value = (now: number) => {
        const epoch = index.epoch({ name: 'lp', source: 'likes', field: 'post', timeField: 'created', halfLifeHours: 6 });
        return (store.db.prepare('SELECT target, d FROM _hapta_count_lp ORDER BY target').all() as any[]).map((r) => r.d * decayFactor(6, epoch, now));
      };
      const later = base + 200 * 86400_000; // 800 half-lives later: past the rebase threshold
      const before = value(later);
      index.maybeRebase(later);
      const after = value(later);
      for (let i = 0; i < before.length; i++) assert.ok(Math.abs(after[i] - before[i]) <= 1e-12 * Math.max(1e-300, Math.abs(before[i])) || before[i] === 0);
      // New likes after the rebase use the new epoch.
      ins.run('late', 'p0', new Date(later).toISOString().replace('T', ' '));
      const withLate = value(later);
      // Times are julian days (about 2.46e6) in doubles: one unit in the last place is about 40 µs, which at a
      // 6 h half-life moves a term by about 1.3e-9 of its value (seen: 1.0000000012910872 for 1).
      assert.ok(Math.abs(withLate[0] - (after[0] + 1)) < 1e-8, `a like made now counts 1 (${withLate[0]} vs ${after[0] + 1})`);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('counter order indexes', () => {
  test('each counter is indexed on its order column; a file of an older layout is rebuilt with them', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { ReplicaStore } = await import('../replica/store.js');
    const { FeedIndex, FEED_INDEX_LAYOUT, counterOrderIndex } = await import('../replica/feed-index.js');
    const dir = mkdtempSync(join(tmpdir(), 'hapta-fi-'));
    const path = join(dir, 'r.db');
    let store = new ReplicaStore(path);
    try {
      const likes = { id: 'pbc_likes', name: 'likes', type: 'base', fields: [{ name: 'id', type: 'text' }, { name: 'post', type: 'relation', maxSelect: 1 }, { name: 'created', type: 'autodate' }] };
      store.publishTable(likes, store.createBuildTable(likes));
      const spec = { counters: [
        { name: 'lp', source: 'likes', field: 'post' },
        { name: 'lpd', source: 'likes', field: 'post', timeField: 'created', halfLifeHours: 6 },
      ], texts: [] };
      new FeedIndex(store, spec).attach();
      const ins = store.db.prepare('INSERT INTO likes (id, post, created, _pb_rowid) VALUES (?, ?, ?, 0)');
      const base = Date.now();
      for (let i = 0; i < 200; i++) ins.run(`l${i}`, `p${i % 37}`, new Date(base - (i % 11) * 3_600_000).toISOString().replace('T', ' '));
      const indexes = () => new Map((store.db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE '\\_hapta\\_count\\_%' ESCAPE '\\'").all() as { name: string; sql: string }[]).map((r) => [r.name, r.sql]));
      const plan = (table: string, column: string) => (store.db.prepare(`EXPLAIN QUERY PLAN SELECT target FROM "${table}" ORDER BY ${column} DESC LIMIT 5`).all() as { detail: string }[]).map((r) => r.detail).join(' | ');
      const check = () => {
        const ix = indexes();
        assert.match(ix.get(counterOrderIndex('lp')) ?? '', /\(n\)$/, 'count: indexed on n');
        assert.match(ix.get(counterOrderIndex('lpd')) ?? '', /\(d\)$/, 'decayed: indexed on d');
        assert.match(plan('_hapta_count_lp', 'n'), /USING COVERING INDEX _hapta_count_lp__top/);
        assert.match(plan('_hapta_count_lpd', 'd'), /USING COVERING INDEX _hapta_count_lpd__top/);
        assert.doesNotMatch(plan('_hapta_count_lpd', 'd'), /TEMP B-TREE/);
        const top = store.db.prepare('SELECT target, n FROM _hapta_count_lp ORDER BY n DESC, target LIMIT 3').all() as { target: string; n: number }[];
        assert.deepEqual(top.map((r) => r.n), [6, 6, 6]);
        assert.equal(JSON.parse(store.getState('feed_index_spec')!).layout, FEED_INDEX_LAYOUT);
      };
      check();
      // A file written before the order indexes existed: its stored spec has no layout and no indexes.
      for (const name of [counterOrderIndex('lp'), counterOrderIndex('lpd')]) store.db.exec(`DROP INDEX "${name}"`);
      store.setState('feed_index_spec', JSON.stringify(spec));
      store.close();
      store = new ReplicaStore(path);
      new FeedIndex(store, spec).attach();
      check();
      const n = store.db.prepare('SELECT SUM(n) AS n FROM _hapta_count_lp').get() as { n: number };
      assert.equal(n.n, 200, 'counts rebuilt from the source');
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
