// PocketBase's realtime API answered by the sidecar (apis/realtime.go): GET /api/realtime opens an SSE
// stream with PocketBase's headers and PB_CONNECT frame; POST /api/realtime sets a client's subscriptions
// with PocketBase's checks and errors. Collection topics are answered from the replica's applied batches
// (engine.ts), so PocketBase holds no stream and checks no rule per client; any other topic is relayed
// from PocketBase on a stream held for that client (relay.ts). Client streams do not depend on
// PocketBase: while it is unreachable they stay open, and what the replica applies once it is back
// reaches them in commit order, exactly once.
//
// Wiring: `route('all', ['/api/realtime'], 'realtime', realtime.routes, forward)` (GET → connect,
// POST → subscribe, anything else → next()).
import type Koa from 'koa';
import { Pool } from 'undici';
import { Loop } from '../../lib/lifecycle.js';
import type { Logger } from '../../lib/log.js';
import type { Upstream } from '../../lib/upstream.js';
import type { Replicator } from '../../replica/replicator.js';
import { parsePosition, POSITION_HEADER } from '../consistency.js';
import { ApiError, sendError } from '../errors.js';
import { Lru } from '../lru.js';
import type { Forwarder } from '../http/forward.js';
import { catalogOf, type Catalog, type CollectionInfo } from '../reads/catalog.js';
import { Unsupported } from '../reads/errors.js';
import { normalizeExpands } from '../reads/expand.js';
import type { Requester, RequestInfo } from '../reads/request.js';
import { requesterFrom } from '../requester.js';
import type { Authenticated, SessionManager } from '../sessions/manager.js';
import { planAccess } from './access.js';
import { ANONYMOUS, ClientIndex, Registry, RtClient, type LocalSub, type RequesterRef } from './clients.js';
import { Engine } from './engine.js';
import { readSubscribeForm } from './form.js';
import { optionsKey, parseTopic } from './options.js';
import { attachBatches } from './preimages.js';
import { Relay } from './relay.js';

export interface RealtimeLimits {
  /** Connected clients per sidecar. */
  maxClients: number;
  /** Connected clients per client IP. */
  maxClientsPerIp: number;
  /** Topics per subscription request (PocketBase: 1000). */
  maxSubscriptions: number;
  /** Characters per topic (PocketBase: 2500). */
  maxTopicLength: number;
  /** The stream ends this long after the last message sent (PocketBase: 5 min). */
  idleTimeoutMs: number;
  /** The stream ends this long after it opened (PocketBase: 30 min). */
  maxLifetimeMs: number;
  /** A client whose unsent frames exceed this is disconnected. */
  maxBufferedBytes: number;
  /** How often the sessions behind connected clients are checked (an ended session closes its streams). */
  sessionCheckMs: number;
}

export interface RealtimeDeps {
  replicator: Replicator;
  sessions: SessionManager;
  forwarder: Forwarder;
  /** The upstream pool (subscriptions relayed to PocketBase); held streams get their own connections. */
  upstream: Upstream;
  log: Logger;
  /** Caps and timeouts (the configuration's `realtime` section holds the defaults). */
  limits: RealtimeLimits;
  /** Origins allowed by CORS on the stream (the edge's HAPTA_CORS_ORIGINS; default "*"). */
  corsOrigins?: string;
  /** The requester behind a request (default: requesterFrom(replicator)). */
  identify?: (ctx: Koa.Context) => Promise<Requester>;
  /** How long beforeWrite waits for the replica at most (default 1000 ms: the read wait's default). */
  writeWaitMs?: number;
}

export interface RealtimeStats {
  clients: number;
  localSubscriptions: number;
  relayingClients: number;
  relayedFrames: number;
  batches: number;
  changes: number;
  events: number;
  groups: number;
  renders: number;
  statements: number;
  batchedStatements: number;
  unsupported: number;
  expandUnsupported: number;
  deletesWithoutPreState: number;
  deletesAhead: number;
  /** Writes that waited for the replica to read the same writer's previous write. */
  writesHeld: number;
  /** Of those, writes sent on after the bound (the replica did not read the previous one in time): their events may be read together. */
  writeWaitsTimedOut: number;
  closed: Record<string, number>;
  /** true when delete events are judged on the exact state before each batch (replicator hook). */
  exactPreState: boolean;
}

