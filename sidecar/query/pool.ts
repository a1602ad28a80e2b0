// The pools of worker threads that run replica queries (piscina), each thread with a read-only connection
// to the replica file. The main thread only sends SQL with bound parameters (or a ranking plan, or a
// records list) and receives rows (or the packed ranking, or the rendered answer). Three lanes, each a
// pool with its own queue: `feeds` (the rankings of the profiles without text, their requester filters),
// `search` (everything of a request with a search text, its feed pages included) and `reads` (records
// lists), so a burst of one kind never queues the others behind it.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { FeedProfile } from '../../config.js';
import { compiled } from '../../lib/runtime.js';
import type { RankPlan } from '../feeds/feed-sql.js';
import type { PageResult, PageTask, ReadResult, ReadTask } from '../reads/task.js';
import type { FilterTask, PageTaskMessage, RankTask, ReadTaskMessage, TaskResult } from './worker.js';
import type { Ranked, WindowOptions } from '../feeds/window.js';

/** A query failed inside SQLite (or binding); `code` is SQLite's (SQLITE_ERROR, ...). */
export class QueryError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export type Lane = 'feeds' | 'search' | 'reads';

/** What a requester filter keeps of a shared ranking (worker.ts). */
export interface Filtered {
  /** Positions (ascending) of the ranked items the requester may see. */
  keep: Uint32Array;
  /** How many items the requester's own ranking holds (its visible items, at most the count's limit); -1: not counted. */
  total: number;
}

export class QueryPool {
  private readonly pools: Record<Lane, Piscina>;
  private generation = 0;
  private path = '';
  private closed = false;
  /** No read threads: records lists run on the caller's thread, on its connection. */
  readonly inline: boolean;

  /**
   * `threads` for the feeds lane (default: the cores, 1 to 4); `searchThreads` for the search lane
   * (default 1); `readThreads` for the reads lane (default: the cores, 1 to 4; 0: none, the caller runs
   * its lists itself, see `inline`); `nice`: the reads lane's threads' scheduling priority, `feedNice`
   * the feeds and search lanes' (worker.ts).
   */
  constructor(threads = defaultThreads(), searchThreads = 1, readThreads = defaultThreads(), nice = 0, feedNice = nice) {
    const pool = (lane: Lane, n: number, laneNice: number, perThread = 4) => new Piscina({
      filename: new URL(`./worker.${compiled ? 'js' : 'ts'}`, import.meta.url).href,
      // Threads start with the first tasks and then stay: a sidecar whose clients use no feed or search
      // holds none (about 25 MB each), and a busy one never pays a thread's start twice.
      minThreads: 0,
      maxThreads: n,
      idleTimeout: Infinity,
      // A few tasks waiting at each thread: it runs them back to back, instead of idling until the main
      // thread, busy answering requests, has read the last result and sent the next task.
      concurrentTasksPerWorker: perThread,
      workerData: { nice: laneNice, lane },
    });
    this.pools = { feeds: pool('feeds', threads, feedNice), search: pool('search', Math.max(1, searchThreads), feedNice), reads: pool('reads', Math.max(1, readThreads), nice) };
    this.inline = readThreads === 0;
  }

  /** The replica file to query; call again whenever it is replaced. */
  setReplica(path: string): void {
    this.path = path;
    this.generation++;
  }

  get ready(): boolean {
    return this.path !== '';
  }

  /** Tasks waiting for a thread, all lanes (for load shedding and metrics). */
  get queued(): number {
    return Object.values(this.pools).reduce((n, p) => n + p.queueSize, 0);
  }

  private async run(lane: Lane, task: unknown): Promise<TaskResult> {
    if (!this.path) throw new QueryError('NOT_READY', 'replica not ready');
    if (this.closed) throw new QueryError('THREAD', 'the query pool is closed');
    let res: TaskResult;
    try {
      res = (await this.pools[lane].run(task)) as TaskResult;
    } catch (e) {
      // The pool itself failed (a thread crashed, the pool is closing): the caller decides, as for SQLite.
      throw new QueryError('THREAD', String((e as Error)?.message ?? e));
    }
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

  /** A records list answered whole on a read thread (sidecar/reads/task.ts). Throws QueryError. */
  async read(task: ReadTask): Promise<ReadResult> {
    const res = await this.run('reads', { ...task, kind: 'read', path: this.path, generation: this.generation } satisfies ReadTaskMessage);
    if (!('read' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return res.read;
  }

  /** A feed page's records rendered on a thread (sidecar/reads/task.ts). Throws QueryError. */
  async page(task: PageTask, lane: Lane): Promise<PageResult> {
    const res = await this.run(lane, { ...task, kind: 'page', path: this.path, generation: this.generation } satisfies PageTaskMessage);
    if (!('page' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return res.page;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(Object.values(this.pools).map((p) => p.destroy()));
  }
}

function defaultThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}
