// Keeps sessions honest against PocketBase: periodically refreshes the PocketBase token behind each live
// session (which also keeps it from expiring), and checks at once the sessions of an auth record the
// replica saw change or disappear. PocketBase refusing a token ends its session. With several sidecars,
// a Redis lock lets one of them do the periodic pass.
import type { Redis } from 'ioredis';
import { Backoff, sleep } from '../../lib/backoff.js';
import type { Logger } from '../../lib/log.js';
import type { SessionManager } from './manager.js';

export interface ValidatorOptions {
  intervalMs: number;
  redis: Redis | null;
  log: Logger;
  prefix?: string;
}

export class SessionValidator {
  private abort = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(private readonly sessions: SessionManager, private readonly opts: ValidatorOptions) {}

  start(): void {
    if (this.opts.intervalMs > 0) this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => {});
    this.loop = null;
  }

  /** An auth record changed or was deleted: check its sessions now. */
  async checkRecord(collectionId: string, recordId: string): Promise<void> {
    const live = await this.sessions.store.listForRecord(collectionId, recordId, Date.now());
    await Promise.all(live.map((s) => this.sessions.refreshPb(s)));
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(1000, 60_000);
    while (!this.abort.signal.aborted) {
      await sleep(this.opts.intervalMs, this.abort.signal);
      if (this.abort.signal.aborted) break;
      try {
        if (await this.takeTurn()) await this.pass();
        backoff.reset();
      } catch (err) {
        this.opts.log.warn('session validation failed', { error: (err as Error).message });
        await sleep(backoff.next(), this.abort.signal);
      }
    }
  }

  private async takeTurn(): Promise<boolean> {
    if (!this.opts.redis) return true;
    const ok = await this.opts.redis.set(`${this.opts.prefix ?? 'hapta:'}validate-lock`, '1', 'PX', Math.max(1000, this.opts.intervalMs - 500), 'NX');
    return ok === 'OK';
  }

  private async pass(): Promise<void> {
    const live = await this.sessions.store.listLive(Date.now(), 10_000);
    for (let i = 0; i < live.length && !this.abort.signal.aborted; i += 8) {
      await Promise.all(live.slice(i, i + 8).map((s) => this.sessions.refreshPb(s)));
    }
  }
}
