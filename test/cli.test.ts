// The `hapta` command: `install-hooks` lays out the hook files PocketBase needs, and `hapta --pb-url …`
// runs the sidecar against an existing PocketBase with a user config module (HAPTA_CONFIG_MODULE) whose
// feed profiles and write hooks replace the reference ones, without editing the sidecar's source.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkUserModule, ConfigError } from '../config.js';
import { projectRoot } from '../scripts/pocketbase-binary.js';
import { superuserToken } from './harness/dump.js';
import { freePort } from './harness/net.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';

const bin = join(projectRoot, 'scripts', 'hapta.mjs');

const MODULE = `
export const feeds = {
  mine: { collection: 'posts', freshness: { field: 'created', weight: 1, halfLifeHours: 12 } },
};
export const writeHooks = {
  posts: {
    create: [async ({ body }) => (String(body.title).includes('forbidden') ? { reject: { status: 400, message: 'Titles may not say that.', data: {} } } : undefined)],
  },
};
`;

describe('the hapta command', () => {
  let pb: PocketBase;
  let seeded: Seeded;
  let dir: string;
  let child: ChildProcess | null = null;
  let url = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hapta-cli-'));
    pb = await startPocketBase();
    seeded = await seedReference(pb.url, await superuserToken(pb.url), { users: 2, posts: 5, comments: 1, likes: 1, follows: 1 }, 8);
  });
  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await pb?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('install-hooks copies every hook file byte for byte', () => {
    const target = join(dir, 'pb_hooks');
    const r = spawnSync(process.execPath, [bin, 'install-hooks', target], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const f of ['hapta_changes.pb.js', join('hapta', 'changelog.js')]) {
      assert.equal(readFileSync(join(target, f), 'utf8'), readFileSync(join(projectRoot, 'pb_hooks', f), 'utf8'), f);
    }
    assert.notEqual(spawnSync(process.execPath, [bin, 'install-hooks'], { encoding: 'utf8' }).status, 0, 'a directory is required');
    assert.notEqual(spawnSync(process.execPath, [bin, '--no-such-option', 'x'], { encoding: 'utf8' }).status, 0);
  });

  test('a user config module is checked: its shapes, with the offending key named', () => {
    assert.throws(() => checkUserModule({ feeds: { ok: { collection: 'posts' }, bad: {} } }, 'm'), (e: unknown) => e instanceof ConfigError && /feeds\.bad\.collection/.test(e.message));
    assert.throws(() => checkUserModule({ writeHooks: { posts: { create: ['nope'] } } }, 'm'), /writeHooks\.posts\.create/);
    assert.throws(() => checkUserModule({ writeHooks: { posts: { upsert: [] } } }, 'm'), /only create, update and delete/);
    const m = checkUserModule({ default: { feeds: { a: { collection: 'posts' } } } }, 'm');
    assert.deepEqual(Object.keys(m.feeds), ['a'], 'a default export works too');
  });

  test('hapta --pb-url runs the sidecar with the module\'s feeds and write hooks', { timeout: 90_000 }, async () => {
    const module = join(dir, 'my.config.mjs');
    writeFileSync(module, MODULE);
    const port = await freePort();
    child = spawn(process.execPath, [bin, '--pb-url', pb.url, '--port', String(port), '--data-dir', join(dir, 'data'), '--config', module,
      '--migrations-dir', pb.migrationsDir, '--log-level', 'warn'], {
      env: { ...process.env, PB_SUPERUSER_EMAIL: SUPERUSER.email, PB_SUPERUSER_PASSWORD: SUPERUSER.password },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`${url}/api/hapta/health`).then((r) => r.status === 200, () => false);
      if (ok) break;
      assert.ok(Date.now() < deadline && child.exitCode === null, 'the sidecar became ready');
      await new Promise((r) => setTimeout(r, 200));
    }
    const mine = await fetch(`${url}/api/hapta/feeds/mine`);
    assert.equal(mine.status, 200, await mine.clone().text());
    assert.ok(((await mine.json()) as { items: unknown[] }).items.length > 0);
    assert.equal((await fetch(`${url}/api/hapta/feeds/trending`)).status, 404, 'the reference profiles are replaced, not merged');
    const login = await fetch(`${url}/api/collections/users/auth-with-password`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: seeded.users[0].email, password: USER_PASSWORD }),
    });
    const { token } = (await login.json()) as { token: string };
    const write = (title: string) => fetch(`${url}/api/collections/posts/records`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: token }, body: JSON.stringify({ title, author: seeded.users[0].id }),
    });
    const refused = await write('a forbidden word');
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { message: string }).message, 'Titles may not say that.');
    assert.equal((await write('a fine title')).status, 200);
  });
});
