// Prometheus metrics of the sidecar (served at /api/hapta/metrics). One registry per sidecar instance,
// so tests can run several sidecars in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WindowStats } from './feeds/window.js';

/**
 * How a feed ranking was obtained: `window` (the first candidate window was accepted), `widened` (a wider
 * one was), `gave_up` (windows were tried, then every item was scored), `full` (every item was scored
 * without trying a window: the profile or the request has none, or the feed is too small for one).
 */
export type RankingResult = 'window' | 'widened' | 'gave_up' | 'full';

export function rankingResult(stats: WindowStats): RankingResult {
  if (stats.result === 'window') return stats.attempts > 1 ? 'widened' : 'window';
  return stats.attempts > 0 ? 'gave_up' : 'full';
}

export class Metrics {
  readonly registry = new Registry();
  readonly upstreamRequests = new Counter({
    name: 'hapta_upstream_requests_total',
    help: 'HTTP requests the sidecar sent to PocketBase, by purpose.',
    labelNames: ['purpose'] as const,
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: 'hapta_requests_total',
    help: 'Requests the sidecar answered, by route class and whether PocketBase was involved.',
    labelNames: ['route', 'upstream'] as const,
    registers: [this.registry],
  });
  readonly replicaSeq = new Gauge({
    name: 'hapta_replica_seq',
    help: 'Last change-log sequence applied to the replica.',
    registers: [this.registry],
  });
  readonly replicaLag = new Histogram({
    name: 'hapta_replica_lag_ms',
    help: 'Time from a change committed in PocketBase to its batch applied in the replica (ms).',
    buckets: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
    registers: [this.registry],
  });
  readonly replicaReads = new Counter({
    name: 'hapta_replica_reads_total',
    help: 'Change-log batches read for the live replica, by how: `ahead` (read by the sync thread on an announcement, before the engine asked), `thread` (asked of the sync thread) or `main` (read by the main thread: no sync thread, or while it restarts).',
    labelNames: ['by'] as const,
    registers: [this.registry],
  });
  readonly replicaChanges = new Counter({
    name: 'hapta_replica_changes_total',
    help: 'Change-log rows applied to the replica.',
    registers: [this.registry],
  });

  readonly tableCopies = new Counter({
    name: 'hapta_replica_table_copies_total',
    help: 'Whole-collection copies into the replica (bootstrap, schema changes), by collection.',
    labelNames: ['collection'] as const,
    registers: [this.registry],
  });

  readonly readFallbacks = new Counter({
    name: 'hapta_read_fallback_total',
    help: 'Reads of replicated collections forwarded to PocketBase because the replica could not answer them with certainty, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly listReads = new Counter({
    name: 'hapta_list_reads_total',
    help: 'Records lists answered from the replica with read threads on, by where they ran: `main` (a shape measured cheaper than the trip to a read thread) or `thread`.',
    labelNames: ['placement'] as const,
    registers: [this.registry],
  });
  readonly feedPages = new Counter({
    name: 'hapta_feed_pages_total',
    help: 'Feed pages answered, by profile and whether the page was kept (answered again without rendering) or rendered.',
    labelNames: ['profile', 'result'] as const,
    registers: [this.registry],
  });
  readonly writesRejected = new Counter({
    name: 'hapta_writes_rejected_total',
    help: 'Writes answered by the sidecar without reaching PocketBase (invalid, hook rejection, too large), by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly readWait = new Histogram({
    name: 'hapta_read_wait_ms',
    help: "Time a read by a caller with a watermark waited for the replica to reach it (read-your-writes, monotonic reads).",
    buckets: [0.1, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000],
    registers: [this.registry],
  });

  readonly feedRankings = new Counter({
    name: 'hapta_feed_rankings_total',
    help: 'Feed rankings run (a shared first page or a cursor reuses one), by profile and how each was obtained: window, widened, gave_up or full.',
    labelNames: ['profile', 'result'] as const,
    registers: [this.registry],
  });
  readonly feedRankingTime = new Histogram({
    name: 'hapta_feed_ranking_ms',
    help: 'Time of one feed ranking, its wait for a pool thread included (ms), by profile.',
    labelNames: ['profile'] as const,
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'hapta_' });
  }

  /** Counts one feed ranking (the feed routes' onRanked). */
  feedRanked(profile: string, stats: WindowStats, ms: number): void {
    this.feedRankings.inc({ profile, result: rankingResult(stats) });
    this.feedRankingTime.observe({ profile }, ms);
  }
}
