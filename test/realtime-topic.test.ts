// The change-log announcements on the realtime topic "hapta/changes" reach superusers only: anonymous
// clients and signed-in users may subscribe to the topic (through the sidecar's port or at PocketBase)
// but never receive it, while a superuser does and the sidecar's replica keeps following writes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

const TOPIC = 'hapta/changes';

interface Frame { event: string; data: string }

/** A raw SSE client of PocketBase's realtime API: connects, subscribes, records every frame. */
class RealtimeClient {
  readonly frames: Frame[] = [];
  private readonly ctl = new AbortController();
  private done: Promise<void> = Promise.resolve();

  constructor(readonly label: string, private readonly base: string, private readonly token: string | null) {}

  /** Connects and subscribes; resolves once PocketBase accepted the subscriptions (204). */
  async open(subscriptions: string[], timeoutMs = 5000): Promise<void> {
    const timer = setTimeout(() => this.ctl.abort(), timeoutMs);
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const res = await fetch(`${this.base}/api/realtime`, { headers, signal: this.ctl.signal });
    assert.equal(res.status, 200, `${this.label}: realtime connect`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let connected: (id: string) => void = () => {};
    const clientId = new Promise<string>((r) => (connected = r));
    this.done = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += value;
          let idx: number;
          while ((idx = buffer.indexOf('\n\n')) >= 0) {
            const frame = parse(buffer.slice(0, idx));
            buffer = buffer.slice(idx + 2);
            this.frames.push(frame);
            if (frame.event === 'PB_CONNECT') connected((JSON.parse(frame.data) as { clientId: string }).clientId);
          }
        }
      } catch { /* aborted */ }
    })();
    const id = await clientId;
    const sub = await fetch(`${this.base}/api/realtime`, {
      method: 'POST', signal: this.ctl.signal,
      headers: { 'content-type': 'application/json', ...(this.token ? { authorization: this.token } : {}) },
      body: JSON.stringify({ clientId: id, subscriptions }),
    });
    assert.equal(sub.status, 204, `${this.label}: subscribe ${await sub.text()}`);
    clearTimeout(timer);
  }

  events(name: string): Frame[] {
    return this.frames.filter((f) => f.event === name);
  }

  async close(): Promise<void> {
    this.ctl.abort();
    await this.done;
  }
}

function parse(frame: string): Frame {
  let event = '';
  let data = '';
  for (const line of frame.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5);
  }
  return { event, data };
}

/** Signs in through the sidecar (a session key) and straight at PocketBase (its token). */
async function signIn(sidecarUrl: string, pbUrl: string, email: string, password: string) {
  const post = async (base: string) => {
    const res = await fetch(`${base}/api/collections/users/auth-with-password`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: email, password }),
    });
    assert.equal(res.status, 200, `sign-in at ${base}`);
    return (await res.json()) as { token: string; record: { id: string } };
  };
  const viaSidecar = await post(sidecarUrl);
  const direct = await post(pbUrl);
  return { key: viaSidecar.token, pbToken: direct.token, id: direct.record.id };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!(await ok())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

