// Realtime clients: one per GET /api/realtime, identified by a random 40-character id as PocketBase's
// subscriptions.NewDefaultClient makes them, holding its SSE stream and the identity its subscriptions
// were made with. The stream ends 300 s after the last message sent (PocketBase's IdleTimeout) and 30 min
// after it opened whatever happens (MaxTimeout): one timer of the registry sweeps every client for both.
// A client that stops reading is dropped once its unsent frames pass a limit, instead of being buffered
// without bound.
//
// Frames go straight to the connection once the response head is out, each write one buffer already
// framed as the response's chunked body, so a batch costs one small write per client and no stream
// machinery per frame; the response itself ends the body (its last chunk) when the stream closes.
import { randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Requester } from '../reads/index.js';
import type { Authenticated } from '../sessions/manager.js';
import type { ParsedTopic } from './options.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function newClientId(): string {
  let id = '';
  for (let i = 0; i < 40; i++) id += ALPHABET[randomInt(ALPHABET.length)];
  return id;
}

/** Whom a client's events are evaluated for: shared by every client of the same auth record. */
export interface RequesterRef {
  /** Stable while the requester's record is unchanged (grouping and caches). */
  key: string;
  requester: Requester;
  /** Collection and record id (null: anonymous). */
  ref: { collectionId: string; recordId: string } | null;
}

export const ANONYMOUS: RequesterRef = { key: 'a', requester: { kind: 'anonymous' }, ref: null };

/** A collection topic answered from the replica. */
export interface LocalSub extends ParsedTopic {
  client: RtClient;
  kind: 'list' | 'view';
  /** The collection as the topic names it (its exact name or id). */
  collection: string;
  /** For view topics: the record id. */
  recordId: string | null;
  /** optionsKey(options): subscriptions with equal keys evaluate and render alike. */
  optKey: string;
}

export interface ClientTimers {
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  maxBufferedBytes: number;
}

const CRLF = Buffer.from('\r\n');

/** A string stored flat (a concatenation keeps its parts until it is read as a whole once). */
function flat(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

export type CloseReason = 'idle' | 'lifetime' | 'gone' | 'slow' | 'session' | 'shutdown';

export class RtClient {
  readonly id = newClientId();
  /** `id:<clientId>\n`, the first line of every frame (ASCII; one flat string, not a concatenation). */
  readonly prefix = flat(`id:${this.id}\n`);
  private res: ServerResponse | null = null;
  private socket: Socket | null = null;
  private chunked = false;
  readonly connectedAt = Date.now();
  lastSentAt = Date.now();
  closed = false;
  /** The identity of the last accepted subscription request: undefined before the first one, null for guests. */
  authKey: string | null | undefined = undefined;
  auth: Authenticated | null = null;
  passThroughAuth: string | null = null;
  requester: RequesterRef = ANONYMOUS;
  /** Everything PocketBase is asked on this client's behalf (relayed topics) is sent with these. */
  forwardState: { headers: Record<string, string | string[] | undefined>; clientIp?: string } = NO_FORWARD_STATE;
  local: LocalSub[] = [];
  relayTopics: string[] = [];
  /** Serialises this client's subscription requests (null: none under way). */
  queue: Promise<unknown> | null = null;

  /** `ended` is told once when the stream ends (one function for every client of a registry). */
  constructor(readonly ip: string, private readonly timers: ClientTimers, private readonly ended: (c: RtClient, reason: CloseReason) => void) {}

  /** Why the stream should end at `now` (idle since the last message, or too old), or null. */
  expired(now: number): CloseReason | null {
    if (now - this.connectedAt >= this.timers.maxLifetimeMs) return 'lifetime';
    if (now - this.lastSentAt >= this.timers.idleTimeoutMs) return 'idle';
    return null;
  }

  /** The response the stream is written to, its head given (writeHead) and sent now. */
  attach(res: ServerResponse): void {
    this.res = res;
    res.flushHeaders();
    this.socket = res.socket;
    this.chunked = res.chunkedEncoding;
    res.on('close', () => this.close('gone'));
    res.on('error', () => this.close('gone'));
    releaseHeld(res);
  }

  /** Writes one frame given as its `event:…\ndata:…\n\n` part (shared by every client). */
  sendFrame(tail: Buffer): boolean {
    return this.sendFrames([tail]);
  }

  /** Writes frames given as their `event:…\ndata:…\n\n` part (shared by every client), in one write. */
  sendFrames(tails: Buffer[]): boolean {
    let size = 0;
    for (const t of tails) size += this.prefix.length + t.length;
    const head = this.chunked ? `${size.toString(16)}\r\n` : '';
    const out = Buffer.allocUnsafe(head.length + size + (this.chunked ? 2 : 0));
    let at = out.write(head, 0, 'latin1');
    for (const t of tails) {
      at += out.write(this.prefix, at, 'latin1');
      at += t.copy(out, at);
    }
    if (this.chunked) CRLF.copy(out, at);
    return this.write(out);
  }

  /** Writes frames given as text; false when the client is gone or was dropped for not reading. */
  send(text: string): boolean {
    const body = Buffer.from(text);
    return this.write(this.chunked ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, CRLF]) : body);
  }

  private write(chunk: Buffer): boolean {
    const socket = this.socket;
    if (this.closed || !socket || socket.destroyed) return false;
    socket.write(chunk);
    this.lastSentAt = Date.now();
    if (socket.writableLength > this.timers.maxBufferedBytes) {
      this.close('slow');
      return false;
    }
    return true;
  }

  frame(event: string, data: string): string {
    return `id:${this.id}\nevent:${event}\ndata:${data}\n\n`;
  }

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ended(this, reason);
    } catch { /* the listener must not keep the stream open */ }
    // A clean end of the stream, as PocketBase ends it (the connection may be reused).
    if (!this.res) return;
    if (reason === 'gone' || reason === 'slow') this.res.destroy();
    else this.res.end();
  }
}

