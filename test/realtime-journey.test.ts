// Writes close behind each other and the events they must give. The SDK journey on one session through
// the sidecar, many times over: subscribe to posts/* as a user, create an own draft (visible to its
// author only), read it back, update it, delete it at once. Every run must deliver create, update and
// delete, in that order: the update's state has to reach the replica before the delete reaches
// PocketBase (a writer's next write waits until the replica has read its previous one), or the two are
// read together and the update's event is lost. And a record whose delete lands while the log read of its
// update is under way (its state already gone from that read) must still give its delete event.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import PocketBaseSDK from 'pocketbase';
import { monotonicMs } from '../replica/sync-protocol.js';
import type { ChangeReader } from '../replica/sync-thread.js';
import { api } from './harness/dump.js';
import { RawClient, startRealtimeEnv, until, USER_PASSWORD, type RealtimeEnv } from './realtime-env.js';

// Node 20 has no EventSource; the SDK's realtime service needs one.
(globalThis as any).EventSource ??= EventSource;

const RUNS = 20;

describe('realtime journey', { timeout: 240_000 }, () => {
  let env: RealtimeEnv;

  before(async () => {
    env = await startRealtimeEnv();
  });
  after(async () => {
    await env?.stop();
  });

  const journey = async (sdk: PocketBaseSDK, me: string, run: number, reads: (id: string) => Promise<void>) => {
    const events: string[] = [];
    const unsubscribe = await sdk.collection('posts').subscribe('*', (e) => {
      if ((e.record as { title?: string }).title?.startsWith(`journey ${run} `)) events.push(e.action);
    });
    try {
      const post = await sdk.collection('posts').create({ title: `journey ${run} a`, author: me, published: false });
      await reads(post.id);
      await sdk.collection('posts').update(post.id, { title: `journey ${run} b` });
      await sdk.collection('posts').delete(post.id);
      await until(`run ${run}: three events (got ${events.join(',')})`, () => events.length >= 3, 5000).catch(() => {});
      return events;
    } finally {
      await unsubscribe();
    }
  };

  /** RUNS journeys of one seeded user, signed in through the SDK; every run must give all three events. */
  const journeys = async (userIndex: number, firstRun: number, read: (sdk: PocketBaseSDK, id: string) => Promise<void>) => {
    const sdk = new PocketBaseSDK(env.url);
    sdk.autoCancellation(false);
    const user = env.seeded.users[userIndex];
    await sdk.collection('users').authWithPassword(user.email, USER_PASSWORD);
    const lost: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const events = await journey(sdk, user.id, firstRun + run, (id) => read(sdk, id));
      if (events.join(',') !== 'create,update,delete') lost.push(`run ${run}: ${events.join(',')}`);
    }
    assert.deepEqual(lost, [], 'runs with events missing');
  };

  test(`create, read, update, delete of an own draft: every event, ${RUNS} runs`, async () => {
    await journeys(2, 0, async (sdk, id) => {
      assert.equal((await sdk.collection('posts').getOne(id)).id, id);
    });
  });

  test(`the same with a list read of the draft between the writes, ${RUNS} runs`, async () => {
    await journeys(1, RUNS, async (sdk, id) => {
      assert.equal((await sdk.collection('posts').getOne(id)).id, id);
      const list = await sdk.collection('posts').getList(1, 10, { filter: `id = "${id}"` });
      assert.deepEqual(list.items.map((p) => p.id), [id]);
    });
  });

  test('a delete committed while the log read of the update is under way still gives its delete event', async () => {
    const u0 = env.identities[1];
    const c = new RawClient(env.url);
    await c.connect();
    try {
      assert.equal((await c.subscribe(['posts/*'], u0.key)).status, 204);
      const post = await api(env.pb.url, '/api/collections/posts/records', { method: 'POST', token: u0.token, body: { title: 'vanishing a', author: u0.id, published: false } });
      await until('the create event', () => c.events('posts/*').length === 1);
      const created = JSON.parse(c.events('posts/*')[0].data).record;

      // The log read that brings the update finds the record already deleted: PocketBase's hook reads
      // the log rows, then the records, and the delete commits in between. Reads are held until both
      // writes are in, then the first one is cut before the delete's row, as such a read returns it.
      const reader = (env.sidecar.replicator as unknown as { reader: ChangeReader }).reader;
      const read = reader.read;
      let release = () => {};
      let gate: Promise<void> | null = new Promise((r) => (release = r));
      let inFlight = 0;
      let split = true;
      reader.read = async function (this: ChangeReader, ...args: Parameters<ChangeReader['read']>) {
        if (gate) await gate;
        inFlight++;
        try {
          // A read sent now, after both writes (not one the sync thread read ahead between them).
          const [after, limit, notBefore, signal] = args;
          const got = await read.call(this, after, limit, Math.max(notBefore, monotonicMs()), signal);
          const res = got.res;
          const cut = split ? res.changes.findIndex((ch) => ch.rid === post.id && ch.op === 'd') : -1;
          if (cut <= 0) return got;
          split = false;
          return { ...got, res: { ...res, changes: res.changes.slice(0, cut), more: true } };
        } finally {
          inFlight--;
        }
      };
      try {
        await until('no log read in flight', () => inFlight === 0);
        const ahead = env.mounted.realtime.stats().deletesAhead;
        await api(env.pb.url, `/api/collections/posts/records/${post.id}`, { method: 'PATCH', token: u0.token, body: { title: 'vanishing b' } });
        await api(env.pb.url, `/api/collections/posts/records/${post.id}`, { method: 'DELETE', token: u0.token });
        gate = null;
        release();
        await until('the delete event', () => c.events('posts/*').length >= 2);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(split, false, 'the read was cut before the delete');
        const events = c.events('posts/*').map((f) => JSON.parse(f.data) as { action: string; record: Record<string, unknown> });
        // The update's state never reached the replica: the delete carries the record as it last held it.
        assert.deepEqual(events.map((e) => e.action), ['create', 'delete']);
        assert.deepEqual(events[1].record, created);
        assert.equal(env.mounted.realtime.stats().deletesAhead, ahead + 1);
      } finally {
        reader.read = read;
        release();
      }
    } finally {
      c.close();
    }
  });

  test('a write is answered without waiting for the replica; the writer\'s next write waits for it, past the bound is sent and counted', async () => {
    const u0 = env.identities[1];
    const c = new RawClient(env.url);
    await c.connect();
    const reader = (env.sidecar.replicator as unknown as { reader: ChangeReader }).reader;
    const read = reader.read;
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const create = (title: string) => fetch(`${env.url}/api/collections/posts/records`, {
      method: 'POST', headers: { authorization: u0.key, 'content-type': 'application/json' },
      body: JSON.stringify({ title, author: u0.id, published: false }),
    });
    try {
      assert.equal((await c.subscribe(['posts/*'], u0.key)).status, 204);
      reader.read = async function (this: ChangeReader, ...args: Parameters<ChangeReader['read']>) {
        await gate;
        return read.apply(this, args);
      };
      const stats = () => env.mounted.realtime.stats();
      const held = stats().writesHeld;
      const timedOut = stats().writeWaitsTimedOut;
      const first = await create('answered while the replica is stopped');
      assert.equal(first.status, 200, 'PocketBase has the write: it is answered at once');
      assert.equal(stats().writesHeld, held, 'the first write did not wait');
      assert.equal(c.events('posts/*').length, 0, 'its event cannot have come: the replica has not read it');
      const t0 = performance.now();
      const second = await create('sent past the bound');
      assert.equal(second.status, 200);
      assert.ok(performance.now() - t0 >= 900, 'the second write waited for the replica to read the first');
      assert.equal(stats().writesHeld, held + 1);
      assert.equal(stats().writeWaitsTimedOut, timedOut + 1);
      reader.read = read;
      release();
      await until('both events', () => c.events('posts/*').length >= 2);
      assert.deepEqual(c.events('posts/*').map((f) => JSON.parse(f.data).record.title), ['answered while the replica is stopped', 'sent past the bound']);
    } finally {
      reader.read = read;
      release();
      c.close();
    }
  });
});
