// GET /api/hapta/health and GET /api/hapta/metrics.
//
// Health is what a balancer's check reads (HAProxy: `option httpchk GET /api/hapta/health`): 503 until
// the first bootstrap completes, 200 while the replica keeps up with PocketBase's change log, and 503
// again while it lags more than HAPTA_HEALTH_MAX_LAG_MS, so a lagging sidecar leaves the pool and comes
// back by itself once it has caught up.
//
// Lag, measured in the sidecar's own clock. A health request (at most one a second starts one) asks the
// sync engine for a read of the log that starts after that instant (Replicator.syncAfterNow resolves
// once such a read is applied: the replica then holds every change committed before the request). The
// sidecar is behind by the age of the oldest such request not yet answered, less what applied changes
// prove: a batch whose newest change was committed at `at` (PocketBase's clock) shows that everything up
// to `at` is held, which keeps a busy log (where one run of the reader can last long) from counting as
// behind. So the bound fails exactly when the reader has not completed a read it was asked for, and has
// applied nothing newer, for longer than the bound: reads hanging or failing, a backlog it cannot clear,
// a rebuild under way. A held or failing read while PocketBase answers its own health route is a
// problem of this sidecar: 503 `lagging`. When PocketBase does not answer, every sidecar is in the same
// state, and taking all of them out would only stop the reads their replicas can still serve: 200
// `degraded`. A sidecar shutting down (SIGTERM) answers 503 `stopping` while it finishes what is under way.
import type { Context } from 'koa';
import type { Replicator } from '../replica/replicator.js';
import type { Metrics } from './metrics.js';

export interface HealthOptions {
  /** The bound (ms); 0 turns the lag check off (200 once ready). */
  maxLagMs: number;
  /** PocketBase's base URL: its /api/health tells a lagging sidecar from an unreachable PocketBase. */
  pbUrl: string;
  /** True once the sidecar is shutting down: 503 `stopping`. */
  draining?: () => boolean;
}

/** At most one read of the log requested per this many ms (HAProxy checks every second). */
const PROBE_INTERVAL_MS = 1000;
/** How long the first health request after start waits for its read (so it answers what it knows). */
const FIRST_PROBE_WAIT_MS = 1000;
const REACHABILITY_TTL_MS = 1000;
const REACHABILITY_TIMEOUT_MS = 1000;

/** Tracks how far behind the change log the replica may be (see the header). */
export class LagTracker {
  private pending: { since: number; store: unknown } | null = null;
  private lastProbeAt = -Infinity;
  /** The store a requested read has been answered for (a rebuilt or reopened replica starts over). */
  private answeredFor: unknown = null;
  /** Commit time (PocketBase's clock, ms) of the newest change applied. */
  private newestAppliedAt = -Infinity;
  private reachable: { at: number; ok: boolean } | null = null;
  private reachCheck: Promise<boolean> | null = null;

  constructor(private readonly replicator: Replicator, private readonly opts: HealthOptions) {
    replicator.onApplied((changes) => {
      for (const ch of changes) if (ch.at > this.newestAppliedAt) this.newestAppliedAt = ch.at;
    });
  }

  /** Asks for a read of the log unless one is outstanding or was asked for within the interval. */
  private probe(now: number): Promise<void> | null {
    if (this.pending) return null;
    if (now - this.lastProbeAt < PROBE_INTERVAL_MS && this.answeredFor === this.replicator.store) return null;
    const p = { since: now, store: this.replicator.store };
    this.pending = p;
    this.lastProbeAt = now;
    return this.replicator.syncAfterNow().then(() => {
      if (this.pending === p) this.pending = null;
      this.answeredFor = p.store;
    });
  }

  /** How long a requested read has gone unanswered, less what applied changes prove (ms). */
  behindMs(now = Date.now()): number {
    if (!this.pending) return 0;
    return Math.max(0, now - Math.max(this.pending.since, this.newestAppliedAt));
  }

  /** The state to report; may wait briefly for the first read after start. */
  async check(): Promise<{ behindMs: number; lagging: boolean; pocketbaseReachable: boolean | null }> {
    if (this.opts.maxLagMs <= 0) return { behindMs: 0, lagging: false, pocketbaseReachable: null };
    const probing = this.probe(Date.now());
    if (probing && this.answeredFor !== this.replicator.store) {
      // Nothing known yet about this replica (a restart resumes a file that may be far behind).
      let t: NodeJS.Timeout | undefined;
      await Promise.race([probing, new Promise((r) => (t = setTimeout(r, Math.min(FIRST_PROBE_WAIT_MS, this.opts.maxLagMs))))]);
      clearTimeout(t);
    }
    const unknown = this.answeredFor !== this.replicator.store;
    const behindMs = this.behindMs();
    if (behindMs <= this.opts.maxLagMs && !unknown) return { behindMs, lagging: false, pocketbaseReachable: null };
    const pocketbaseReachable = await this.pocketbaseReachable();
    return { behindMs, lagging: pocketbaseReachable, pocketbaseReachable };
  }

  private async pocketbaseReachable(): Promise<boolean> {
    const now = Date.now();
    if (this.reachable && now - this.reachable.at < REACHABILITY_TTL_MS) return this.reachable.ok;
    this.reachCheck ??= fetch(`${this.opts.pbUrl}/api/health`, { signal: AbortSignal.timeout(REACHABILITY_TIMEOUT_MS) })
      .then(async (res) => {
        await res.arrayBuffer();
        return res.ok;
      }, () => false)
      .then((ok) => {
        this.reachable = { at: Date.now(), ok };
        this.reachCheck = null;
        return ok;
      });
    return this.reachCheck;
  }
}

export function healthRoute(replicator: Replicator, opts: HealthOptions) {
  const tracker = new LagTracker(replicator, opts);
  return async function health(ctx: Context): Promise<void> {
    const ready = replicator.ready;
    const lag = ready ? await tracker.check() : { behindMs: 0, lagging: false, pocketbaseReachable: null };
    const stopping = opts.draining?.() === true;
    const ok = ready && !lag.lagging && !stopping;
    ctx.status = ok ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      status: stopping ? 'stopping' : !ready ? 'starting' : lag.lagging ? 'lagging' : lag.pocketbaseReachable === false ? 'degraded' : 'ok',
      replica: {
        ready,
        lagMs: replicator.lagMs,
        collections: replicator.store?.collections().length ?? 0,
        seq: replicator.seq,
      },
      lag: { behindMs: lag.behindMs, maxMs: opts.maxLagMs, pocketbaseReachable: lag.pocketbaseReachable },
    };
  };
}

export function metricsRoute(metrics: Metrics, replicator: Replicator) {
  return async function metricsHandler(ctx: Context): Promise<void> {
    metrics.replicaSeq.set(replicator.seq);
    ctx.set('Content-Type', metrics.registry.contentType);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await metrics.registry.metrics();
  };
}
