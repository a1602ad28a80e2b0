// Test environment of the feed routes: a real PocketBase with the reference schema and seeded data, and
// shipped sidecars in this process (startSidecar: the app, route table and feed engine that ship) against
// it: the env's own, and one more per serve() with its own feed engine options. Callers sign in through
// a sidecar and present its session keys.
import type { DeepPartial, FeedProfile, HaptaConfig } from '../config.js';
import { api, superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { batch, makeId, rng, seedReference, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

export interface Who {
  name: string;
  /** Sidecar session key ('' for anonymous). */
  key: string;
  /** PocketBase token ('' for anonymous). */
  pbToken: string;
  /** Record id ('' for anonymous). */
  id: string;
  superuser: boolean;
}

/** Feed engine options of a served sidecar (config.ts: feedEngine). */
export type ServeOptions = DeepPartial<HaptaConfig['feedEngine']>;

/** A sidecar started by serve(): its base URL, and the env's identities signed in on it. */
export interface Served {
  url: string;
  sidecar: TestSidecar;
  /** anon, user0, user1, superuser: session keys of this sidecar (keys are per sidecar). */
  who: Who[];
}

export interface FeedsEnv {
  pb: PocketBase;
  /** The env's sidecar (default feed engine options). */
  sidecar: TestSidecar;
  superToken: string;
  seeded: Seeded;
  /** anon, user0, user1, superuser, signed in on `sidecar`. */
  who: Who[];
  /** Starts another sidecar against the same PocketBase with these feed engine options, synced. */
  serve(extra?: ServeOptions): Promise<Served>;
  /** Stops every sidecar, then PocketBase. */
  stop(): Promise<void>;
}

async function login(url: string, collection: string, identity: string, password: string): Promise<{ token: string; id: string }> {
  const res = await fetch(`${url}/api/collections/${collection}/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity, password }),
  });
  if (!res.ok) throw new Error(`login ${identity}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { token: string; record: { id: string } };
  return { token: body.token, id: body.record.id };
}

/** Words that occur only as whole words in seeded posts, so FTS and PocketBase's `~` agree. */
export const WORDS = ['zebra', 'quokka', 'éclair'];

export async function startFeedsEnv(): Promise<FeedsEnv> {
  const pb = await startPocketBase();
  const sidecars: TestSidecar[] = [];
  const stopAll = async () => {
    for (const s of sidecars.splice(0).reverse()) await s.destroy().catch(() => {});
    await pb.destroy();
  };
  try {
    const superToken = await superuserToken(pb.url);
    const seeded = await seedReference(pb.url, superToken, { users: 10, posts: 160, comments: 200, likes: 500, follows: 30 }, 31);
    const rand = rng(99);
    const u = seeded.users;
    // Searchable posts (drafts among them) and blocks of popular authors by the first two users.
    await batch(pb.url, superToken, Array.from({ length: 24 }, (_, i) => ({
      method: 'POST' as const, url: '/api/collections/posts/records',
      body: {
        id: makeId(rand), title: `${WORDS[i % 3]} story ${i}`, body: `<p>${i % 2 ? WORDS[(i + 1) % 3] : 'plain'} text ${i}</p>`,
        author: u[i % u.length].id, published: i % 4 !== 0, likes: 0,
      },
    })));
    await batch(pb.url, superToken, [[0, 2], [0, 3], [1, 0], [1, 4]].map(([a, b]) => ({
      method: 'POST' as const, url: '/api/collections/blocks/records', body: { blocker: u[a].id, blocked: u[b].id },
    })));
    // user0 follows a few authors (seeded follows are random; make sure there are some).
    const follows = await api(pb.url, `/api/collections/follows/records?perPage=500&filter=${encodeURIComponent(`follower="${u[0].id}"`)}`, { token: superToken });
    const have = new Set((follows.items as { following: string }[]).map((f) => f.following));
    await batch(pb.url, superToken, [1, 2, 5].filter((i) => !have.has(u[i].id)).map((i) => ({
      method: 'POST' as const, url: '/api/collections/follows/records', body: { follower: u[0].id, following: u[i].id },
    })));
    const pbTokens: string[] = [];
    for (const i of [0, 1]) pbTokens.push((await login(pb.url, 'users', u[i].email, USER_PASSWORD)).token);

    /** The identities, signed in through the sidecar at `url`. */
    const signIn = async (url: string): Promise<Who[]> => {
      const who: Who[] = [{ name: 'anon', key: '', pbToken: '', id: '', superuser: false }];
      for (const [k, i] of [0, 1].entries()) {
        const s = await login(url, 'users', u[i].email, USER_PASSWORD);
        who.push({ name: `user${i}`, key: s.token, pbToken: pbTokens[k], id: s.id, superuser: false });
      }
      const su = await login(url, '_superusers', SUPERUSER.email, SUPERUSER.password);
      who.push({ name: 'superuser', key: su.token, pbToken: superToken, id: su.id, superuser: true });
      return who;
    };
    /** A shipped sidecar with these feed engine options, caught up with PocketBase. */
    const start = async (feedEngine: ServeOptions): Promise<TestSidecar> => {
      // Each reports its own position in the change log to PocketBase.
      const consumerId = sidecars.length === 0 ? 'default' : `feeds_${sidecars.length}`;
      const sc = await startSidecar(pb, { rateLimits: { enabled: false }, replica: { consumerId }, feedEngine });
      sidecars.push(sc);
      await waitForSync(sc, 60_000);
      return sc;
    };

    const sidecar = await start({});
    const who = await signIn(sidecar.url);
    const serve = async (extra: ServeOptions = {}): Promise<Served> => {
      const sc = await start(extra);
      return { url: sc.url, sidecar: sc, who: await signIn(sc.url) };
    };
    return { pb, sidecar, superToken, seeded, who, serve, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

export interface FeedPage { status: number; body: any }

export async function feed(base: string, profile: string, params: Record<string, string>, w: Who): Promise<FeedPage> {
  const qs = new URLSearchParams(params).toString();
  const res = await fetch(`${base}/api/hapta/feeds/${profile}${qs ? `?${qs}` : ''}`, { headers: w.key ? { authorization: w.key } : {} });
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* left as text */ }
  return { status: res.status, body };
}

/** Every page of a feed through its cursors: ids in order. */
export async function allPages(base: string, profile: string, params: Record<string, string>, w: Who): Promise<string[]> {
  const ids: string[] = [];
  let page = await feed(base, profile, { perPage: '40', ...params }, w);
  for (let n = 0; ; n++) {
    if (page.status !== 200) throw new Error(`${profile} as ${w.name}: ${page.status} ${JSON.stringify(page.body)}`);
    ids.push(...page.body.items.map((r: { id: string }) => r.id));
    if (!page.body.cursor || n > 100) break;
    page = await feed(base, profile, { perPage: '40', cursor: page.body.cursor }, w);
  }
  return ids;
}

/** Ids PocketBase lists for this identity and filter (every page). */
export async function pbIds(env: FeedsEnv, filter: string, w: Who): Promise<string[]> {
  const ids: string[] = [];
  for (let page = 1; ; page++) {
    const res = await fetch(`${env.pb.url}/api/collections/posts/records?perPage=500&page=${page}&fields=id&skipTotal=1&filter=${encodeURIComponent(filter)}`,
      { headers: w.pbToken ? { authorization: w.pbToken } : {} });
    if (!res.ok) throw new Error(`pocketbase ${res.status} ${await res.text()}`);
    const items = ((await res.json()) as { items: { id: string }[] }).items;
    ids.push(...items.map((i) => i.id));
    if (items.length < 500) return ids;
  }
}

const HOUR = 3600_000;
/** A PocketBase date as ms since the epoch (NaN for '' or anything else that is not a date). */
export const pbTime = (s: unknown) => (typeof s === 'string' && s !== '' ? Date.parse(s.replace(' ', 'T')) : NaN);

/** Records of the interaction and follow collections, as PocketBase lists them. */
export interface ReferenceRows { likes: any[]; comments: any[]; follows: any[] }

const grouped = new WeakMap<any[], Map<string, Map<string, any[]>>>();
function recordsWith(list: any[], field: string, value: string): any[] {
  let byField = grouped.get(list);
  if (!byField) grouped.set(list, (byField = new Map()));
  let byValue = byField.get(field);
  if (!byValue) {
    byField.set(field, (byValue = new Map()));
    for (const r of list) {
      const v = String(r[field]);
      const arr = byValue.get(v);
      if (arr) arr.push(r); else byValue.set(v, [r]);
    }
  }
  return byValue.get(value) ?? [];
}

/**
 * Reference score of an item at `now` for requester `me`, straight from the profile's definition
 * (sidecar/feeds/score.ts) over raw records, without relevance. Rows are indexed once per array: pass the
 * same arrays again only while they are unchanged.
 */
export function referenceScore(p: FeedProfile, post: any, rows: ReferenceRows, now: number, me: string): number {
  let base = 0;
  for (const i of p.interactions ?? []) {
    const src = i.collection === 'likes' ? rows.likes : rows.comments;
    const mine = recordsWith(src, i.field, post.id);
    const v = i.halfLifeHours && i.timeField
      ? mine.reduce((s, r) => { const t = pbTime(r[i.timeField!]); return Number.isNaN(t) ? s : s + Math.pow(2, -(now - t) / HOUR / i.halfLifeHours!); }, 0)
      : mine.length;
    base += i.weight * v;
  }
  if (p.following && (p.following.only || recordsWith(rows.follows, 'follower', me).some((f) => f.following === post.author))) base += p.following.boost;
  const f = p.freshness;
  if (!f) return base;
  const t = pbTime(post[f.field]);
  const age = Number.isNaN(t) ? 1e6 : Math.max(0, (now - t) / HOUR);
  if (f.gravity !== undefined) return (base + f.weight) / Math.pow(age + 2, f.gravity);
  if (f.halfLifeHours !== undefined) return base + f.weight * Math.pow(2, -age / f.halfLifeHours);
  return base;
}
