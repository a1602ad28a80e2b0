// Write hooks from the configuration, and a sidecar killed (SIGKILL) in the middle of a burst of writes:
// every write acknowledged to a client is in PocketBase, none is applied twice, and the replica
// converges after a restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ReplicaStore } from '../replica/store.js';
import { api, diffDumps, dumpPocketBase, dumpReplica, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync } from './harness/sidecar.js';
import { startSidecarProcess } from './harness/sidecar-process.js';
import { join } from 'node:path';
import type { Metrics } from '../sidecar/metrics.js';
import { metricSum } from './harness/metrics.js';

describe('writes: hooks and crashes', () => {
  let pb: PocketBase;
  let admin: string;
  let seeded: Seeded;

  before(async () => {
    pb = await startPocketBase();
    admin = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, admin, { users: 4, posts: 10, comments: 0, likes: 0, follows: 0 }, 88);
  });
  after(async () => pb?.destroy());

  test('hooks from the configuration transform and reject writes before PocketBase sees them', async () => {
    const sidecar = await startSidecar(pb, {
      rateLimits: { enabled: false },
      writeHooks: {
        posts: {
          create: [
            async ({ body }) => ({ body: { ...body, title: String(body.title ?? '').trim() } }),
            async ({ body }) => (/spam/i.test(String(body.title)) ? { reject: { message: 'Failed to create record.', data: { title: { code: 'moderated', message: 'Looks like spam.' } } } } : undefined),
          ],
        },
      },
    });
    try {
      await waitForSync(sidecar);
      const key = (await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[0].email, password: USER_PASSWORD } })).token;
      const ok = await api(sidecar.url, '/api/collections/posts/records', { method: 'POST', token: key, body: { title: '   padded title   ', author: seeded.users[0].id } });
      assert.equal(ok.title, 'padded title');
      const before = await upstreamProxy(sidecar);
      const res = await fetch(`${sidecar.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key, 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Buy SPAM now', author: seeded.users[0].id }) });
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), { data: { title: { code: 'moderated', message: 'Looks like spam.' } }, message: 'Failed to create record.', status: 400 });
      assert.equal(await upstreamProxy(sidecar), before, 'a rejected write costs no upstream request');
    } finally {
      await sidecar.destroy();
    }
  });

  test('SIGKILL in the middle of a burst: acknowledged writes are in PocketBase exactly once; the replica converges', async () => {
    const proc = await startSidecarProcess(pb, { HAPTA_RATELIMIT: 'false' });
    const key = (await api(proc.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[1].email, password: USER_PASSWORD } })).token;
    const acked: string[] = [];
    let sent = 0;
    const writer = async (w: number) => {
      for (let i = 0; ; i++) {
        const title = `burst ${w}-${i}`;
        sent++;
        try {
          const res = await fetch(`${proc.url}/api/collections/posts/records`, { method: 'POST', headers: { authorization: key, 'content-type': 'application/json' }, body: JSON.stringify({ title, author: seeded.users[1].id }) });
          if (res.status !== 200) return;
          acked.push(title);
        } catch {
          return; // the sidecar is gone
        }
      }
    };
    const burst = Promise.all([0, 1, 2, 3].map(writer));
    await new Promise((r) => setTimeout(r, 1500));
    await proc.kill();
    await burst;
    assert.ok(acked.length > 20, `only ${acked.length} writes acknowledged`);

    const inPb = (await api(pb.url, `/api/collections/posts/records?perPage=1000&filter=${encodeURIComponent('title ~ "burst "')}&fields=title`, { token: admin })).items.map((r: { title: string }) => r.title);
    const counts = new Map<string, number>();
    for (const t of inPb) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const t of acked) assert.equal(counts.get(t), 1, `acknowledged write ${t} is in PocketBase once`);
    assert.ok([...counts.values()].every((n) => n === 1), 'no write applied twice');
    assert.ok(inPb.length <= sent);

    const restarted = await startSidecarProcess(pb, { HAPTA_RATELIMIT: 'false' }, { dataDir: proc.dataDir });
    try {
      // Wait for the restarted sidecar to catch up, then compare its replica file with PocketBase.
      const head = (await api(pb.url, '/api/hapta-sync/changes?after=0&limit=1', { token: admin })).head;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const h = await (await fetch(`${restarted.url}/api/hapta/health`)).json() as any;
        if (h.replica.seq >= head) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const store = new ReplicaStore(join(proc.dataDir, 'replica.db'), { readonly: true });
      try {
        assert.deepEqual(diffDumps(await dumpPocketBase(pb.url, admin), dumpReplica(store)), []);
      } finally {
        store.close();
      }
    } finally {
      await restarted.stop();
    }
  });
});

const upstreamProxy = (sidecar: { metrics: Metrics }) => metricSum(sidecar.metrics.upstreamRequests, { purpose: 'proxy' });
