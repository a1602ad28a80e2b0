// Shared rankings (sidecar/feeds/snapshots.ts): identical first pages within the reuse window share one
// ranking, a ranking past half the window is rebuilt while the current one keeps answering (nobody waits
// for it, and none is answered older than the window), and a replaced replica forgets everything.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SnapshotStore } from '../sidecar/feeds/snapshots.js';
import { pack } from '../sidecar/feeds/window.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('shared rankings', () => {
  const profile = { collection: 'posts', freshness: { field: 'created', weight: 1, halfLifeHours: 1 } };

  function builder(delayMs: number) {
    let builds = 0;
    let release: (() => void) | null = null;
    const build = async () => {
      const n = ++builds;
      if (delayMs > 0) await sleep(delayMs);
      else await new Promise<void>((r) => (release = r));
      const ranked = pack(profile, [{ id: `x${n}`, rid: n, score: n, rel: 0, age: 0, fol: 0 }], { attempts: 0, m: 0, k: 0, result: 'full' });
      return { owner: 'a', profile: 'p', filter: '', match: null, nowMs: Date.now(), ranked, total: 1, mark: 0 };
    };
    return { build, count: () => builds, release: () => release?.() };
  }

  test('reused within the window, rebuilt ahead past its half, never older than the window', async () => {
    const store = new SnapshotStore({ ttlMs: 60_000, max: 100, reuseMs: 300 });
    const b = builder(0);
    const first = store.obtain('k', b.build);
    b.release();
    const s1 = await first;
    assert.equal(b.count(), 1);
    assert.equal((await store.obtain('k', b.build)).id, s1.id, 'reused');
    assert.equal(b.count(), 1);
    await sleep(180);
    // Past half the window: answered at once with the current ranking, its successor being built.
    const s2 = await store.obtain('k', b.build);
    assert.equal(s2.id, s1.id);
    assert.equal(b.count(), 2, 'a rebuild started');
    assert.equal((await store.obtain('k', b.build)).id, s1.id, 'one rebuild at a time');
    assert.equal(b.count(), 2);
    b.release();
    await sleep(5);
    const s3 = await store.obtain('k', b.build);
    assert.notEqual(s3.id, s1.id, 'the rebuilt ranking answers next');
    assert.equal(s3.ranked.ids, 'x2');
    // Past the whole window with nobody asking: the next request waits for a new ranking.
    await sleep(320);
    const late = store.obtain('k', b.build);
    let settled = false;
    late.then(() => (settled = true), () => {});
    await sleep(20);
    assert.equal(settled, false, 'a ranking older than the window is not answered');
    b.release();
    assert.equal((await late).ranked.ids, 'x3');
  });

  test('different keys and unshared requests rank separately; clear() forgets builds in flight', async () => {
    const store = new SnapshotStore({ ttlMs: 60_000, max: 100, reuseMs: 1000 });
    const b = builder(10);
    const [a, c, n1, n2] = await Promise.all([store.obtain('a', b.build), store.obtain('c', b.build), store.obtain(null, b.build), store.obtain(null, b.build)]);
    assert.equal(new Set([a.id, c.id, n1.id, n2.id]).size, 4);
    assert.equal(b.count(), 4);
    const inFlight = store.obtain('d', b.build);
    store.clear();
    const after = store.obtain('d', b.build);
    assert.notEqual((await inFlight).id, (await after).id, 'a build from before clear() is not shared');
    assert.equal((await store.obtain('d', b.build)).id, (await after).id);
    const cursor = store.cursor(a, 0);
    assert.deepEqual(store.resolve(cursor, 'a', 'p'), { error: 'expired' }, 'forgotten by clear()');
  });
});
