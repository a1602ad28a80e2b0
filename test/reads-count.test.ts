// Totals of lists whose list rule is an OR of terms (posts: `published = true || author = @request.auth.id`,
// follows: `follower = @request.auth.id || following = @request.auth.id`) are counted as disjoint parts
// (sidecar/reads/query.ts, countMatches): the same totals and pages as PocketBase's, for every caller,
// filters that match nothing, everything, NULLs and empty values included.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { planStats } from '../sidecar/reads/query.js';
import { rng } from './harness/seed.js';
import { compareLists, startReadsEnv, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;

before(async () => {
  // On the main thread (HAPTA_READ_THREADS=0): the same answers as on read threads.
  env = await startReadsEnv({ counts: { users: 8, posts: 600, comments: 100, likes: 200, follows: 40 }, readThreads: 0 });
}, { timeout: 180_000 });

after(async () => { await env?.stop(); });

const enc = encodeURIComponent;

describe('totals counted in parts', () => {
  it('equal PocketBase\'s totals and pages for lists under an OR rule, as every caller', { timeout: 180_000 }, async (t) => {
    const rand = rng(47);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    const someone = env.seeded.users[2].id;
    const lists: Array<[string, string[]]> = [
      ['posts', ['', 'tags ~ "news"', 'category = "a"', 'published = false', 'published = true', `author = "${someone}"`,
        `author != "${someone}"`, 'title ~ "1"', 'title = "no such title"', 'category = "" || category = "b"', 'likes > 3']],
      ['follows', ['', `follower = "${someone}"`, `following != "${someone}"`, 'created > "2000-01-01"']],
    ];
    const splits = planStats.countSplits;
    const n = 240;
    const differences = await compareLists(env, n, () => {
      const [coll, filters] = pick(lists);
      const qs = [`perPage=${pick([1, 5, 30])}`, `page=${pick([1, 2, 7])}`];
      const f = pick(filters);
      if (f) qs.push(`filter=${enc(f)}`);
      if (rand() < 0.5) qs.push('sort=-created');
      return `/api/collections/${coll}/records?${qs.join('&')}`;
    });
    t.diagnostic(`${n} lists compared, ${differences.length} differ, ${planStats.countSplits - splits} totals counted in parts`);
    assert.deepEqual(differences.slice(0, 10), []);
    assert.ok(planStats.countSplits - splits > 100, 'the OR rules are counted in parts');
  });

  it('plan a statement on PocketBase\'s statistics once per text, and keep PocketBase\'s pages for every value', { timeout: 60_000 }, async (t) => {
    // Lists that differ only in a value (and in who asks): the replica's plan is kept per value (STAT4
    // samples there could make it depend on the value), the plan on PocketBase's statistics (sqlite_stat1
    // alone) cannot depend on it, so it is explained once per statement text, not once per value.
    const authors = env.seeded.users.map((u) => u.id);
    const before = planStats.explains;
    const differences = await compareLists(env, authors.length, (i) => `/api/collections/posts/records?perPage=5&sort=-created&filter=${enc(`author = "${authors[i]}"`)}`);
    const explained = planStats.explains - before;
    t.diagnostic(`${authors.length} lists with distinct values, ${explained} plans explained`);
    assert.deepEqual(differences, []);
    assert.ok(explained > 0, 'the lists were planned');
    // one replica plan per list, one PocketBase plan per text (at most one per identity)
    assert.ok(explained <= authors.length + env.identities.length, `at most ${authors.length + env.identities.length} plans explained, not two per list`);
  });

  it('keep the replica\'s planner statistics without STAT4 samples, after the bootstrap and after each ANALYZE', async () => {
    // With samples SQLite would plan a statement again at every run whose value meets a sampled index.
    const store = env.sidecar.replicator.store!;
    const count = (sql: string) => (store.db.prepare(sql).get() as { n: number }).n;
    const check = () => {
      assert.ok(count("SELECT COUNT(*) AS n FROM sqlite_stat1 WHERE tbl = 'posts'") > 0, 'the averages are kept');
      assert.equal(count('SELECT COUNT(*) AS n FROM sqlite_stat4'), 0, 'no samples');
    };
    check();
    store.analyze(['posts', 'comments']);
    check();
    store.optimize();
    check();
  });
});
