// The pools of worker threads that run feed queries (piscina), each thread with a read-only connection to
// the replica file. The main thread only sends SQL with bound parameters (or a ranking plan) and receives
// rows (or the packed ranking). Two lanes, each a pool with its own queue: `feeds` (the rankings of the
// profiles without text, their requester filters) and `search` (everything of a request with a search
// text), so a burst of searches never queues the feeds behind it, nor the feeds the searches.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { FeedProfile } from '../../config.js';
import { compiled } from '../../lib/runtime.js';
import type { RankPlan } from './feed-sql.js';
import type { FilterTask, RankTask, TaskResult } from './sql-worker.js';
import type { Ranked, WindowOptions } from './window.js';

/** A query failed inside SQLite (or binding); `code` is SQLite's (SQLITE_ERROR, ...). */
export class QueryError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export type Lane = 'feeds' | 'search';

/** What a requester filter keeps of a shared ranking (sql-worker.ts). */
export interface Filtered {
  /** Positions (ascending) of the ranked items the requester may see. */
  keep: Uint32Array;
  /** How many items the requester's own ranking holds (its visible items, at most the count's limit). */
  total: number;
}

export class QueryPool {
  private readonly pools: Record<Lane, Piscina>;
  private generation = 0;
  private path = '';

  /** `threads` for the feeds lane (default: the cores, 1 to 4); `searchThreads` for the search lane (default 1). */
  constructor(threads = Math.max(1, Math.min(4, availableParallelism())), searchThreads = 1) {
    const pool = (n: number) => new Piscina({
      filename: new URL(`./sql-worker.${compiled ? 'js' : 'ts'}`, import.meta.url).href,
      // Threads start with the first tasks and then stay: a sidecar whose clients use no feed or search
      // holds none (about 25 MB each), and a busy one never pays a thread's start twice.
      minThreads: 0,
      maxThreads: n,
      idleTimeout: Infinity,
      // A few tasks waiting at each thread: it runs them back to back, instead of idling until the main
      // thread, busy answering requests, has read the last result and sent the next task.
      concurrentTasksPerWorker: 4,
    });
    this.pools = { feeds: pool(threads), search: pool(Math.max(1, searchThreads)) };
  }

  /** The replica file to query; call again whenever it is replaced. */
  setReplica(path: string): void {
    this.path = path;
    this.generation++;
  }

  get ready(): boolean {
    return this.path !== '';
  }

  /** Tasks waiting for a thread, both lanes (for load shedding and metrics). */
  get queued(): number {
    return this.pools.feeds.queueSize + this.pools.search.queueSize;
  }

  private async run(lane: Lane, task: unknown): Promise<TaskResult> {
    if (!this.path) throw new QueryError('NOT_READY', 'replica not ready');
    const res = (await this.pools[lane].run(task)) as TaskResult;
    if ('error' in res) throw new QueryError(res.error.code, res.error.message);
    return res;
  }

  /** Rows of `sql`; params are positional values or a single object of named ones. Throws QueryError. */
  async all<T = Record<string, unknown>>(sql: string, params: unknown[], lane: Lane = 'feeds'): Promise<T[]> {
    const res = await this.run(lane, { path: this.path, generation: this.generation, sql, params });
    if (!('rows' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return res.rows as T[];
  }

  /** A ranking (window.ts: candidate windows widened until exact, else the full ranking), packed. */
  async rank(profile: FeedProfile, plan: RankPlan, window?: WindowOptions, lane: Lane = 'feeds'): Promise<Ranked> {
    return (await this.rankFiltered(profile, plan, window, undefined, lane)).ranked;
  }

  /** A ranking, and with `filter` a requester's filter over it (one task: one trip to a thread). */
  async rankFiltered(profile: FeedProfile, plan: RankPlan, window: WindowOptions | undefined, filter: RankTask['filter'], lane: Lane = 'feeds'): Promise<{ ranked: Ranked; kept?: Filtered }> {
    const task: RankTask = { kind: 'rank', path: this.path, generation: this.generation, profile, plan, window, filter };
    const res = await this.run(lane, task);
    if (!('ranked' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return { ranked: res.ranked, kept: res.kept };
  }

  /** Which of a shared ranking's items (by rowid, best first) a requester keeps, and their own count. */
  async filter(task: Omit<FilterTask, 'kind' | 'path' | 'generation'>, lane: Lane = 'feeds'): Promise<Filtered> {
    const res = await this.run(lane, { ...task, kind: 'filter', path: this.path, generation: this.generation } satisfies FilterTask);
    if (!('keep' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return { keep: res.keep, total: res.total };
  }

  async close(): Promise<void> {
    await Promise.all([this.pools.feeds.destroy(), this.pools.search.destroy()]);
  }
}
