// Read-your-writes and monotonic reads, without a timeout hole. Each caller carries a watermark: the
// change-log position (seq in one PocketBase database) of its last acknowledged write and of the newest
// state it has read. A read is answered from the replica only once the replica has reached the caller's
// watermark; if it cannot within the bound, the read goes to PocketBase (counted), never stale.
// - A session's watermark lives with the session: in memory for a lone sidecar, in the shared session
//   store (Redis) when sidecars share it, so any sidecar honours it.
// - A caller without a session gets the position in `X-Hapta-Position` and may send it back.
// - A write is answered as soon as PocketBase acknowledges it: the log head is read then (one small
//   request), not waited for.
import type { Context } from 'koa';
import type { Logger } from '../lib/log.js';
import type { ChangeSource, LogHead } from '../replica/change-source.js';
import type { Replicator } from '../replica/replicator.js';
import { Lru } from './lru.js';
import type { Metrics } from './metrics.js';
import type { Authenticated } from './sessions/manager.js';
import type { SessionStore } from './sessions/store.js';

export const POSITION_HEADER = 'X-Hapta-Position';

export interface Position { seq: number; instance: string }

/** A watermark whose position is not known (the head could not be read after a write). */
const UNKNOWN = 999_999_999_999_999;

/** `seq@instance`; a bare number is a position in the replica's own database. */
export function parsePosition(s: string | undefined, instance: string | null): Position | null {
  if (!s) return null;
  const m = /^([0-9]{1,15})(?:@([A-Za-z0-9_-]{1,64}))?$/.exec(s.trim());
  if (!m) return null;
  return { seq: Number(m[1]), instance: m[2] ?? instance ?? '' };
}

export function formatPosition(p: Position): string {
  return `${p.seq}@${p.instance}`;
}

export interface ConsistencyOptions {
  replicator: Replicator;
  source: Pick<ChangeSource, 'readHead'>;
  /** The shared session store when sidecars share sessions (Redis); null keeps watermarks in memory. */
  shared: (SessionStore & { raisePosition(key: string, value: string, ttlMs: number): Promise<boolean> }) | null;
  /** How long a read may wait for the replica before it is answered by PocketBase. */
  waitMs: number;
  /** How long a watermark is kept after its last raise. */
  ttlMs: number;
  metrics: Metrics;
  log: Logger;
}

export class Consistency {
  private readonly local = new Lru<string, Position>(200_000);
  /** Writes whose position came from the head read behind them on their connection (no request after the answer). */
  pairedHeads = 0;
  /** Paired head reads that failed or were refused (pb_hooks: run before their write was done): read again after the answer. */
  pairedHeadsMissed = 0;

  constructor(private readonly opts: ConsistencyOptions) {}

  private key(sid: string): string {
    return `wm:${sid}`;
  }

  private async watermark(sid: string): Promise<Position | null> {
    const mine = this.local.get(sid) ?? null;
    if (!this.opts.shared) return mine;
    const stored = parsePosition((await this.opts.shared.getTemp(this.key(sid))) ?? undefined, null);
    if (!stored) return mine;
    if (!mine || mine.instance !== stored.instance || stored.seq > mine.seq) return stored;
    return mine;
  }

  /**
   * Raises a session's watermark to `p`, never lowering it: the local comparison and update are one
   * synchronous step, and the shared one is one atomic step in Redis, so concurrent requests of one
   * session (a read answered at an older position, a write at a newer one) cannot lower it.
   */
  async raise(sid: string, p: Position): Promise<void> {
    const mine = this.local.get(sid);
    if (!mine || mine.instance !== p.instance || mine.seq < p.seq) this.local.set(sid, p);
    await this.opts.shared?.raisePosition(this.key(sid), formatPosition(p), this.opts.ttlMs);
  }

  /** Replaces an unknown or foreign watermark by a known position of this replica's database. */
  private async reset(sid: string, p: Position): Promise<void> {
    this.local.set(sid, p);
    await this.opts.shared?.putTemp(this.key(sid), formatPosition(p), this.opts.ttlMs);
  }

  /** The log head now, or null when PocketBase cannot say (the caller then waits for a fresh log read). */
  private async head(): Promise<Position | null> {
    try {
      const h = await this.opts.source.readHead();
      return { seq: h.head, instance: h.instance };
    } catch (err) {
      this.opts.log.warn('log head unavailable after a write', { error: (err as Error).message });
      return null;
    }
  }

