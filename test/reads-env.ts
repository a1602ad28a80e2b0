// Test/bench harness for the read path: a real PocketBase with seeded data and the shipped sidecar. Each
// identity signs in twice: through the sidecar (a session key) and at PocketBase (its token), so the same
// request can go both ways as the same caller.
import { superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type SeedCounts, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

export interface Identity {
  name: string;
  /** Sidecar session key ('' for anonymous). */
  key: string;
  /** PocketBase token ('' for anonymous). */
  token: string;
  id: string;
}

export interface ReadsEnv {
  pb: PocketBase;
  sidecar: TestSidecar;
  url: string;
  /** Read fallbacks to PocketBase by reason since the last reset (from the sidecar's metrics). */
  fallbacks(): Promise<[string, number][]>;
  resetFallbacks(): Promise<void>;
  superToken: string;
  seeded: Seeded;
  identities: Identity[];
  stop(): Promise<void>;
}

export async function authToken(pbUrl: string, collection: string, identity: string, password: string): Promise<{ token: string; id: string }> {
  const res = await fetch(`${pbUrl}/api/collections/${collection}/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity, password }),
  });
  if (!res.ok) throw new Error(`login ${identity}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { token: string; record: { id: string } };
  return { token: body.token, id: body.record.id };
}

/**
 * `readThreads`: the sidecar's HAPTA_READ_THREADS (default: its own default for this machine);
 * `inlineReadMs`, `threadNice`, `feedThreadNice`: its HAPTA_INLINE_READ_MS, HAPTA_THREAD_NICE,
 * HAPTA_FEED_THREAD_NICE (default: its defaults).
 */
export async function startReadsEnv(opts: { counts: SeedCounts; seed?: number; readThreads?: number; inlineReadMs?: number; threadNice?: number; feedThreadNice?: number; setup?: (pbUrl: string, token: string, seeded: Seeded) => Promise<void> }): Promise<ReadsEnv> {
  const pb = await startPocketBase();
  let sidecar: TestSidecar | null = null;
  try {
    return await startAround(pb, opts, (s) => { sidecar = s; });
  } catch (e) {
    await (sidecar as TestSidecar | null)?.destroy().catch(() => {});
    await pb.destroy();
    throw e;
  }
}

async function startAround(pb: PocketBase, opts: Parameters<typeof startReadsEnv>[0], keep: (s: TestSidecar) => void): Promise<ReadsEnv> {
  const superToken = await superuserToken(pb.url);
  const seeded = await seedReference(pb.url, superToken, opts.counts, opts.seed ?? 7);
  await opts.setup?.(pb.url, superToken, seeded);
  // The shipped chain, with rate limits off: the suites send thousands of reads from one address.
  const replica = {
    ...(opts.readThreads === undefined ? {} : { readThreads: opts.readThreads }),
    ...(opts.inlineReadMs === undefined ? {} : { inlineReadMs: opts.inlineReadMs }),
    ...(opts.threadNice === undefined ? {} : { threadNice: opts.threadNice }),
    ...(opts.feedThreadNice === undefined ? {} : { feedThreadNice: opts.feedThreadNice }),
  };
  const sidecar = await startSidecar(pb, { rateLimits: { enabled: false }, replica });
  keep(sidecar);
  await waitForSync(sidecar, 60_000);

  const identities: Identity[] = [{ name: 'anon', key: '', token: '', id: '' }];
  for (const i of [0, 1]) {
    const u = seeded.users[i];
    const { token, id } = await authToken(pb.url, 'users', u.email, USER_PASSWORD);
    const { token: key } = await authToken(sidecar.url, 'users', u.email, USER_PASSWORD);
    identities.push({ name: `user${i}`, key, token, id });
  }
  const { token: superKey, id: superId } = await authToken(sidecar.url, '_superusers', SUPERUSER.email, SUPERUSER.password);
  identities.push({ name: 'superuser', key: superKey, token: superToken, id: superId });

  const reasons = async () => {
    const { values } = await sidecar.metrics.readFallbacks.get();
    return new Map(values.map((v) => [String(v.labels.reason), v.value]));
  };
  let baseline = new Map<string, number>();
  return {
    pb, sidecar, url: sidecar.url, superToken, seeded, identities,
    async fallbacks() {
      const now = await reasons();
      return [...now].map(([k, n]) => [k, n - (baseline.get(k) ?? 0)] as [string, number]).filter(([, n]) => n > 0);
    },
    async resetFallbacks() {
      baseline = await reasons();
    },
    async stop() {
      await sidecar.destroy();
      await pb.destroy();
    },
  };
}

export interface Exchange { status: number; body: string }

/** The same GET to PocketBase (with the identity's token) and to the sidecar (with its session key). */
export async function both(env: ReadsEnv, path: string, who: Identity): Promise<{ pb: Exchange; sc: Exchange }> {
  const [pbRes, scRes] = await Promise.all([
    fetch(env.pb.url + path, { headers: who.token ? { authorization: who.token } : {} }),
    fetch(env.url + path, { headers: who.key ? { authorization: who.key } : {} }),
  ]);
  return { pb: { status: pbRes.status, body: await pbRes.text() }, sc: { status: scRes.status, body: await scRes.text() } };
}

/**
 * Sends `n` generated GETs (`pathOf(i)`, as the identities in turn) to PocketBase and the sidecar; each
 * pair whose status or body differs is listed.
 */
export async function compareLists(env: ReadsEnv, n: number, pathOf: (i: number) => string): Promise<string[]> {
  const differences: string[] = [];
  for (let i = 0; i < n; i++) {
    const path = pathOf(i);
    const who = env.identities[i % env.identities.length];
    const r = await both(env, path, who);
    if (r.pb.status !== r.sc.status || r.pb.body !== r.sc.body) differences.push(`${who.name} ${path}: ${r.pb.status}/${r.sc.status}`);
  }
  return differences;
}
