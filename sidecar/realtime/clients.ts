// Realtime clients: one per GET /api/realtime, identified by a random 40-character id as PocketBase's
// subscriptions.NewDefaultClient makes them, holding its SSE stream, the identity its subscriptions were
// made with, and its timers: the stream ends 300 s after the last message sent (PocketBase's
// IdleTimeout) and 30 min after it opened whatever happens (MaxTimeout). A client that stops reading is
// dropped once its unsent frames pass a limit, instead of being buffered without bound.
import { randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
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

export type CloseReason = 'idle' | 'lifetime' | 'gone' | 'slow' | 'session' | 'shutdown';

export class RtClient {
  readonly id = newClientId();
  /** `id:<clientId>\n`, the first line of every frame. */
  readonly prefix = Buffer.from(`id:${this.id}\n`);
  private res: ServerResponse | null = null;
  readonly connectedAt = Date.now();
  lastSentAt = Date.now();
  closed = false;
  /** The identity of the last accepted subscription request: undefined before the first one, null for guests. */
  authKey: string | null | undefined = undefined;
  auth: Authenticated | null = null;
  passThroughAuth: string | null = null;
  requester: RequesterRef = ANONYMOUS;
  /** Everything PocketBase is asked on this client's behalf (relayed topics) is sent with these. */
  forwardState: { headers: Record<string, string | string[] | undefined>; clientIp?: string } = { headers: {} };
  local: LocalSub[] = [];
  relayTopics: string[] = [];
  /** Serialises this client's subscription requests. */
  queue: Promise<unknown> = Promise.resolve();
  onClose: Array<(reason: CloseReason) => void> = [];
  private idleTimer: NodeJS.Timeout | null = null;
  private lifeTimer: NodeJS.Timeout | null = null;

  constructor(readonly ip: string, private readonly timers: ClientTimers) {
    this.armIdle(timers.idleTimeoutMs);
    this.lifeTimer = setTimeout(() => this.close('lifetime'), timers.maxLifetimeMs);
    this.lifeTimer.unref();
  }

  /** The idle timer fires at lastSentAt + idle; a message since re-arms it for the remainder. */
  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      const left = this.lastSentAt + this.timers.idleTimeoutMs - Date.now();
      if (left > 0) this.armIdle(left);
      else this.close('idle');
    }, ms);
    this.idleTimer.unref();
  }

  /** The response the stream is written to (its headers already sent). */
  attach(res: ServerResponse): void {
    this.res = res;
    res.on('close', () => this.close('gone'));
    res.on('error', () => this.close('gone'));
  }

  /** Writes frames given as their `event:…\ndata:…\n\n` part (shared by every client), in one write. */
  sendFrames(tails: Buffer[]): boolean {
    const parts: Buffer[] = [];
    for (const t of tails) parts.push(this.prefix, t);
    return this.send(parts.length === 2 ? Buffer.concat(parts, this.prefix.length + tails[0].length) : Buffer.concat(parts));
  }

  /** Writes frames; false when the client is gone or was dropped for not reading. */
  send(text: string | Buffer): boolean {
    if (this.closed || !this.res) return false;
    this.res.write(text);
    this.lastSentAt = Date.now();
    if (this.res.writableLength > this.timers.maxBufferedBytes) {
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
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.lifeTimer) clearTimeout(this.lifeTimer);
    for (const fn of this.onClose) {
      try {
        fn(reason);
      } catch { /* listeners must not keep the stream open */ }
    }
    // A clean end of the stream, as PocketBase ends it (the connection may be reused).
    if (!this.res) return;
    if (reason === 'gone' || reason === 'slow') this.res.destroy();
    else this.res.end();
  }
}

export interface RegistryLimits {
  maxClients: number;
  maxClientsPerIp: number;
}

/** Connected clients by id, with the per-sidecar and per-IP caps. */
export class Registry {
  readonly clients = new Map<string, RtClient>();
  private readonly perIp = new Map<string, number>();

  constructor(private readonly limits: RegistryLimits) {}

  /** Why a new client from `ip` cannot be accepted, or null. */
  refusal(ip: string): string | null {
    if (this.clients.size >= this.limits.maxClients) return 'Too many realtime connections.';
    if ((this.perIp.get(ip) ?? 0) >= this.limits.maxClientsPerIp) return 'Too many realtime connections from this address.';
    return null;
  }

  add(c: RtClient): void {
    this.clients.set(c.id, c);
    this.perIp.set(c.ip, (this.perIp.get(c.ip) ?? 0) + 1);
    c.onClose.push(() => this.remove(c));
  }

  private remove(c: RtClient): void {
    if (this.clients.get(c.id) !== c) return;
    this.clients.delete(c.id);
    const n = (this.perIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(c.ip);
    else this.perIp.set(c.ip, n);
  }

  get(id: string): RtClient | undefined {
    return this.clients.get(id);
  }

  get size(): number {
    return this.clients.size;
  }
}
