// Test/bench harness for the read path: a real PocketBase, the sidecar's replicator, and a small Koa app
// mounting createReadRoutes in front of a proxy to PocketBase. Identity comes from the test-only header
// `x-test-auth` ("superuser" or "<collectionId>/<recordId>", looked up in the replica); the same request
// goes to PocketBase with that identity's real token.
import Koa from 'koa';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeRow, quoteIdent } from '../replica/schema.js';
import { silentLogger } from '../lib/log.js';
import { errorHandler } from '../sidecar/errors.js';
import { createProxy } from '../sidecar/proxy.js';
import { createReadRoutes, type Requester } from '../sidecar/reads/index.js';
import { superuserToken } from './harness/dump.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { seedReference, USER_PASSWORD, type SeedCounts, type Seeded } from './harness/seed.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

export interface Identity {
  name: string;
  /** Value of x-test-auth for the sidecar ('' for anonymous). */
  header: string;
  /** PocketBase token ('' for anonymous). */
  token: string;
  id: string;
}

export interface ReadsEnv {
  pb: PocketBase;
  sidecar: TestSidecar;
  url: string;
  server: Server;
  fallbacks: Map<string, number>;
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

export async function startReadsEnv(opts: { counts: SeedCounts; seed?: number; setup?: (pbUrl: string, token: string, seeded: Seeded) => Promise<void> }): Promise<ReadsEnv> {
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
  const sidecar = await startSidecar(pb);
  keep(sidecar);
  await waitForSync(sidecar, 60_000);

  const su = await fetch(`${pb.url}/api/collections/_superusers/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: SUPERUSER.email, password: SUPERUSER.password }),
  });
  const superRecord = ((await su.json()) as { record: Record<string, unknown> }).record;
  const identities: Identity[] = [{ name: 'anon', header: '', token: '', id: '' }];
  for (const i of [0, 1]) {
    const u = seeded.users[i];
    const { token, id } = await authToken(pb.url, 'users', u.email, USER_PASSWORD);
    identities.push({ name: `user${i}`, header: `_pb_users_auth_/${id}`, token, id });
  }
  identities.push({ name: 'superuser', header: 'superuser', token: superToken, id: '' });
  const fallbacks = new Map<string, number>();
  const app = new Koa();
  app.silent = true;
  app.use(errorHandler(silentLogger));
  app.use(createReadRoutes({
    replicator: sidecar.replicator,
    identify: async (ctx) => identifyFromHeader(sidecar, superRecord, String(ctx.get('x-test-auth') ?? '')),
    onFallback: (reason) => fallbacks.set(reason, (fallbacks.get(reason) ?? 0) + 1),
  }));
  app.use(createProxy({
    upstream: sidecar.upstream,
    // A fallback is forwarded as the same identity: the test header becomes that identity's token.
    prepare: async (_ctx, h) => {
      const who = identities.find((i) => i.header !== '' && i.header === h['x-test-auth']);
      delete h['x-test-auth'];
      if (who) h.authorization = who.token;
    },
  }));
  const server = createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;


  return {
    pb, sidecar, url, server, fallbacks, superToken, seeded, identities,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
      await sidecar.destroy();
      await pb.destroy();
    },
  };
}

function identifyFromHeader(sidecar: TestSidecar, superRecord: Record<string, unknown>, header: string): Requester {
  if (header === '') return { kind: 'anonymous' };
  if (header === 'superuser') {
    return { kind: 'superuser', record: superRecord };
  }
  const [collectionId, id] = header.split('/');
  const store = sidecar.replicator.store!;
  const entry = store.entry(collectionId);
  if (!entry) throw new Error(`unknown auth collection ${collectionId}`);
  const row = store.db.prepare(`SELECT * FROM ${quoteIdent(entry.spec.table)} WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
  if (!row) return { kind: 'anonymous' };
  return { kind: 'record', collectionId, record: decodeRow(entry.spec, row) };
}

export interface Exchange { status: number; body: string }

/** The same GET to PocketBase (with the identity's token) and to the sidecar (with x-test-auth). */
export async function both(env: ReadsEnv, path: string, who: Identity): Promise<{ pb: Exchange; sc: Exchange }> {
  const [pbRes, scRes] = await Promise.all([
    fetch(env.pb.url + path, { headers: who.token ? { authorization: who.token } : {} }),
    fetch(env.url + path, { headers: who.header ? { 'x-test-auth': who.header } : {} }),
  ]);
  return { pb: { status: pbRes.status, body: await pbRes.text() }, sc: { status: scRes.status, body: await scRes.text() } };
}
