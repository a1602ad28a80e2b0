// The pool of worker threads that run feed queries (piscina), each with a read-only connection to the
// replica file. The main thread only sends SQL with bound parameters and receives rows.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';

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

  all<T = Record<string, unknown>>(sql: string, params: unknown[]): Promise<T[]> {
    if (!this.path) return Promise.reject(new Error('replica not ready'));
    return this.pool.run({ path: this.path, generation: this.generation, sql, params }) as Promise<T[]>;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
