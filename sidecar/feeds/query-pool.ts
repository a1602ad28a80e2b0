// The pool of worker threads that run feed queries (piscina), each with a read-only connection to the
// replica file. The main thread only sends SQL with bound parameters (or a ranking plan) and receives rows
// (or the packed ranking).
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { FeedProfile } from '../../config.js';
import type { RankPlan } from './feed-sql.js';
import type { RankTask, TaskResult } from './sql-worker.js';
import type { Ranked, WindowOptions } from './window.js';

/** A query failed inside SQLite (or binding); `code` is SQLite's (SQLITE_ERROR, ...). */
export class QueryError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export class QueryPool {
  private readonly pool: Piscina;
  private generation = 0;
  private path = '';

  constructor(threads = Math.max(1, Math.min(4, availableParallelism()))) {
    this.pool = new Piscina({
      filename: new URL('./sql-worker.ts', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  /** The replica file to query; call again whenever it is replaced. */
  setReplica(path: string): void {
    this.path = path;
    this.generation++;
  }

  get ready(): boolean {
    return this.path !== '';
  }

  /** Tasks waiting for a thread (for load shedding and metrics). */
  get queued(): number {
    return this.pool.queueSize;
  }

  /** Rows of `sql`; params are positional values or a single object of named ones. Throws QueryError. */
  async all<T = Record<string, unknown>>(sql: string, params: unknown[]): Promise<T[]> {
    if (!this.path) throw new QueryError('NOT_READY', 'replica not ready');
    const res = (await this.pool.run({ path: this.path, generation: this.generation, sql, params })) as TaskResult;
    if ('error' in res) throw new QueryError(res.error.code, res.error.message);
    if (!('rows' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return res.rows as T[];
  }

  /** A ranking (window.ts: candidate windows widened until exact, else the full ranking), packed. */
  async rank(profile: FeedProfile, plan: RankPlan, window?: WindowOptions): Promise<Ranked> {
    if (!this.path) throw new QueryError('NOT_READY', 'replica not ready');
    const task: RankTask = { kind: 'rank', path: this.path, generation: this.generation, profile, plan, window };
    const res = (await this.pool.run(task)) as TaskResult;
    if ('error' in res) throw new QueryError(res.error.code, res.error.message);
    if (!('ranked' in res)) throw new QueryError('UNKNOWN', 'unexpected answer from the query pool');
    return res.ranked;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