export interface Realtime {
  /** GET /api/realtime. */
  connect: Koa.Middleware;
  /** POST /api/realtime. */
  subscribe: Koa.Middleware;
  /** Both: GET → connect, POST → subscribe, any other method → next(). */
  routes: Koa.Middleware;
  /**
   * Before a write through the sidecar: while collection topics are answered here, waits until the
   * replica has read this writer's previous write (at most `writeWaitMs`), so the two are never read
   * together (a delete close behind an update would otherwise hide the update's event).
   */
  beforeWrite(ctx: Koa.Context): Promise<void>;
  /**
   * After a write that PocketBase acknowledged (its log position in the answer's X-Hapta-Position, see
   * consistency.ts): notes it as this writer's unread write and wakes the replica. The answer does not wait.
   */
  afterWrite(ctx: Koa.Context): void;
  stats(): RealtimeStats;
  close(): Promise<void>;
}

/** Headers PocketBase's default middlewares put on every answer. */
const STANDARD_HEADERS: Record<string, string> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  Vary: 'Origin',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'SAMEORIGIN',
  'X-Xss-Protection': '1; mode=block',
};

const VIA = /^(\w+)_via_(\w+)$/;
const VIA_OLD = /^(\w+)\((\w+)\)$/;

export function createRealtime(deps: RealtimeDeps): Realtime {
  const limits = deps.limits;
  const log = deps.log;
  const identify = deps.identify ?? requesterFrom(deps.replicator);
  const closedBy: Record<string, number> = {};
  // One function for every client's end (a closure per client would cost each stream its own).
  const registry = new Registry(limits, (client, reason) => {
    closedBy[reason] = (closedBy[reason] ?? 0) + 1;
    engine.removeLocal(client);
    engine.release(client.requester);
    trackSession(client, null);
    client.auth = null;
    relays.get(client)?.close();
    relays.delete(client);
  });
  const engine = new Engine(log);
  const relays = new Map<RtClient, Relay>();
  const sharedOptions = new Lru<string, { key: string; options: LocalSub['options'] }>(1000);
  let relayedFrames = 0;
  const streams = new Pool(deps.upstream.origin, { connections: null, bodyTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 4_000 });
  const relayDeps = { upstream: deps.upstream, streams, forwarder: deps.forwarder, log, onFrame: () => { relayedFrames++; } };
  const batches = attachBatches(deps.replicator, {
    before: (store, changes, records) => engine.before(store, changes, records),
    after: (store, changes, withPreState) => {
      engine.after(store, changes, withPreState);
      checkSessionsOf(changes);
    },
  }, log);

  // --- sessions: an ended session (logout, revocation, PocketBase refusing its token) closes its streams.
  const bySession = new ClientIndex();
  const checkSids = async (sids: Iterable<string>) => {
    const list = [...sids];
    for (let i = 0; i < list.length; i += 16) {
      await Promise.all(list.slice(i, i + 16).map(async (sid) => {
        const clients = bySession.get(sid);
        if (clients.length === 0) return;
        let live = true;
        try {
          const s = await deps.sessions.store.get(sid);
          live = s !== null && s.revokedAt === null;
        } catch {
          return; // the session store cannot be read now: the next pass decides
        }
        if (!live) for (const c of clients) c.close('session');
      }));
    }
  };
  const sessionLoop = new Loop(() => checkSids([...bySession.keys()]), {
    log, failure: 'realtime session check failed', intervalMs: limits.sessionCheckMs, periodic: true,
  });
  sessionLoop.start();
  /** Clients by the auth record behind their session (collectionId:recordId). */
  const byRecord = new ClientIndex();
  /** An auth record changed: the validator re-checks its sessions at once; look again shortly after. */
  const checkSessionsOf = (changes: readonly { coll: string; rid: string }[]) => {
    if (byRecord.size === 0) return;
    const sids = new Set<string>();
    for (const ch of changes) {
      for (const c of byRecord.get(`${ch.coll}:${ch.rid}`)) if (c.auth) sids.add(c.auth.session.sid);
    }
    if (sids.size === 0) return;
    for (const ms of [300, 1500]) setTimeout(() => void checkSids(sids), ms).unref();
  };
  const trackSession = (client: RtClient, auth: Authenticated | null) => {
    const old = client.auth?.session;
    if (old) {
      bySession.delete(old.sid, client);
      byRecord.delete(`${old.collectionId}:${old.recordId}`, client);
    }
    const s = auth?.session;
    if (!s) return;
    bySession.add(s.sid, client);
    byRecord.add(`${s.collectionId}:${s.recordId}`, client);
  };

  const corsList = (deps.corsOrigins ?? '*').split(',').map((o) => o.trim()).filter(Boolean);
  const corsAny = corsList.includes('*');
  const clientIp = (ctx: Koa.Context) => (ctx.state.clientIp as string | undefined) ?? ctx.ip;

  const connect: Koa.Middleware = async (ctx, next) => {
    if (ctx.method !== 'GET') return next();
    const ip = clientIp(ctx);
    const refusal = registry.refusal(ip);
    if (refusal) {
      ctx.set(STANDARD_HEADERS);
      return sendError(ctx, 429, refusal);
    }
    const client = registry.open(ip);
    const socket = ctx.req.socket;
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    ctx.state.upstream = false;
    ctx.status = 200;
    ctx.set(STANDARD_HEADERS);
    ctx.set('Content-Type', 'text/event-stream');
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Accel-Buffering', 'no');
    const origin = ctx.get('origin');
    if (origin) {
      // As the edge's CORS middleware would (it runs after the handler, when this stream's headers are out).
      if (corsAny) ctx.set('Access-Control-Allow-Origin', '*');
      else if (corsList.includes(origin)) ctx.set('Access-Control-Allow-Origin', origin);
    }
    // The stream is written straight to the socket's response, not through Koa's body.
    ctx.respond = false;
    ctx.res.writeHead(200, ctx.response.headers as Record<string, string | string[]>);
    client.attach(ctx.res);
    client.send(client.frame('PB_CONNECT', `{"clientId":"${client.id}"}`));
  };

  const subscribe: Koa.Middleware = async (ctx, next) => {
    if (ctx.method !== 'POST') return next();
    ctx.state.upstream = false;
    ctx.set(STANDARD_HEADERS);
    try {
      const form = await readSubscribeForm(ctx, limits);
      const client = registry.get(form.clientId);
      if (!client || client.closed) throw new ApiError(404, 'Missing or invalid client id.');
      // One request at a time per client, in arrival order.
      const run = (client.queue ?? Promise.resolve()).then(() => applySubscriptions(ctx, client, form.subscriptions));
      const queued = run.catch(() => {}).then(() => {
        if (client.queue === queued) client.queue = null;
      });
      client.queue = queued;
      await run;
    } catch (e) {
      if (e instanceof ApiError) return sendError(ctx, e.status, e.message, e.data);
      throw e;
    }
  };

  async function applySubscriptions(ctx: Koa.Context, client: RtClient, topics: string[]): Promise<void> {
    if (client.ip !== clientIp(ctx)) throw new ApiError(400, 'Invalid realtime client.');
    const auth = (ctx.state.auth as Authenticated | undefined) ?? null;
    const passThrough = (ctx.state.passThroughAuth as string | undefined) ?? null;
    const authKey = auth ? `${auth.session.collectionId}:${auth.session.recordId}` : passThrough ? `pt:${tokenIdentity(passThrough)}` : null;
    // Only a guest may become someone (PocketBase: any other change of identity is refused).
    if (client.authKey !== undefined && client.authKey !== null && client.authKey !== authKey) {
      throw new ApiError(403, "The current and the previous request authorization don't match.");
    }
    if (client.closed) throw new ApiError(404, 'Missing or invalid client id.');

    // Whom the replica would answer for; null: only PocketBase can (everything is relayed).
    let requester: Requester | null = null;
    if (!passThrough) {
      try {
        requester = await identify(ctx);
        if ((requester as { partial?: boolean }).partial) requester = null;
      } catch (e) {
        if (!(e instanceof Unsupported)) throw e;
        requester = null;
      }
    }
    let store = deps.replicator.store;
    if (!store && requester) {
      await Promise.race([deps.replicator.whenReady(), new Promise((r) => setTimeout(r, 2000).unref())]);
      store = deps.replicator.store;
    }
    const catalog = store && requester ? catalogOf(store) : null;
    const ref: RequesterRef = requester ? engine.refFor(requester) : ANONYMOUS;

    const local: LocalSub[] = [];
    const relayed: string[] = [];
    const seen = new Set<string>();
    for (const topic of topics) {
      if (topic === '' || seen.has(topic)) continue;
      seen.add(topic);
      const parsed = parseTopic(topic);
      const target = catalog ? classify(parsed.base, catalog) : null;
      if (!target || !requester) { relayed.push(topic); continue; }
      const info: RequestInfo = { context: 'realtime', method: 'GET', query: parsed.options.query, headers: parsed.options.headers, requester };
      const plan = planAccess(catalog!, target.coll, target.kind, info);
      if ((plan.kind === 'none' && plan.unsupported) || !expandReplicated(catalog!, target.coll, parsed.options.query.expand ?? '')) {
        relayed.push(topic);
        continue;
      }
      // Equal options are one object (and one key) for every subscription that has them.
      const optKey = optionsKey(parsed.options);
      let shared = sharedOptions.get(optKey);
      if (!shared) sharedOptions.set(optKey, (shared = { key: optKey, options: parsed.options }));
      local.push({
        topic: parsed.topic, base: parsed.base, options: shared.options, client, kind: target.kind, collection: target.ref, recordId: target.recordId, optKey: shared.key,
      });
    }

    if (client.closed) {
      engine.retain(ref);
      engine.release(ref);
      return void (ctx.status = 204);
    }
    // The identity is accepted from here on: what PocketBase is asked for this client is asked as it.
    trackSession(client, auth);
    client.auth = auth;
    client.passThroughAuth = passThrough;
    // Only relayed topics are asked of PocketBase on the client's behalf.
    if (relayed.length > 0) client.forwardState = { headers: forwardableHeaders(ctx.req.headers), clientIp: ctx.state.clientIp as string | undefined };
    if (relayed.length > 0 || relays.has(client)) {
      let relay = relays.get(client);
      if (!relay) relays.set(client, (relay = new Relay(client, relayDeps)));
      const refused = await relay.set(relayed);
      if (refused) {
        engine.retain(ref);
        engine.release(ref);
        deps.forwarder.relay(ctx, refused);
        return;
      }
      if (relayed.length === 0) relays.delete(client);
    }
    if (client.closed) return void (ctx.status = 204);
    client.authKey = authKey;
    engine.retain(ref);
    engine.release(client.requester);
    client.requester = ref;
    engine.setLocal(client, local);
    client.relayTopics = relayed;
    ctx.status = 204;
    ctx.body = null;
  }

  const routes: Koa.Middleware = (ctx, next) => {
    if (ctx.method === 'GET') return connect(ctx, next);
    if (ctx.method === 'POST') return subscribe(ctx, next);
    return next();
  };

  // A write is answered as soon as PocketBase acknowledges it. What must not happen is that the same
  // writer's next write reaches PocketBase before the replica has read this one: the two could then be
  // read together, and an update closely followed by a delete would lose the update's event. So each
  // writer's (session's, or address's without one) last unread write is kept, and its next write waits
  // for it (at most `writeWaitMs`; past it the write is sent anyway and counted).
  const writeWaitMs = deps.writeWaitMs ?? 1000;
  let writesHeld = 0;
  let writeWaitsTimedOut = 0;
  interface Unread { seq: number; instance: string; waiters: Array<() => void> }
  const unread = new Map<string, Unread>();
  const release = (key: string, u: Unread) => {
    if (unread.get(key) === u) unread.delete(key);
    for (const w of u.waiters.splice(0)) w();
  };
  const offApplied = deps.replicator.onApplied(() => {
    const r = deps.replicator;
    for (const [key, u] of unread) if (u.instance !== r.store?.instance || r.seq >= u.seq) release(key, u);
  });
  const writerKey = (ctx: Koa.Context) => {
    const sid = (ctx.state.auth as Authenticated | undefined)?.session.sid;
    return sid ? `s:${sid}` : `ip:${clientIp(ctx)}`;
  };

  const beforeWrite = async (ctx: Koa.Context): Promise<void> => {
    const key = writerKey(ctx);
    const u = unread.get(key);
    if (!u) return;
    if (!engine.active) return release(key, u);
    writesHeld++;
    let timer: NodeJS.Timeout | undefined;
    const read = await Promise.race([
      new Promise<boolean>((resolve) => u.waiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), writeWaitMs))),
    ]).finally(() => clearTimeout(timer));
    if (!read) writeWaitsTimedOut++;
  };

  const afterWrite = (ctx: Koa.Context): void => {
    const r = deps.replicator;
    const store = r.store;
    if (!engine.active || !store) return;
    const key = writerKey(ctx);
    const p = parsePosition(String(ctx.response.get(POSITION_HEADER) || ''), store.instance);
    if (p && p.instance === store.instance) {
      if (r.seq >= p.seq) return;
      const prev = unread.get(key);
      if (prev && prev.seq >= p.seq) return;
      const u: Unread = { seq: p.seq, instance: p.instance, waiters: prev?.waiters ?? [] };
      unread.set(key, u);
      r.announced(p.seq);
      return;
    }
    // Without a known position (the head could not be read): a read of the log that starts now covers it.
    const u: Unread = { seq: Number.POSITIVE_INFINITY, instance: store.instance ?? '', waiters: unread.get(key)?.waiters ?? [] };
    unread.set(key, u);
    void r.syncAfterNow().then(() => release(key, u));
  };

  return {
    connect, subscribe, routes, beforeWrite, afterWrite,
    stats(): RealtimeStats {
      return {
        clients: registry.size,
        localSubscriptions: engine.subscriptions,
        relayingClients: [...relays.values()].filter((r) => r.active).length,
        relayedFrames,
        ...pickStats(engine.stats),
        statements: engine.access.stats.statements,
        batchedStatements: engine.access.stats.batchedStatements,
        unsupported: engine.access.stats.unsupported,
        writesHeld,
        writeWaitsTimedOut,
        closed: { ...closedBy },
        exactPreState: batches.exact,
      };
    },
    async close() {
      batches.detach();
      offApplied();
      for (const [key, u] of unread) release(key, u);
      await sessionLoop.stop();
      for (const c of [...registry.clients.values()]) c.close('shutdown');
      for (const r of relays.values()) r.close();
      relays.clear();
      await streams.close().catch(() => {});
    },
  };
}

