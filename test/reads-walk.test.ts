// Pages whose sort starts with an indexed column, over enough matching rows that the read path walks the
// sort's index instead of sorting every match (sidecar/reads/query.ts, sortWalk): the same pages as
// PocketBase's, byte for byte, ties in PocketBase's order, for filters of every selectivity, as several
// callers; and the walk is taken where it pays.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { planStats } from '../sidecar/reads/query.js';
import { rng } from './harness/seed.js';
import { compareLists, startReadsEnv, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;

before(async () => {
  env = await startReadsEnv({ counts: { users: 8, posts: 1500, comments: 300, likes: 400, follows: 20 } });
}, { timeout: 180_000 });

after(async () => { await env?.stop(); });

const enc = encodeURIComponent;

describe('pages read by walking the sort index', () => {
  it('equal PocketBase\'s pages (sorts on created, author, category; broad and narrow filters)', { timeout: 180_000 }, async (t) => {
    const rand = rng(31);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    const author = env.seeded.users[1].id;
    const filters = ['', 'category = "a"', 'category != "b"', 'published = true', 'likes >= 0 && category = "c"', `author = "${author}"`,
      'title ~ "1"', 'category = "a" || category = "b"', 'created > "2000-01-01"'];
    const sorts = ['-created', 'created', '-created,title', 'author', '-author', 'category,-created', '-category'];
    const walked = planStats.sortWalks;
    const n = 400;
    const differences = await compareLists(env, n, () => {
      const qs = [`perPage=${pick([5, 20, 30])}`, `page=${pick([1, 1, 2, 5, 40])}`, `sort=${enc(pick(sorts))}`];
      const f = pick(filters);
      if (f) qs.push(`filter=${enc(f)}`);
      return `/api/collections/posts/records?${qs.join('&')}`;
    });
    t.diagnostic(`${n} pages compared, ${differences.length} differ, ${planStats.sortWalks - walked} read by walking the sort's index`);
    assert.deepEqual(differences.slice(0, 10), []);
    assert.ok(planStats.sortWalks - walked > 20, 'broad filters walk the sort index');
  });

  // PocketBase finds one author's posts by the author index and sorts them all; the order of their ties
  // is that index's (the rowid). Written out, it lets the replica walk the sort's index for an author with
  // many posts and stop at the page.
  it('equal PocketBase\'s pages where a filter fixes an index (one author\'s posts), ties included', { timeout: 180_000 }, async (t) => {
    const rand = rng(37);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    const author = env.seeded.users[0].id;
    const sorts = ['-created', 'created', 'category', '-category', 'category,-created', '-author', 'author,created'];
    const walked = planStats.sortWalks;
    const n = 120;
    // Pages by date, and how many of them were read by walking the date index.
    const byDate = { pages: 0, walked: 0 };
    let last = { sort: '', walks: 0 };
    const settle = () => {
      if (last.sort.endsWith('created') && !last.sort.includes(',')) { byDate.pages++; byDate.walked += planStats.sortWalks - last.walks; }
    };
    const differences = await compareLists(env, n, () => {
      settle();
      const sort = pick(sorts);
      last = { sort, walks: planStats.sortWalks };
      const qs = [`perPage=${pick([5, 20, 30])}`, `page=${pick([1, 1, 2, 3, 8])}`, `sort=${enc(sort)}`, `filter=${enc(`author = "${author}"`)}`];
      return `/api/collections/posts/records?${qs.join('&')}`;
    });
    settle();
    t.diagnostic(`${n} pages compared, ${differences.length} differ, ${planStats.sortWalks - walked} read by walking the sort's index, ${byDate.walked} of ${byDate.pages} by date`);
    assert.deepEqual(differences.slice(0, 10), []);
    // Deep pages are sorted still: the walk would visit more entries than the author has posts.
    assert.ok(byDate.pages > 20 && byDate.walked > byDate.pages / 2, 'one author\'s first pages by date walk the date index');
  });
});
