// The headline benchmark's request plan: deterministic, the write share it is asked for, and every like
// and follow undone later in the same session, so each replay starts from the same data.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bindIds, buildPlan, WRITE_KINDS, type MixData } from '../bench/mix.js';
import { makeId, rng } from './harness/seed.js';

const rand = rng(3);
const users = Array.from({ length: 40 }, () => ({ id: makeId(rand) }));
const posts = Array.from({ length: 500 }, () => makeId(rand));
const data: MixData = { users, posts, likePairs: new Set([posts[0] + users[0].id]), followPairs: new Set(), drafts: new Set(posts.slice(0, 100)) };
const opts = { requests: 20_000, signedIn: 30, anonymous: 10, writeShare: 0.05, seed: 9 };

describe('benchmark plan', () => {
  test('is the same for the same seed', () => {
    assert.deepEqual(buildPlan(data, opts), buildPlan(data, opts));
  });

  test('has the requested size and write share; anonymous visitors never write', () => {
    const plan = buildPlan(data, opts);
    const all = plan.flatMap((s) => s.requests);
    assert.ok(all.length >= opts.requests && all.length < opts.requests * 1.05, String(all.length));
    const writes = all.filter((r) => WRITE_KINDS.has(r.kind)).length / all.length;
    assert.ok(Math.abs(writes - opts.writeShare) < 0.01, String(writes));
    for (const s of plan.filter((x) => x.user === -1)) assert.ok(s.requests.every((r) => !WRITE_KINDS.has(r.kind) && r.kind !== 'auth_refresh' && r.kind !== 'feed_following'));
  });

  test('undoes each like and follow later in its session; never repeats an existing pair or comments on drafts', () => {
    for (const s of buildPlan(data, opts)) {
      const open = new Map<string, string>();
      const me = s.user === -1 ? null : users[s.user].id;
      for (const r of s.requests) {
        if (r.kind === 'like' || r.kind === 'follow') {
          assert.equal(r.body![r.kind === 'like' ? 'user' : 'follower'], me);
          if (r.kind === 'like') assert.ok(!data.likePairs.has(String(r.body!.post) + me));
          open.set(String(r.body!.id), r.kind);
        }
        if (r.kind === 'unlike' || r.kind === 'unfollow') {
          const id = r.path.split('/').pop()!;
          assert.equal(open.get(id), r.kind === 'unlike' ? 'like' : 'follow');
          open.delete(id);
        }
        if (r.kind === 'comment') assert.ok(!data.drafts.has(String(r.body!.post)));
      }
      assert.equal(open.size, 0);
    }
  });

  test('ids bound for a run are valid PocketBase ids, unique, and differ between runs', () => {
    const text = JSON.stringify(buildPlan(data, opts));
    const a = JSON.parse(bindIds(text, 's', 'k3x')) as ReturnType<typeof buildPlan>;
    const b = JSON.parse(bindIds(text, 's', 'q7z')) as ReturnType<typeof buildPlan>;
    const ids = (plan: typeof a) => plan.flatMap((s) => s.requests).filter((r) => r.method === 'POST' && r.body?.id).map((r) => String(r.body!.id));
    const first = ids(a);
    assert.ok(first.length > 0);
    for (const id of first) assert.match(id, /^[a-z0-9]{15}$/);
    assert.equal(new Set(first).size, first.length);
    const second = new Set(ids(b));
    assert.ok(first.every((id) => !second.has(id)));
  });
});
