// The change log read on a thread of its own (replica/sync-thread.ts), against the real PocketBase: the
// thread reads ahead on announcements and the engine applies those reads; an answer sent before one
// already used, or before a waiter registered, is never taken; a thread that stops is started again
// and the replica keeps converging; with the thread off the main thread reads the log as before.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../lib/log.js';
import { SuperuserSession, Upstream } from '../lib/upstream.js';
import { ChangeSource } from '../replica/change-source.js';
import { monotonicMs } from '../replica/sync-protocol.js';
import { SyncThread } from '../replica/sync-thread.js';
import { api, superuserToken } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';
import { sleep, until } from './realtime-env.js';


describe('change log read on the sync thread', () => {
  let pb: PocketBase;
  let token: string;
  let n = 0;
  const write = (): Promise<{ id: string }> => api(pb.url, '/api/collections/audit_log/records', { method: 'POST', token, body: { action: 'create', payload: { n: ++n } } });
  const inReplica = (s: TestSidecar, id: string): boolean => s.replicator.store!.db.prepare('SELECT 1 FROM audit_log WHERE id = ?').get(id) !== undefined;

  before(async () => {
    pb = await startPocketBase();
    token = await superuserToken(pb.url);
  });
  after(async () => pb?.destroy());

  test('announced writes are read ahead by the thread and applied from those reads', async () => {
    const sidecar = await startSidecar(pb);
    try {
      await waitForSync(sidecar);
      assert.ok(sidecar.syncThread, 'the sync thread is on by default');
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        ids.push((await write()).id);
        await sleep(30);
      }
      await until('every write in the replica', () => ids.every((id) => inReplica(sidecar, id)), 15_000);
      const ahead = await metricSum(sidecar.metrics.replicaReads, { by: 'ahead' });
      assert.ok(ahead > 0, `batches applied from reads ahead: ${ahead}`);
      assert.equal(await metricSum(sidecar.metrics.replicaReads, { by: 'main' }), 0, 'no read made on the main thread');
      assert.equal(sidecar.syncThread.stats.ahead, ahead);
    } finally {
      await sidecar.destroy();
    }
  });

  test('a waiter is answered by a read sent after it registered, never by an earlier read', async () => {
    const sidecar = await startSidecar(pb);
    try {
      await waitForSync(sidecar);
      // The bounds the engine gives its reads.
      const thread = sidecar.syncThread!;
      const bounds: number[] = [];
      const read = thread.read.bind(thread);
      thread.read = (after, limit, notBefore, signal) => {
        bounds.push(notBefore);
        return read(after, limit, notBefore, signal);
      };
      // Each write committed before syncAfterNow is in the replica once it resolves, however recent a read
      // ahead the thread holds (its reads ahead of the previous write are older than the waiter).
      for (let i = 0; i < 25; i++) {
        const { id } = await write();
        bounds.length = 0;
        const registered = monotonicMs();
        await sidecar.replicator.syncAfterNow();
        assert.ok(inReplica(sidecar, id), `write ${i} is in the replica once syncAfterNow resolved`);
        assert.ok(bounds.some((b) => b >= registered), `a read bound by the waiter (bounds ${bounds.map((b) => b - registered)})`);
      }
    } finally {
      await sidecar.destroy();
    }
  });

  test('the thread never hands out the same answer twice, nor one sent before the bound', async () => {
    const upstream = new Upstream({ url: pb.url, timeoutMs: 10_000, connections: 4 });
    const session = new SuperuserSession(upstream, SUPERUSER.email, SUPERUSER.password);
    const source = new ChangeSource(session, 'test_thread');
    const thread = new SyncThread({
      url: pb.url, timeoutMs: 10_000, consumerId: 'test_thread', batchSize: 1000, session, source, log: silentLogger,
      onAnnounced: () => {}, onAhead: () => {},
    });
    thread.start();
    try {
      const head = (await source.readHead()).head;
      const first = await thread.read(head, 1000, 0);
      const { id } = await write();
      // Bound by the first answer: a new request, which sees the write.
      const second = await thread.read(head, 1000, first.sentAt);
      assert.ok(second.sentAt > first.sentAt, 'a later request');
      assert.ok(second.res.changes.some((c) => c.rid === id), 'the second read sees the write made after the first');
      const third = await thread.read(head, 1000, second.sentAt);
      assert.ok(third.sentAt > second.sentAt, 'never the same answer twice');
      assert.equal(thread.stats.direct, 0);
    } finally {
      await thread.stop();
      await upstream.close();
    }
  });

  test('a thread that stops is started again, and the replica keeps converging', async () => {
    const sidecar = await startSidecar(pb);
    try {
      await waitForSync(sidecar);
      const thread = sidecar.syncThread!;
      await thread.crashForTest();
      const { id } = await write();
      // Until the thread is back the main thread reads the log (the poll, or a waiter).
      await sidecar.replicator.syncAfterNow();
      assert.ok(inReplica(sidecar, id), 'applied while the thread was down');
      await until('the thread started again', () => thread.stats.restarts === 1, 15_000);
      const before = thread.stats.ahead + thread.stats.thread;
      const later: string[] = [];
      for (let i = 0; i < 10; i++) {
        later.push((await write()).id);
        await sleep(30);
      }
      await until('the later writes in the replica', () => later.every((x) => inReplica(sidecar, x)), 15_000);
      assert.ok(thread.stats.ahead + thread.stats.thread > before, 'read by the thread again');
    } finally {
      await sidecar.destroy();
    }
  });

  test('HAPTA_SYNC_THREAD=false: the main thread listens and reads the log', async () => {
    const sidecar = await startSidecar(pb, { replica: { syncThread: false } });
    try {
      await waitForSync(sidecar);
      assert.equal(sidecar.syncThread, null);
      const { id } = await write();
      await until('the write in the replica', () => inReplica(sidecar, id), 15_000);
      assert.equal(await metricSum(sidecar.metrics.replicaReads), 0);
    } finally {
      await sidecar.destroy();
    }
  });
});
