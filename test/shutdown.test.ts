// SIGTERM drains: the sidecar process stops accepting connections, and a request under way (a write
// whose body is still arriving) finishes and is answered; then the process exits 0. A balancer sees the
// listener gone (and health 503 `stopping` on a connection it already holds) and sends elsewhere.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecarProcess, type SidecarProcess } from './harness/sidecar-process.js';

function exitOf(pid: number): Promise<boolean> {
  return new Promise((resolve) => {
    const started = Date.now();
    const t = setInterval(() => {
      try {
        process.kill(pid, 0);
        if (Date.now() - started > 20_000) { clearInterval(t); resolve(false); }
      } catch {
        clearInterval(t);
        resolve(true);
      }
    }, 50);
  });
}

describe('shutdown', () => {
  let pb: PocketBase;
  let su: string;
  let seeded: Seeded;
  let sidecar: SidecarProcess;

  before(async () => {
    pb = await startPocketBase();
    su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 2, posts: 3, comments: 1, likes: 1, follows: 1 }, 61);
    sidecar = await startSidecarProcess(pb, { HAPTA_RATELIMIT: 'false' });
  });
  after(async () => {
    await sidecar?.stop().catch(() => {});
    await pb?.destroy();
  });

  test('SIGTERM: a write under way is answered, new connections are refused, the process exits', async () => {
    const login = await api(sidecar.url, '/api/collections/users/auth-with-password', { method: 'POST', body: { identity: seeded.users[0].email, password: USER_PASSWORD } });
    const body = Buffer.from(JSON.stringify({ title: 'written while stopping', author: seeded.users[0].id, published: true }));
    const { hostname, port } = new URL(sidecar.url);
    const socket = connect(Number(port), hostname);
    await new Promise((r) => socket.once('connect', r));
    let answer = '';
    socket.on('data', (d) => (answer += d.toString('latin1')));
    const ended = new Promise((r) => socket.once('close', r));
    socket.write(`POST /api/collections/posts/records HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: ${login.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 200));

    process.kill(sidecar.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const refused = await fetch(`${sidecar.url}/api/hapta/health`).then((r) => `answered ${r.status}`, () => 'refused');
    assert.equal(refused, 'refused', 'no new connection once stopping');

    socket.write(body.subarray(10));
    await ended;
    assert.match(answer, /^HTTP\/1\.1 200 /, answer.slice(0, 300));
    assert.match(answer, /connection: close/i, 'the answer closes its connection');
    const id = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).id as string;
    assert.equal((await api(pb.url, `/api/collections/posts/records/${id}`, { token: su })).title, 'written while stopping');
    assert.equal(await exitOf(sidecar.pid), true, 'the process exited');
  });
});
