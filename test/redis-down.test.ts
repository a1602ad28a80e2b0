// Redis, the store sidecars share, goes away while a sidecar runs: every request that needs it (a
// session key, a rate-limited route, a password login) answers 503 in PocketBase's error shape, never a
// 500; requests that need none keep answering; when Redis is back, requests succeed again without a
// restart. A real redis-server on a free loopback port, started and killed by the test.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { superuserToken } from './harness/dump.js';
import { freePort } from './harness/net.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

async function startRedis(port: number): Promise<ChildProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    });
    if (up) return proc;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await exited;
}

describe('Redis down while a sidecar runs', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let seeded: Seeded;
  let redis: ChildProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    redis = await startRedis(port);
    pb = await startPocketBase();
    seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: 2, posts: 5, comments: 1, likes: 1, follows: 1 }, 51);
    sidecar = await startSidecar(pb, { redisUrl: `redis://127.0.0.1:${port}/0`, sessions: { secret: 's'.repeat(40) } });
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
    if (redis) await stop(redis);
  });

  const posts = '/api/collections/posts/records';
  const login = (base: string) => fetch(`${base}/api/collections/users/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: seeded.users[0].email, password: USER_PASSWORD }),
  });

  test('503 in PocketBase\'s shape for what needs Redis, answers for what does not, and back by itself', async () => {
    const signedIn = (await (await login(sidecar.url)).json()) as { token: string };
    assert.equal((await fetch(sidecar.url + posts, { headers: { authorization: signedIn.token } })).status, 200);

    await stop(redis);
    const asked: Array<[string, Promise<Response>]> = [
      ['a session key', fetch(sidecar.url + posts, { headers: { authorization: signedIn.token } })],
      ['a rate-limited route', fetch(sidecar.url + posts)],
      ['a password login', login(sidecar.url)],
    ];
    for (const [what, pending] of asked) {
      const res = await pending;
      const body = await res.json();
      assert.equal(res.status, 503, `${what}: ${JSON.stringify(body)}`);
      assert.deepEqual(Object.keys(body).sort(), ['data', 'message', 'status']);
      assert.equal(body.status, 503);
      assert.deepEqual(body.data, {});
    }
    assert.equal((await fetch(`${sidecar.url}/api/hapta/health`)).status, 200, 'health needs no Redis');

    redis = await startRedis(port);
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await fetch(sidecar.url + posts)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200, 'requests succeed again once Redis is back');
    // That Redis kept nothing: the session is gone, and signing in works again.
    const again = await login(sidecar.url);
    assert.equal(again.status, 200);
  });
});
