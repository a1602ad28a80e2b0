// Test harness for the sidecar's realtime API (sidecar/realtime/): a real PocketBase and the shipped
// sidecar with HAPTA_REALTIME_FROM_REPLICA on (the route table answers /api/realtime), more shipped
// sidecars with other realtime limits, and a raw SSE client that keeps every frame byte for byte.
import { request, type IncomingMessage } from 'node:http';
import type { DeepPartial, HaptaConfig } from '../config.js';
import type { Realtime, RealtimeLimits } from '../sidecar/realtime/index.js';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type SeedCounts, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

/** A PocketBase hook sending a custom topic (as apps do from hooks) after each post is created. */
export const CUSTOM_TOPIC_HOOK = `
onRecordAfterCreateSuccess((e) => {
  e.next();
  const msg = new SubscriptionMessage({ name: "custom/news", data: JSON.stringify({ title: e.record.get("title") }) });
  const clients = e.app.subscriptionsBroker().clients();
  for (const id in clients) {
    if (clients[id].hasSubscription("custom/news")) clients[id].send(msg);
  }
}, "posts");
`;

export interface Mounted {
  url: string;
  realtime: Realtime;
  close(): Promise<void>;
}

/**
 * A shipped sidecar (realtime answered by its route table) against the env's PocketBase, with these
 * realtime limits; the env's own sidecar has the defaults.
 */
export async function mountRealtime(env: { pb: PocketBase; pbUrl: string }, opts: { limits?: Partial<RealtimeLimits> } = {}): Promise<Mounted> {
  const s = await startSidecar({ url: env.pbUrl, migrationsDir: env.pb.migrationsDir }, {
    rateLimits: { enabled: false }, gate: { trustedProxies: 'loopback' }, realtime: { fromReplica: true, ...opts.limits }, replica: { consumerId: `rt${Math.random().toString(36).slice(2, 10)}` },
  });
  await waitForSync(s, 60_000);
  return { url: s.url, realtime: s.realtime, close: () => s.destroy() };
}

export interface Identity {
  name: string;
  /** PocketBase token ('' for anonymous). */
  token: string;
  /** Sidecar session key ('' for anonymous). */
  key: string;
  id: string;
}

export interface RealtimeEnv {
  pb: PocketBase;
  /** The URL the sidecars use for PocketBase (PocketBase itself, or a fault injector in front of it). */
  pbUrl: string;
  sidecar: TestSidecar;
  mounted: Mounted;
  /** The sidecar with realtime answered by it. */
  url: string;
  superToken: string;
  seeded: Seeded;
  identities: Identity[];
  stop(): Promise<void>;
}

export async function signIn(base: string, collection: string, email: string, password: string): Promise<{ token: string; id: string; record: Record<string, unknown> }> {
  const res = await fetch(`${base}/api/collections/${collection}/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: email, password }),
  });
  if (!res.ok) throw new Error(`sign-in ${email} at ${base}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { token: string; record: Record<string, unknown> & { id: string } };
  return { token: body.token, id: body.record.id, record: body.record };
}

export async function startRealtimeEnv(opts: {
  counts?: SeedCounts; seed?: number; hooks?: Record<string, string>; limits?: Partial<RealtimeLimits>;
  sidecar?: DeepPartial<HaptaConfig>; pbUrl?: (pb: PocketBase) => Promise<string>;
} = {}): Promise<RealtimeEnv> {
  const pb = await startPocketBase({ extraHooks: opts.hooks });
  const cleanup: Array<() => Promise<void>> = [() => pb.destroy()];
  try {
    const superToken = await superuserToken(pb.url);
    const seeded = await seedReference(pb.url, superToken, opts.counts ?? { users: 3, posts: 4, comments: 2, likes: 1, follows: 0 }, opts.seed ?? 21);
    const pbUrl = opts.pbUrl ? await opts.pbUrl(pb) : pb.url;
    const sidecar = await startSidecar({ url: pbUrl, migrationsDir: pb.migrationsDir }, { rateLimits: { enabled: false }, ...opts.sidecar, realtime: { fromReplica: true, ...opts.limits } });
    cleanup.unshift(() => sidecar.destroy());
    await waitForSync(sidecar, 60_000);
    const mounted: Mounted = { url: sidecar.url, realtime: sidecar.realtime, close: async () => {} };
    const identities: Identity[] = [{ name: 'anon', token: '', key: '', id: '' }];
    for (const i of [0, 1]) {
      const u = seeded.users[i];
      const direct = await signIn(pb.url, 'users', u.email, USER_PASSWORD);
      const viaSidecar = await signIn(mounted.url, 'users', u.email, USER_PASSWORD);
      identities.push({ name: `user${i}`, token: direct.token, key: viaSidecar.token, id: direct.id });
    }
    const su = await signIn(mounted.url, '_superusers', SUPERUSER.email, SUPERUSER.password);
    identities.push({ name: 'superuser', token: superToken, key: su.token, id: su.id });
    return {
      pb, pbUrl, sidecar, mounted, url: mounted.url, superToken, seeded, identities,
      async stop() {
        for (const fn of cleanup) await fn().catch(() => {});
      },
    };
  } catch (e) {
    for (const fn of cleanup) await fn().catch(() => {});
    throw e;
  }
}

export interface Frame {
  id: string;
  event: string;
  data: string;
  raw: string;
  at: number;
}

/** A raw client of the realtime API: every frame as sent, the response's status and headers. */
export class RawClient {
  readonly frames: Frame[] = [];
  res: IncomingMessage | null = null;
  clientId = '';
  ended = false;
  endedAt = 0;
  private ready: Promise<void> | null = null;

  constructor(readonly base: string, readonly headers: Record<string, string> = {}) {}

  /** Connects and waits for PB_CONNECT. */
  connect(timeoutMs = 5000): Promise<void> {
    this.ready ??= new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no PB_CONNECT in time')), timeoutMs);
      const req = request(`${this.base}/api/realtime`, { headers: { accept: 'text/event-stream', ...this.headers } }, (res) => {
        this.res = res;
        if (res.statusCode !== 200) {
          clearTimeout(timer);
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => reject(Object.assign(new Error(`connect status ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const raw = buf.slice(0, i + 2);
            buf = buf.slice(i + 2);
            const f = parseFrame(raw);
            this.frames.push(f);
            if (f.event === 'PB_CONNECT') {
              this.clientId = f.id;
              clearTimeout(timer);
              resolve();
            }
          }
        });
        const end = () => { if (!this.ended) { this.ended = true; this.endedAt = Date.now(); } };
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
      });
      req.on('error', (e) => { clearTimeout(timer); this.ended = true; reject(e); });
      req.end();
    });
    return this.ready;
  }

  async subscribe(subscriptions: string[], auth = '', extra: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.base}/api/realtime`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}), ...this.headers, ...extra },
      body: JSON.stringify({ clientId: this.clientId, subscriptions }),
    });
    return { status: res.status, body: await res.text() };
  }

  events(name?: string): Frame[] {
    return this.frames.filter((f) => f.event !== 'PB_CONNECT' && (name === undefined || f.event === name));
  }

  close(): void {
    this.res?.destroy();
  }
}

function parseFrame(raw: string): Frame {
  let id = '';
  let event = '';
  let data = '';
  for (const line of raw.split('\n')) {
    if (line.startsWith('id:')) id = line.slice(3);
    else if (line.startsWith('event:')) event = line.slice(6);
    else if (line.startsWith('data:')) data += line.slice(5);
  }
  return { id, event, data, raw, at: Date.now() };
}

export async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await ok())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { USER_PASSWORD, SUPERUSER, waitForSync };
