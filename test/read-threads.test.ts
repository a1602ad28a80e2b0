// Reads answered on the read threads (sidecar/reads/task.ts): the answer the main thread used to give,
// and when a thread cannot answer, PocketBase's answer, counted, never a 500. Lists of a shape measured
// cheap move to the main thread (placement.ts) and keep PocketBase's answers there.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { metricSum } from './harness/metrics.js';
import { startReadsEnv, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;

before(async () => {
  // Every shape counts as cheap here: after its first runs on a thread, a shape's lists run on the main thread.
  // And the pool's threads at nice 7 and 9 (the defaults are other values, so the test sees the settings applied).
  env = await startReadsEnv({ counts: { users: 4, posts: 40, comments: 10, likes: 5, follows: 2 }, readThreads: 2, inlineReadMs: 60_000, threadNice: 7, feedThreadNice: 9 });
}, { timeout: 120_000 });

after(async () => { await env?.stop(); });

const paths = [
  '/api/collections/posts/records?sort=-created,id&perPage=5&expand=author',
  '/api/collections/posts/records?filter=' + encodeURIComponent('title ~ "1"') + '&sort=id&fields=id,title',
  '/api/collections/comments/records?perPage=3&sort=id',
];

async function answers(base: string, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(base + path);
  return { status: res.status, body: await res.text() };
}

describe('read threads', () => {
  it('answer lists and views from the replica as PocketBase does', async () => {
    const before = await metricSum(env.sidecar.metrics.readFallbacks);
    const first = JSON.parse((await answers(env.pb.url, paths[0])).body) as { items: { id: string }[] };
    for (const path of [...paths, `/api/collections/posts/records/${first.items[0].id}?expand=author`]) {
      const [sc, pb] = [await answers(env.url, path), await answers(env.pb.url, path)];
      assert.equal(sc.status, pb.status, path);
      assert.deepEqual(JSON.parse(sc.body), JSON.parse(pb.body), path);
    }
    assert.equal(await metricSum(env.sidecar.metrics.readFallbacks), before, 'every read answered from the replica');
  });

  it('lists of a shape measured cheap run on the main thread, with the same answers', async () => {
    const placed = (placement: string) => metricSum(env.sidecar.metrics.listReads, { placement });
    const [main0, thread0] = [await placed('main'), await placed('thread')];
    const posts = (JSON.parse((await answers(env.pb.url, '/api/collections/posts/records?perPage=12&sort=id&fields=id')).body) as { items: { id: string }[] }).items;
    for (const p of posts) {
      // One shape: only the post differs.
      const path = `/api/collections/likes/records?perPage=1&filter=${encodeURIComponent(`post != '${p.id}'`)}&sort=id`;
      const [sc, pb] = [await answers(env.url, path), await answers(env.pb.url, path)];
      assert.equal(sc.status, pb.status, path);
      assert.deepEqual(JSON.parse(sc.body), JSON.parse(pb.body), path);
    }
    // The first four ran on a thread, to be measured; the rest, here.
    assert.equal(await placed('thread') - thread0, 4);
    assert.equal(await placed('main') - main0, posts.length - 4);
  });

  it('the read, feed and sync threads are named, and run at their configured priorities, the main thread at its own', async () => {
    // A feed thread starts with its first task.
    assert.deepEqual(await env.sidecar.feedPool.all('SELECT 1 AS one', [], 'feeds'), [{ one: 1 }]);
    // This process holds the sidecar: its threads' nice values (field 19 of /proc/self/task/<tid>/stat).
    const niceOf = (tid: string) => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const nameOf = (tid: string) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
    const tids = readdirSync('/proc/self/task');
    assert.equal(niceOf(String(process.pid)), 0, 'the main thread');
    const named = (name: string) => tids.filter((t) => nameOf(t) === name);
    // A read thread has answered lists by now (threads start with their first tasks).
    assert.ok(named('hapta-reads').length >= 1, 'a read thread');
    assert.ok(named('hapta-reads').every((t) => niceOf(t) === 7), 'the read threads at their nice value');
    assert.ok(named('hapta-feeds').length >= 1, 'a feed thread');
    assert.ok(named('hapta-feeds').every((t) => niceOf(t) === 9), 'the feed threads at theirs');
    assert.equal(named('hapta-sync').length, 1, 'one sync thread');
    assert.equal(niceOf(named('hapta-sync')[0]), 0, 'the sync thread at the process\'s own');
  });

  it('a read no thread can answer goes to PocketBase and is counted', async () => {
    const failed = await metricSum(env.sidecar.metrics.readFallbacks, { reason: 'read_thread_error' });
    // The pool's threads gone (as when one crashes or the pool is closing): every lane refuses tasks.
    await env.sidecar.feedPool.close();
    for (const path of paths) {
      const [sc, pb] = [await answers(env.url, path + '&uncached=1'), await answers(env.pb.url, path + '&uncached=1')];
      assert.equal(sc.status, 200, path);
      assert.deepEqual(JSON.parse(sc.body), JSON.parse(pb.body), path);
    }
    assert.equal(await metricSum(env.sidecar.metrics.readFallbacks, { reason: 'read_thread_error' }), failed + paths.length);
  });
});