describe('realtime topic hapta/changes', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;
  let su: string;
  let seeded: Seeded;
  let me: { key: string; pbToken: string; id: string };
  const clients: RealtimeClient[] = [];

  before(async () => {
    pb = await startPocketBase();
    su = await superuserToken(pb.url);
    seeded = await seedReference(pb.url, su, { users: 2, posts: 2, comments: 1, likes: 1, follows: 1 }, 11);
    // A one-minute poll: within this test only the sidecar's realtime wake-up can bring writes in promptly.
    sidecar = await startSidecar(pb, { replica: { pollIntervalMs: 60_000 } });
    await waitForSync(sidecar);
    me = await signIn(sidecar.url, pb.url, seeded.users[0].email, USER_PASSWORD);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await sidecar?.destroy();
    await pb?.destroy();
  });

  const write = async (base: string, token: string, path: string, body: unknown) => {
    const res = await fetch(base + path, { method: 'POST', headers: { authorization: token, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    assert.equal(res.status, 200, `${path}: ${text}`);
    return JSON.parse(text) as { id: string };
  };

  test('only a superuser receives the announcements; the replica still follows writes', { timeout: 60_000 }, async () => {
    const subs = [TOPIC, 'posts/*'];
    const outsiders = [
      new RealtimeClient('anonymous via the sidecar', sidecar.url, null),
      new RealtimeClient('user via the sidecar', sidecar.url, me.key),
      new RealtimeClient('anonymous at PocketBase', pb.url, null),
      new RealtimeClient('user at PocketBase', pb.url, me.pbToken),
    ];
    const superuser = new RealtimeClient('superuser at PocketBase', pb.url, su);
    clients.push(...outsiders, superuser);
    for (const c of clients) await c.open(subs);

    // Published and draft posts (as the user, at PocketBase and through the sidecar) and a record of a
    // superuser-only collection.
    const posts = '/api/collections/posts/records';
    const published: string[] = [];
    for (let i = 0; i < 3; i++) published.push((await write(pb.url, me.pbToken, posts, { title: `direct ${i}`, author: me.id, published: true })).id);
    published.push((await write(sidecar.url, me.key, posts, { title: 'via sidecar', author: me.id, published: true })).id);
    const draft = (await write(pb.url, me.pbToken, posts, { title: 'draft', author: me.id, published: false })).id;
    await write(pb.url, su, '/api/collections/audit_log/records', { action: 'create', payload: { x: 1 } });
    const writes = 6;

    // What each subscriber may see of posts: the published ones, and the user its own draft too.
    const visible = (c: RealtimeClient) => (c.label.startsWith('anonymous') ? published : [...published, draft]).slice().sort();

    // The control: a superuser gets an announcement per write (so a leak would be seen), and every
    // subscriber's stream is live (the posts it may see reach it).
    await until('the superuser\'s announcements', () => superuser.events(TOPIC).length >= writes, 10_000);
    for (const c of outsiders) {
      await until(`${c.label}: the posts it may see`, () => c.events('posts/*').length >= visible(c).length, 10_000);
    }
    const seqs = superuser.events(TOPIC).map((f) => (JSON.parse(f.data) as { seq: number }).seq);
    assert.ok(seqs.every((s) => Number.isInteger(s) && s > 0), JSON.stringify(seqs));
    // Announcements are sent right after each write: give any stray one time to arrive.
    await new Promise((r) => setTimeout(r, 500));
    for (const c of outsiders) {
      assert.deepEqual(c.events(TOPIC), [], `${c.label} received ${TOPIC}`);
      const ids = c.events('posts/*').map((f) => (JSON.parse(f.data) as { record: { id: string } }).record.id);
      assert.deepEqual(ids.sort(), visible(c), `${c.label}: posts events`);
    }

    // The sidecar's own subscription still works: with a one-minute poll, a write made at PocketBase
    // reaches the replica within moments only if the announcement woke it.
    const store = sidecar.replicator.store!;
    const postsId = store.collections().find((c) => c.name === 'posts')!.id;
    for (let i = 0; i < 3; i++) {
      const { id } = await write(pb.url, me.pbToken, posts, { title: `follow ${i}`, author: me.id, published: true });
      const ms = await until(`post ${id} in the replica`, () => store.record(postsId, id) !== null, 3000);
      const read = await fetch(`${sidecar.url}${posts}/${id}`, { headers: { authorization: me.key } });
      assert.equal(read.status, 200);
      assert.equal(((await read.json()) as { title: string }).title, `follow ${i}`);
      console.log(`write at PocketBase in the replica after ${ms} ms`);
    }
    assert.deepEqual(outsiders.flatMap((c) => c.events(TOPIC)), []);
  });
});