function pickStats(s: Engine['stats']) {
  return {
    batches: s.batches, changes: s.changes, events: s.events, groups: s.groups, renders: s.renders,
    expandUnsupported: s.expandUnsupported, deletesWithoutPreState: s.deletesWithoutPreState, deletesAhead: s.deletesAhead,
  };
}

/** A collection topic of a replicated collection (exact name or id, as PocketBase matches topics), or null. */
function classify(base: string, catalog: Catalog): { coll: CollectionInfo; kind: 'list' | 'view'; ref: string; recordId: string | null } | null {
  const slash = base.indexOf('/');
  const ref = slash === -1 ? base : base.slice(0, slash);
  const rest = slash === -1 ? null : base.slice(slash + 1);
  const coll = catalog.find(ref);
  if (!coll || (coll.c.name !== ref && coll.c.id !== ref)) return null;
  if (rest === null || rest === '*') return { coll, kind: 'list', ref, recordId: null };
  if (rest.includes('/')) return null;
  return { coll, kind: 'view', ref, recordId: rest };
}

/** Whether every expand path stays within collections the replica holds (else PocketBase renders it). */
function expandReplicated(catalog: Catalog, coll: CollectionInfo, expand: string): boolean {
  if (expand === '') return true;
  for (const path of normalizeExpands(expand.split(','))) {
    let current: CollectionInfo | null = coll;
    for (const head of path.split('.').slice(0, 6)) {
      if (!current) break;
      const m = head.includes('(') ? VIA_OLD.exec(head) : VIA.exec(head);
      let next: CollectionInfo | null;
      if (m) {
        next = catalog.find(m[1]);
        if (!next) return false;
      } else {
        const field = current.fields.get(head);
        if (!field || field.type !== 'relation') break; // PocketBase drops the path
        next = catalog.byCollectionId(String(field.collectionId ?? '')) ?? null;
        if (!next) return false;
      }
      current = next;
    }
  }
  return true;
}

/** The request headers worth keeping for requests made later on the client's behalf. */
function forwardableHeaders(h: Koa.Request['headers']): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k === 'content-type' || k === 'content-length' || k === 'transfer-encoding' || k === 'expect') continue;
    out[k] = v;
  }
  return out;
}

/** Who a PocketBase token names (not verified: PocketBase decides, the relayed subscription carries it). */
function tokenIdentity(header: string): string {
  const token = header.replace(/^Bearer\s+/i, '');
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { id?: unknown; collectionId?: unknown };
    return `${String(claims.collectionId)}:${String(claims.id)}`;
  } catch {
    return token;
  }
}
