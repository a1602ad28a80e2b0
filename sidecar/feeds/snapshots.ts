// Ranked id lists frozen at one instant ("snapshots") so paging is stable while scores move, and the
// cursors that point into them: snapshot id + offset, bound to the requester and HMAC-signed with a
// per-process random key, so a cursor cannot be forged, edited or replayed by someone else. A snapshot
// holds an exact prefix of the requester's ranking, as deep as the pages asked so far need; a later page
// past it continues the ranking at the same instant (routes.ts), after the items it already holds.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { PageSql } from './feed-sql.js';
import type { SharedRanking } from './shared.js';
import type { Ranked } from './window.js';

/**
 * Where the rest of a snapshot's ranking comes from: the shared ranking it was filtered from, or a
 * ranking for its owner alone, `depth` items deep.
 */
export type SnapshotSource = { shared: SharedRanking } | { depth: number };

export interface Snapshot {
  id: string;
  /** Who may page through it (requesterKey), and what it ranks. */
  owner: string;
  profile: string;
  filter: string;
  match: string | null;
  nowMs: number;
  /** The ranked ids and their score terms, packed (a few objects per snapshot, whatever its length). */
  ranked: Ranked;
  /** Items of the requester's whole ranking (at most the cap); `ranked` may hold fewer so far. */
  total: number;
  /** How to continue `ranked` (none: it holds the whole ranking). */
  source?: SnapshotSource;
  /** A continuation under way. */
  extending?: Promise<void>;
  /** The replica's change count when the oldest ranking it holds was started (routes.ts). */
  mark: number;
  createdAt: number;
  /** The page query compiled for it, reused by later pages while its inputs are the same (routes.ts). */
  page?: { key: string; catalog: object; sql: PageSql };
}

export interface SnapshotOptions {
  /** How long a cursor stays valid. */
  ttlMs: number;
  /** Snapshots kept (least recently used dropped first). */
  max: number;
  /** A first page within this long of an identical one reuses its ranking (0: never). */
  reuseMs: number;
}

const CURSOR = /^([A-Za-z0-9_-]{22})\.([0-9]{1,7})\.([A-Za-z0-9_-]{43})$/;

export class SnapshotStore {
  private readonly key = randomBytes(32);
  private readonly byId = new Map<string, Snapshot>();
  private readonly recent = new Map<string, Snapshot>();
  private readonly building = new Map<string, Promise<Snapshot>>();
  private epoch = 0;

  constructor(private readonly opts: SnapshotOptions) {}

  /**
   * The snapshot for a first page: a recent identical one (same owner, profile, filter and query), the
   * one being built for a concurrent identical request, or a new one from `build`. A recent one past half
   * its reuse window is still answered, and its successor built meanwhile (refresh ahead): a shared
   * ranking is never older than the window, and requests do not wait for its rebuilds.
   */
  async obtain(reuseKey: string | null, build: () => Promise<Omit<Snapshot, 'id' | 'createdAt'>>): Promise<Snapshot> {
    const now = Date.now();
    if (reuseKey !== null && this.opts.reuseMs > 0) {
      const hit = this.recent.get(reuseKey);
      const pending = this.building.get(reuseKey);
      if (hit && now - hit.createdAt <= this.opts.reuseMs && this.byId.has(hit.id)) {
        if (!pending && now - hit.createdAt > this.opts.reuseMs / 2) this.start(reuseKey, build).catch(() => {});
        return this.touch(hit);
      }
      if (pending) return pending;
    }
    return this.start(reuseKey, build);
  }

  private start(reuseKey: string | null, build: () => Promise<Omit<Snapshot, 'id' | 'createdAt'>>): Promise<Snapshot> {
    const epoch = this.epoch;
    // A build that finishes after clear() answers its own request but is not offered to others.
    const p = build().then((s) => this.add(epoch === this.epoch ? reuseKey : null, s));
    if (reuseKey !== null) {
      this.building.set(reuseKey, p);
      const done = () => { if (this.building.get(reuseKey) === p) this.building.delete(reuseKey); };
      p.then(done, done);
    }
    return p;
  }

  private add(reuseKey: string | null, s: Omit<Snapshot, 'id' | 'createdAt'>): Snapshot {
    const snap: Snapshot = { ...s, id: randomBytes(16).toString('base64url'), createdAt: Date.now() };
    this.byId.set(snap.id, snap);
    if (reuseKey !== null) this.recent.set(reuseKey, snap);
    while (this.byId.size > this.opts.max) this.byId.delete(this.byId.keys().next().value as string);
    if (this.recent.size > this.opts.max) this.recent.clear();
    return snap;
  }

  private touch(s: Snapshot): Snapshot {
    this.byId.delete(s.id);
    this.byId.set(s.id, s);
    return s;
  }

  private sign(id: string, offset: number, owner: string): string {
    return createHmac('sha256', this.key).update(`${id}.${offset}.${owner}`).digest('base64url');
  }

  cursor(s: Snapshot, offset: number): string {
    return `${s.id}.${offset}.${this.sign(s.id, offset, s.owner)}`;
  }

  /** The snapshot and offset of a cursor presented by `owner`; an error text when it is not valid. */
  resolve(cursor: string, owner: string, profile: string): { snap: Snapshot; offset: number } | { error: 'invalid' | 'expired' } {
    const m = cursor.length < 100 ? CURSOR.exec(cursor) : null;
    if (!m) return { error: 'invalid' };
    const [, id, off, sig] = m;
    const offset = Number(off);
    const expected = Buffer.from(this.sign(id, offset, owner));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { error: 'invalid' };
    const snap = this.byId.get(id);
    if (!snap || Date.now() - snap.createdAt > this.opts.ttlMs) {
      this.byId.delete(id);
      return { error: 'expired' };
    }
    if (snap.owner !== owner || snap.profile !== profile) return { error: 'invalid' };
    return { snap: this.touch(snap), offset };
  }

  /** Forget everything (the replica file was replaced: rowids and counters are another file's). */
  clear(): void {
    this.byId.clear();
    this.recent.clear();
    this.building.clear();
    this.epoch++;
  }
}
