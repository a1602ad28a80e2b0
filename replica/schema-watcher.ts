// Wakes the sync engine for a schema check when PocketBase writes a migration file (it does for every
// collection change made in its dashboard) and on a timer, as a fallback to the change log, which
// already carries schema changes in commit order.
import { existsSync } from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import { Loop } from '../lib/lifecycle.js';
import { silentLogger, type Logger } from '../lib/log.js';

export interface SchemaWatcherOptions {
  dir: string;
  watch: boolean;
  intervalMs: number;
  onChange: () => void;
  /** Where a throwing onChange on the timer is logged (default: nowhere). */
  log?: Logger;
}

export class SchemaWatcher {
  private watcher: FSWatcher | null = null;
  private readonly timer: Loop;

  constructor(private readonly opts: SchemaWatcherOptions) {
    this.timer = new Loop(() => this.opts.onChange(), {
      log: opts.log ?? silentLogger, failure: 'schema check failed', intervalMs: opts.intervalMs, periodic: true,
    });
  }

  start(): void {
    if (this.opts.watch && existsSync(this.opts.dir) && !this.watcher) {
      this.watcher = watch(this.opts.dir, { ignoreInitial: true, depth: 0, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 } });
      this.watcher.on('add', () => this.opts.onChange());
      this.watcher.on('change', () => this.opts.onChange());
      this.watcher.on('unlink', () => this.opts.onChange());
      this.watcher.on('error', () => { /* the periodic check still runs */ });
    }
    if (this.opts.intervalMs > 0) this.timer.start();
  }

  async stop(): Promise<void> {
    await this.timer.stop();
    await this.watcher?.close();
    this.watcher = null;
  }
}
