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
});