  /**
   * After a write acknowledged by PocketBase for this caller: the caller's watermark becomes the log head
   * (at least the write's own position), and the answer carries it.
   */
  async afterWrite(ctx: Context, sid = (ctx.state.auth as Authenticated | undefined)?.session.sid, paired: Promise<LogHead> | null = null): Promise<void> {
    // The head read behind the write on its connection (at least the write's position), or read now.
    const read = paired ? await paired.then((r) => ({ seq: r.head, instance: r.instance }), () => null) : null;
    if (read) this.pairedHeads++;
    else if (paired) this.pairedHeadsMissed++;
    const h = read ?? await this.head();
    if (!h) {
      // Unknown: this caller's next reads need a read of the log that starts after they arrive.
      if (sid) await this.raise(sid, { seq: UNKNOWN, instance: this.opts.replicator.store?.instance ?? '' });
      return;
    }
    ctx.set(POSITION_HEADER, formatPosition(h));
    if (sid) await this.raise(sid, h);
  }

  /**
   * After a read PocketBase answered for a caller who carries a watermark (a fallback): what it saw is at
   * most the log head read now, so its next reads, wherever they go, are never older.
   */
  async afterUpstreamRead(ctx: Context): Promise<void> {
    const sid = (ctx.state.auth as Authenticated | undefined)?.session.sid;
    if (!sid && !ctx.get(POSITION_HEADER)) return;
    await this.afterWrite(ctx, sid);
  }

  /**
   * Before a replica read: true once the replica has reached what this caller has written or read (its
   * session's watermark, or the position it sent); false when it did not within the bound, and the read
   * must go to PocketBase.
   */
  async readable(ctx: Context): Promise<boolean> {
    const store = this.opts.replicator.store;
    if (!store) return false;
    const instance = store.instance ?? '';
    const sid = (ctx.state.auth as Authenticated | undefined)?.session.sid;
    let need = sid ? await this.watermark(sid) : null;
    const sent = parsePosition(ctx.get(POSITION_HEADER) || undefined, instance);
    if (sent && (!need || (sent.instance === need.instance && sent.seq > need.seq))) need = sent;
    if (!need) return true;
    const started = performance.now();
    let ok: boolean;
    if (need.instance !== instance || need.seq === UNKNOWN) {
      // Another database (PocketBase replaced) or an unknown head: a log read that starts now covers it.
      ok = await this.freshRead();
      if (ok && sid) await this.reset(sid, { seq: this.opts.replicator.seq, instance: this.opts.replicator.store?.instance ?? '' });
    } else {
      ok = await this.reach(need.seq);
    }
    if (ok && need.seq !== UNKNOWN && this.opts.replicator.seq < need.seq) ok = false;
    this.opts.metrics.readWait.observe(performance.now() - started);
    return ok;
  }

  /**
   * After a replica read: the newest state this caller may have seen. That is the replica's upper bound,
   * not its position: a record can be newer than the last change applied (written while the log was
   * read), and another sidecar at that position would show it older.
   */
  async afterRead(ctx: Context): Promise<void> {
    const store = this.opts.replicator.store;
    if (!store) return;
    const p = { seq: this.opts.replicator.upper, instance: store.instance ?? '' };
    ctx.set(POSITION_HEADER, formatPosition(p));
    const sid = (ctx.state.auth as Authenticated | undefined)?.session.sid;
    if (sid) await this.raise(sid, p);
  }

  private timeout<T>(p: Promise<T>, fallback: T): Promise<T> {
    let t: NodeJS.Timeout;
    return Promise.race([p, new Promise<T>((res) => (t = setTimeout(() => res(fallback), this.opts.waitMs)))]).finally(() => clearTimeout(t));
  }

  private freshRead(): Promise<boolean> {
    return this.timeout(this.opts.replicator.syncAfterNow().then(() => true), false);
  }

  /** Resolves true once the replica has applied `seq`, false after the bound. */
  private reach(seq: number): Promise<boolean> {
    const r = this.opts.replicator;
    if (r.seq >= seq) return Promise.resolve(true);
    r.announced(seq);
    let off = () => {};
    const reached = new Promise<boolean>((resolve) => {
      off = r.onApplied(() => {
        if (r.seq >= seq) resolve(true);
      });
    });
    return this.timeout(reached, false).finally(() => off());
  }
}