const OUT_HEADERS = (res: ServerResponse) => Object.getOwnPropertySymbols(res).find((k) => k.description === 'kOutHeaders');

/**
 * Lets go of what a stream's response holds once its head is out and nothing will read again, about
 * 4 KB per stream (a stream lives for minutes, and a sidecar holds thousands):
 * - Koa's hold on the request: its error listener waits for the response to finish (on-finished, with
 *   listeners on the response and its socket) and keeps the whole context, state, session and requester
 *   among it. on-finished takes a message's 'end' as its end: emitted here, it removes its listeners and
 *   calls Koa's without an error, which Koa ignores. Errors on the stream are this client's (attach).
 * - the header map Node keeps for getHeader() (a private field, kOutHeaders; left alone where a version
 *   keeps it elsewhere): the head was written from it and is sent.
 * test/realtime-protocol.test.ts checks that the context is collected while its stream goes on.
 */
function releaseHeld(res: ServerResponse): void {
  res.emit('end');
  const key = res.headersSent ? OUT_HEADERS(res) : undefined;
  if (key) (res as unknown as Record<symbol, unknown>)[key] = null;
}

const NO_FORWARD_STATE: RtClient['forwardState'] = Object.freeze({ headers: Object.freeze({}) as Record<string, string> });

export interface RegistryLimits extends ClientTimers {
  maxClients: number;
  maxClientsPerIp: number;
}

/** Connected clients by id, with the per-sidecar and per-IP caps and the timer ending idle and old streams. */
export class Registry {
  readonly clients = new Map<string, RtClient>();
  private readonly perIp = new Map<string, number>();
  private sweeper: NodeJS.Timeout | null = null;

  /** Told once for every client that ends, after it left the registry. */
  private readonly ended: (c: RtClient, reason: CloseReason) => void;

  constructor(private readonly limits: RegistryLimits, onEnded: (c: RtClient, reason: CloseReason) => void = () => {}) {
    this.ended = (c, reason) => {
      this.remove(c);
      onEnded(c, reason);
    };
  }

  /** How often streams are checked: a tenth of the shorter timeout, within 20 ms to 1 s. */
  private get sweepMs(): number {
    return Math.min(1000, Math.max(20, Math.floor(Math.min(this.limits.idleTimeoutMs, this.limits.maxLifetimeMs) / 10)));
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of [...this.clients.values()]) {
      const reason = c.expired(now);
      if (reason) c.close(reason);
    }
  }

  /** Why a new client from `ip` cannot be accepted, or null. */
  refusal(ip: string): string | null {
    if (this.clients.size >= this.limits.maxClients) return 'Too many realtime connections.';
    if ((this.perIp.get(ip) ?? 0) >= this.limits.maxClientsPerIp) return 'Too many realtime connections from this address.';
    return null;
  }

  /** A new client from `ip`, counted until its stream ends. */
  open(ip: string): RtClient {
    const c = new RtClient(ip, this.limits, this.ended);
    this.clients.set(c.id, c);
    this.perIp.set(c.ip, (this.perIp.get(c.ip) ?? 0) + 1);
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), this.sweepMs);
      this.sweeper.unref();
    }
    return c;
  }

  private remove(c: RtClient): void {
    if (this.clients.get(c.id) !== c) return;
    this.clients.delete(c.id);
    const n = (this.perIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(c.ip);
    else this.perIp.set(c.ip, n);
    if (this.clients.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  get(id: string): RtClient | undefined {
    return this.clients.get(id);
  }

  get size(): number {
    return this.clients.size;
  }
}

/** Clients by a key where most keys have one client: a Set (about 170 bytes) only where there are more. */
export class ClientIndex {
  private readonly map = new Map<string, RtClient | Set<RtClient>>();

  add(key: string, c: RtClient): void {
    const v = this.map.get(key);
    if (v === undefined) this.map.set(key, c);
    else if (v instanceof Set) v.add(c);
    else if (v !== c) this.map.set(key, new Set([v, c]));
  }

  delete(key: string, c: RtClient): void {
    const v = this.map.get(key);
    if (v === c) this.map.delete(key);
    else if (v instanceof Set && v.delete(c) && v.size === 1) this.map.set(key, v.values().next().value as RtClient);
  }

  /** The clients under `key` (a copy: closing them may change the index). */
  get(key: string): RtClient[] {
    const v = this.map.get(key);
    return v === undefined ? [] : v instanceof Set ? [...v] : [v];
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  get size(): number {
    return this.map.size;
  }
}
