// Long work shows progress: a bootstrap counts what it will copy (through PocketBase's records API), logs
// records copied, the rate and the time left while it copies, and what it copied in the end.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../config.js';
import { createLogger } from '../lib/log.js';
import { CopyProgress } from '../replica/copier.js';
import { createSidecar } from '../sidecar/app.js';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference } from './harness/seed.js';
import { waitForSync } from './harness/sidecar.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger('info', {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>)) };
}

test('progress lines: records of the total, rate and time left', async () => {
  const { lines, log } = capture();
  const p = new CopyProgress(1000, log, 0);
  p.add(250, 'posts');
  await new Promise((r) => setTimeout(r, 20));
  p.add(250, 'posts');
  const last = lines[lines.length - 1];
  assert.equal(last.msg, 'bootstrap progress');
  assert.equal(last.records, 500);
  assert.equal(last.total, 1000);
  assert.equal(last.percent, 50);
  assert.ok(typeof last.secondsLeft === 'number' && (last.perSecond as number) > 0);
});

describe('bootstrap of a real PocketBase', () => {
  let pb: PocketBase;
  let dataDir: string;
  before(async () => {
    pb = await startPocketBase();
    await seedReference(pb.url, await superuserToken(pb.url), { users: 20, posts: 1500, comments: 300, likes: 400, follows: 30 }, 3);
    dataDir = mkdtempSync(join(tmpdir(), 'hapta-boot-'));
  });
  after(async () => {
    await pb?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('announces the records it will copy and what it copied', async () => {
    const { lines, log } = capture();
    const config = loadConfig({}, {
      port: 0, pbUrl: pb.url, dataDir, superuserEmail: SUPERUSER.email, superuserPassword: SUPERUSER.password,
      replica: { migrationsDir: pb.migrationsDir, bootstrapPageSize: 100 },
    });
    const sidecar = await createSidecar(config, { log });
    try {
      await waitForSync(sidecar, 60_000);
      const started = lines.find((l) => l.msg === 'bootstrap started');
      const copied = lines.find((l) => l.msg === 'bootstrap copied');
      assert.ok(started && copied, 'both lines are logged');
      // users, posts, comments, likes, follows (+ the reference schema's other collections, empty)
      assert.ok((started.records as number) >= 20 + 1500 + 300 + 400 + 30, `counted ${started.records}`);
      assert.equal(copied.records, started.records, 'copied what was counted (no writes during the copy)');
    } finally {
      await sidecar.stop();
    }
  });
});
