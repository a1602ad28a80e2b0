// Read-your-writes with the change stream held back (the sidecar's realtime wake-up stalled, a 60 s
// poll), and hostile input on the write routes: PocketBase-shaped 4xx answers, never a 500 or a crash.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';
import { metricSum } from './harness/metrics.js';
import { createTestCollections, send, signIn, writeApp, type WriteApp } from './writes-harness.js';

/** A TCP forwarder that holds every realtime request forever (the replica's wake-ups never come). */
async function stallRealtime(port: number): Promise<{ url: string; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    let stalled = false;
    client.on('data', (chunk: Buffer) => {
      if (chunk.subarray(0, 20).toString('latin1').startsWith('GET /api/realtime')) stalled = true;
      if (!stalled) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => { if (!stalled) client.write(chunk); });
    const drop = () => { client.destroy(); upstream.destroy(); };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('write routes: read-your-writes and hostile input', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let app: WriteApp;
  let stall: { url: string; close(): void };
  let seeded: Seeded;
  let me: { key: string; pbToken: string; id: string };

  before(async () => {
    pb = await startPocketBase();
    const su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 2, posts: 2, comments: 1, likes: 1, follows: 1 }, 5);
    await createTestCollections(pb.url, su);
    stall = await stallRealtime(pb.port);
    sidecar = await startSidecar({ url: stall.url, migrationsDir: pb.migrationsDir }, {
      replica: { pollIntervalMs: 60_000, watchMigrations: false },
    });
    await waitForSync(sidecar);
    app = writeApp(sidecar);
    me = await signIn(sidecar.url, pb.url, 'users', seeded.users[0].email, USER_PASSWORD);
  });
  after(async () => {
        await sidecar?.destroy();
    stall?.close();
    await pb?.destroy();
  });

  const posts = '/api/collections/posts/records';
  const replicaHas = (id: string) => {
    const c = sidecar.replicator.store!.collections().find((x) => x.name === 'posts')!;
    return sidecar.replicator.store!.record(c.id, id);
  };

  test('a writer reads its own writes through the sidecar while the change stream is stalled; a direct write is not waited for', async () => {
    const direct = await send(pb.url, 'POST', posts, me.pbToken, { title: 'direct', author: me.id });
    assert.equal(direct.status, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(replicaHas(direct.body.id), null, 'the change stream should be held back in this test');
    for (let i = 0; i < 5; i++) {
      const created = await send(app.url, 'POST', posts, me.key, { title: `ryw ${i}`, author: me.id });
      assert.equal(created.status, 200, created.text);
      assert.equal((await send(app.url, 'GET', `${posts}/${created.body.id}`, me.key)).body?.title, `ryw ${i}`);
      const updated = await send(app.url, 'PATCH', `${posts}/${created.body.id}`, me.key, { title: `ryw ${i}!` });
      assert.equal((await send(app.url, 'GET', `${posts}/${created.body.id}`, me.key)).body?.title, `ryw ${i}!`, updated.text);
      const deleted = await send(app.url, 'DELETE', `${posts}/${created.body.id}`, me.key);
      assert.equal(deleted.status, 204);
      assert.equal((await send(app.url, 'GET', `${posts}/${created.body.id}`, me.key)).status, 404);
      assert.equal(replicaHas(created.body.id), null, 'answered from a replica that had caught up');
    }
    const waits = await app.waits();
    assert.ok(waits.count >= 15, `the reads after each write waited for the replica (${waits.count})`);
    assert.equal(await metricSum(sidecar.metrics.readFallbacks, { reason: 'replica_behind' }), 0, 'none had to go to PocketBase');
    console.log(`read-your-writes wait: mean ${(waits.sumMs / waits.count).toFixed(1)} ms over ${waits.count} reads`);
  });

  test('hostile bodies get PocketBase-shaped 4xx answers', async () => {
    const every = '/api/collections/every/records';
    const cases: Array<[string, string]> = [
      ['malformed JSON', '{"req": '],
      ['array body', '[1,2,3]'],
      ['wrong types', '{"req": {"a": 1}, "n": [1], "flag": {"x": 1}, "many": {"k": 1}}'],
      ['huge string', JSON.stringify({ req: 'x'.repeat(1_500_000) })],
      ['deep JSON', '{"req":"x","data":' + '['.repeat(20000) + ']'.repeat(20000) + '}'],
      ['prototype pollution', '{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}},"req":"x"}'],
      ['null bytes', JSON.stringify({ req: 'a\u0000b', title: '\u0000' })],
    ];
    for (const [label, body] of cases) {
      const r = await send(app.url, 'POST', every, me.key, body);
      assert.ok(r.status < 500, `${label}: ${r.status} ${r.text.slice(0, 200)}`);
      if (r.status >= 400) assert.deepEqual(Object.keys(r.body).sort(), ['data', 'message', 'status'], label);
    }
    assert.equal(({} as any).admin, undefined);
  });

  test('broken multipart and an over-limit upload cut off while streaming', async () => {
    const every = '/api/collections/every/records';
    const raw = (headers: Record<string, string>, chunks: () => AsyncGenerator<Buffer>) => new Promise<{ status: number; text: string; sent: number }>((resolve, reject) => {
      let sent = 0;
      const req = request(app.url + every, { method: 'POST', headers: { authorization: me.key, ...headers } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text, sent }));
      });
      req.on('error', reject);
      void (async () => {
        for await (const c of chunks()) {
          if (req.destroyed) break;
          sent += c.length;
          if (!req.write(c)) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      })().catch(() => {});
    });
    const broken = await raw({ 'content-type': 'multipart/form-data; boundary=XYZ' }, async function* () {
      yield Buffer.from('--XYZ\r\nContent-Disposition: form-data; name="req"\r\n\r\nvalue-without-closing');
    });
    assert.equal(broken.status, 400, broken.text);
    assert.equal(JSON.parse(broken.text).status, 400);
    const noBoundary = await raw({ 'content-type': 'multipart/form-data' }, async function* () {
      yield Buffer.from('garbage');
    });
    assert.equal(noBoundary.status, 400, noBoundary.text);

    const limit = sidecar.config.gate.maxUploadBody;
    const big = await raw({ 'content-type': 'multipart/form-data; boundary=B', 'transfer-encoding': 'chunked' }, async function* () {
      yield Buffer.from('--B\r\nContent-Disposition: form-data; name="pics"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n');
      const chunk = Buffer.alloc(1 << 20, 1);
      for (let i = 0; i < (limit >> 20) * 4; i++) yield chunk;
    }).catch((e) => ({ status: 413, text: String(e), sent: -1 }));
    assert.equal(big.status, 413);
    if (big.sent > 0) assert.ok(big.sent < limit * 4, 'the upload was cut off before the client finished');
  });
});
