// Totals whose count reads the whole table (`tags ~ 'x'`, `title ~ 'x'`: a LIKE no index serves) are kept
// per segment of rowids (sidecar/reads/query.ts, countRows; replica/store.ts, SEGMENT_SIZE): after a
// write only the segments it touched are counted again. The totals stay PocketBase's, as every caller,
// through inserts, updates that move a record in or out of a filter, and deletes, in any segment.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SEGMENT_SIZE } from '../replica/store.js';
import { planStats } from '../sidecar/reads/query.js';
import { batch, makeId, rng, type BatchRequest } from './harness/seed.js';
import { waitForSync } from './harness/sidecar.js';
import { compareLists, startReadsEnv, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;
// More posts than two segments hold: three segments of the posts table.
const POSTS = 2 * SEGMENT_SIZE + 900;

before(async () => {
  // One read thread that answers every list (no shape moves to the main thread): one cache of counts.
  env = await startReadsEnv({ counts: { users: 6, posts: POSTS, comments: 10, likes: 10, follows: 4 }, readThreads: 1, inlineReadMs: 0 });
}, { timeout: 240_000 });

after(async () => { await env?.stop(); });

const enc = encodeURIComponent;
// Each filter's count scans the posts table (no index serves it); `category` has an index and is
// counted whole. `perPage=1`: the totals are what is compared, the page is the same either way.
const SCANS = ['tags ~ "news"', 'title ~ "7"', 'tags ~ "fun" && title ~ "1"', 'body ~ "ipsum lorem"'];
// Seeded posts in the replica's order (by id): the first segment's, the middle one's.
const sortedPosts = () => [...env.seeded.posts].sort();
const deleted = () => sortedPosts()[SEGMENT_SIZE + 20];
const paths = [...SCANS, 'category = "b"'].map((f) => `/api/collections/posts/records?perPage=1&filter=${enc(f)}`);

/** Every path as every identity, PocketBase against the sidecar; the differences. */
async function compareAll(): Promise<string[]> {
  return compareLists(env, paths.length * env.identities.length, (i) => paths[Math.floor(i / env.identities.length)]);
}

function counted(): { counts: number; segments: number } {
  return { counts: planStats.segmentedCounts, segments: planStats.segmentsCounted };
}

async function write(requests: BatchRequest[]): Promise<void> {
  await batch(env.pb.url, env.superToken, requests);
  await waitForSync(env.sidecar);
}

describe('totals counted by segment', () => {
  it('are PocketBase\'s, and a first count reads every segment', { timeout: 60_000 }, async () => {
    const before = counted();
    assert.deepEqual(await compareAll(), []);
    const after = counted();
    assert.ok(after.counts > before.counts, 'the scanning filters are counted by segment');
    // Three segments each, the first time.
    assert.equal(after.segments - before.segments, 3 * (after.counts - before.counts));
  });

  it('after one write only its segment is counted again, and the totals stay PocketBase\'s', { timeout: 120_000 }, async () => {
    const users = env.seeded.users;
    const steps: Array<[string, BatchRequest[]]> = [
      ['a new post (the last segment)', [{ method: 'POST', url: '/api/collections/posts/records', body: {
        id: makeId(rng(5)), title: 'New 7 about news', body: 'ipsum lorem', author: users[1].id, published: true, tags: ['news', 'fun'], category: 'b' } }]],
      // The replica holds the seeded posts in id order: the smallest id is in the first segment.
      ['a post of the first segment out of every filter', [{ method: 'PATCH', url: `/api/collections/posts/records/${sortedPosts()[0]}`, body: { tags: [], title: 'Renamed', body: 'none' } }]],
      ['a post of the middle segment into the filters', [{ method: 'PATCH', url: `/api/collections/posts/records/${sortedPosts()[SEGMENT_SIZE + 10]}`, body: { tags: ['news', 'fun'], title: 'T 17', body: 'ipsum lorem' } }]],
      ['a post of the middle segment deleted', [{ method: 'DELETE', url: `/api/collections/posts/records/${deleted()}` }]],
      ['a draft of a signed-in user published', [{ method: 'PATCH', url: `/api/collections/posts/records/${[...env.seeded.drafts].sort()[0]}`, body: { published: true, tags: ['news'], title: '71' } }]],
    ];
    for (const [what, requests] of steps) {
      await write(requests);
      const before = counted();
      assert.deepEqual(await compareAll(), [], what);
      const after = counted();
      assert.ok(after.counts > before.counts, `${what}: counted by segment`);
      assert.equal(after.segments - before.segments, after.counts - before.counts, `${what}: one segment counted again per count`);
    }
  });

  it('stay PocketBase\'s through random batches of inserts, updates and deletes', { timeout: 180_000 }, async () => {
    const rand = rng(91);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    const alive = env.seeded.posts.filter((id) => id !== deleted());
    const tags = ['news', 'tech', 'fun', 'misc'];
    for (let round = 0; round < 8; round++) {
      const requests: BatchRequest[] = [];
      for (let i = 0; i < 1 + Math.floor(rand() * 6); i++) {
        const r = rand();
        if (r < 0.3) {
          const id = makeId(rand);
          alive.push(id);
          requests.push({ method: 'POST', url: '/api/collections/posts/records', body: {
            id, title: `R ${Math.floor(rand() * 100)}`, body: rand() < 0.5 ? 'ipsum lorem' : 'x', author: pick(env.seeded.users).id,
            published: rand() < 0.7, tags: tags.filter(() => rand() < 0.4).slice(0, 3), category: pick(['a', 'b', 'c']) } });
        } else if (r < 0.8) {
          requests.push({ method: 'PATCH', url: `/api/collections/posts/records/${pick(alive)}`, body: {
            tags: tags.filter(() => rand() < 0.4).slice(0, 3), title: `U ${Math.floor(rand() * 100)}`, published: rand() < 0.7 } });
        } else {
          const at = Math.floor(rand() * alive.length);
          const [id] = alive.splice(at, 1);
          requests.push({ method: 'DELETE', url: `/api/collections/posts/records/${id}` });
        }
      }
      await write(requests);
      assert.deepEqual(await compareAll(), [], `round ${round}`);
    }
  });
});
