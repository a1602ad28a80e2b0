// Wakes the sync engine for a schema check when PocketBase writes a migration file (it does for every
// collection change made in its dashboard) and on a timer, as a fallback to the change log, which
// already carries schema changes in commit order.
import { existsSync } from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';

export interface SchemaWatcherOptions {
  dir: string;
  watch: boolean;
  intervalMs: number;
  onChange: () => void;
}

export class SchemaWatcher {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: SchemaWatcherOptions) {}

  start(): void {
    if (this.opts.watch && existsSync(this.opts.dir)) {
      this.watcher = watch(this.opts.dir, { ignoreInitial: true, depth: 0, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 } });
      this.watcher.on('add', () => this.opts.onChange());
      this.watcher.on('change', () => this.opts.onChange());
      this.watcher.on('unlink', () => this.opts.onChange());
      this.watcher.on('error', () => { /* the periodic check still runs */ });
    }
    if (this.opts.intervalMs > 0) {
      this.timer = setInterval(() => this.opts.onChange(), this.opts.intervalMs);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.watcher?.close();
    this.watcher = null;
  }
}
