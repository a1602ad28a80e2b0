// Schema changes made in PocketBase while writes continue reach the replica without a restart, and
// only the affected table is copied again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SchemaWatcher } from '../replica/schema-watcher.js';
import { metricSum } from './harness/metrics.js';
import { api, diffDumps, dumpPocketBase, dumpReplica, superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

describe('schema changes', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let token: string;
  let seeded: Seeded;
  let notesId = '';
  let writing = true;
  let paused = false;
  let idle: (() => void) | null = null;
  let writes: Promise<void>;
  let writeCount = 0;

  before(async () => {
    pb = await startPocketBase();
    token = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, token, { users: 4, posts: 300, comments: 50, likes: 20, follows: 5 }, 5);
    sidecar = await startSidecar(pb, { replica: { pollIntervalMs: 300, schemaCheckIntervalMs: 0, readThreads: 2 } });
    await waitForSync(sidecar);
    writes = (async () => {
      let i = 0;
      while (writing) {
        if (paused) {
          idle?.();
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        i++;
        try {
          await api(pb.url, `/api/collections/posts/records/${seeded.posts[i % seeded.posts.length]}`, { method: 'PATCH', token, body: { title: `w${i}` } });
          if (notesId) await api(pb.url, `/api/collections/${notesId}/records`, { method: 'POST', token, body: {} });
          writeCount++;
        } catch { /* the notes collection may be mid-change */ }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  });

  after(async () => {
    writing = false;
    await writes;
    await sidecar?.destroy();
    await pb?.destroy();
  });

  function columns(table: string): string[] {
    return (sidecar.replicator.store!.db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((r) => r.name);
  }

  const copies = (collection: string) => metricSum(sidecar.metrics.tableCopies, { collection });

  /** Pauses the background writes (they run during every change), then compares full dumps. */
  let resumedAt = 0;
  async function converged(): Promise<void> {
    // Each change overlaps with writes: let a few land after it before pausing.
    while (writeCount < resumedAt + 5) await new Promise((r) => setTimeout(r, 10));
    paused = true;
    await new Promise<void>((r) => (idle = r));
    idle = null;
    try {
      await waitForSync(sidecar);
      assert.deepEqual(diffDumps(await dumpPocketBase(pb.url, token), dumpReplica(sidecar.replicator.store!)), []);
    } finally {
      resumedAt = writeCount;
      paused = false;
    }
  }

  async function patchNotes(change: (fields: any[]) => any[], extra: Record<string, unknown> = {}): Promise<void> {
    const c = await api(pb.url, `/api/collections/${notesId}`, { token });
    await api(pb.url, `/api/collections/${notesId}`, { method: 'PATCH', token, body: { fields: change(c.fields), ...extra } });
  }

  test('a collection created while writes continue gets its table and records', async () => {
    const created = await api(pb.url, '/api/collections', { method: 'POST', token, body: {
      name: 'notes', type: 'base', listRule: '', viewRule: '',
      fields: [{ name: 'title', type: 'text' }, { name: 'n', type: 'number' }, { name: 'created', type: 'autodate', onCreate: true, onUpdate: false }],
    } });
    notesId = created.id;
    for (let i = 0; i < 20; i++) await api(pb.url, '/api/collections/notes/records', { method: 'POST', token, body: { title: `note ${i}`, n: i } });
    await converged();
    assert.deepEqual(columns('notes'), ['id', 'title', 'n', 'created', '_pb_rowid']);
    assert.ok((sidecar.replicator.store!.db.prepare('SELECT COUNT(*) AS n FROM notes').get() as any).n >= 20);
  });

  test('a field added', async () => {
    const postsCopies = await copies('posts');
    await patchNotes((f) => [...f, { name: 'mood', type: 'select', maxSelect: 2, values: ['happy', 'sad'] }]);
    await api(pb.url, '/api/collections/notes/records', { method: 'POST', token, body: { title: 'with mood', mood: ['happy', 'sad'] } });
    await converged();
    assert.ok(columns('notes').includes('mood'));
    assert.equal(await copies('posts'), postsCopies, 'posts was not copied again');
  });

  test('a field renamed', async () => {
    await patchNotes((f) => f.map((x) => (x.name === 'title' ? { ...x, name: 'headline' } : x)));
    await converged();
    assert.ok(columns('notes').includes('headline'));
    assert.ok(!columns('notes').includes('title'));
  });

  test('a field retyped (replaced by a field of another type under the same name)', async () => {
    await patchNotes((f) => [...f.filter((x) => x.name !== 'n'), { name: 'n', type: 'json' }]);
    await api(pb.url, '/api/collections/notes/records', { method: 'POST', token, body: { headline: 'json n', n: { deep: [1, 2] } } });
    await converged();
    const row = sidecar.replicator.store!.db.prepare("SELECT n FROM notes WHERE headline = 'json n'").get() as any;
    assert.equal(row.n, '{"deep":[1,2]}');
  });

  test('a field removed', async () => {
    await patchNotes((f) => f.filter((x) => x.name !== 'mood'));
    await converged();
    assert.ok(!columns('notes').includes('mood'));
  });

  test('rules and indexes changed: definition and indexes updated without copying the table', async () => {
    const before = await copies('notes');
    // A read thread answers under the old rule first (it loads the definitions) ...
    const fallbacks = await metricSum(sidecar.metrics.readFallbacks);
    const open = await api(sidecar.url, '/api/collections/notes/records?perPage=1');
    assert.ok(open.totalItems > 0, 'anyone may list notes');
    await api(pb.url, `/api/collections/${notesId}`, { method: 'PATCH', token, body: { listRule: '@request.auth.id != ""', indexes: ['CREATE INDEX `idx_notes_headline` ON `notes` (`headline` DESC)'] } });
    await converged();
    // ... and under the new one as soon as the replica holds it: no definitions older than the data.
    const closed = await api(sidecar.url, '/api/collections/notes/records?perPage=1');
    assert.equal(closed.totalItems, 0, 'anonymous callers see no notes under the new rule');
    assert.equal((await api(pb.url, '/api/collections/notes/records?perPage=1')).totalItems, 0, "PocketBase's answer");
    assert.equal(await metricSum(sidecar.metrics.readFallbacks), fallbacks, 'both answered from the replica');
    const def = sidecar.replicator.store!.entry(notesId)!.collection;
    assert.equal(def.listRule, '@request.auth.id != ""');
    assert.equal(await copies('notes'), before);
    const idx = sidecar.replicator.store!.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = '_hapta_ix_notes__idx_notes_headline'").get() as { sql: string } | undefined;
    assert.match(idx?.sql ?? '', /"headline" DESC/);
  });

  test('a collection renamed', async () => {
    await api(pb.url, `/api/collections/${notesId}`, { method: 'PATCH', token, body: { name: 'memos' } });
    await api(pb.url, '/api/collections/memos/records', { method: 'POST', token, body: { headline: 'after rename' } });
    await converged();
    assert.deepEqual(columns('notes'), []);
    assert.ok(columns('memos').includes('headline'));
  });

  test('a collection deleted', async () => {
    const id = notesId;
    notesId = '';
    await new Promise((r) => setTimeout(r, 50));
    await api(pb.url, `/api/collections/${id}`, { method: 'DELETE', token });
    await converged();
    assert.deepEqual(columns('memos'), []);
    assert.equal(sidecar.replicator.store!.entry(id), undefined);
    assert.ok(writeCount >= 40, `writes continued (${writeCount})`);
  });
});

describe('migrations watcher', () => {
  test('a migration file written into the directory triggers a schema check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hapta-mig-'));
    let calls = 0;
    const watcher = new SchemaWatcher({ dir, watch: true, intervalMs: 0, onChange: () => calls++ });
    watcher.start();
    try {
      await new Promise((r) => setTimeout(r, 300));
      writeFileSync(join(dir, '1790000000_updated_posts.js'), 'migrate(() => {}, () => {})\n');
      const deadline = Date.now() + 5000;
      while (calls === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(calls > 0, 'the watcher saw the new migration');
    } finally {
      await watcher.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
