// Keeps sessions honest against PocketBase: periodically refreshes the PocketBase token behind each live
// session (which also keeps it from expiring), and checks at once the sessions of an auth record the
// replica saw change or disappear. PocketBase refusing a token ends its session. With several sidecars,
// a Redis lock lets one of them do the periodic pass.
import type { Redis } from 'ioredis';
import { Backoff } from '../../lib/backoff.js';
import { Loop } from '../../lib/lifecycle.js';
import type { Logger } from '../../lib/log.js';
import type { SessionManager } from './manager.js';

export interface ValidatorOptions {
  intervalMs: number;
  redis: Redis | null;
  log: Logger;
  prefix?: string;
}

export class SessionValidator {
  private readonly loop: Loop;

  constructor(private readonly sessions: SessionManager, private readonly opts: ValidatorOptions) {
    // A pass every intervalMs; after a failed one, a backoff delay comes on top.
    this.loop = new Loop((signal) => this.pass(signal), {
      log: opts.log, failure: 'session validation failed', backoff: new Backoff(1000, 60_000),
      intervalMs: opts.intervalMs, periodic: true,
    });
  }

  start(): void {
    if (this.opts.intervalMs > 0) this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** An auth record changed or was deleted: check its sessions now. */
  async checkRecord(collectionId: string, recordId: string): Promise<void> {
    const live = await this.sessions.store.listForRecord(collectionId, recordId, Date.now());
    await Promise.all(live.map((s) => this.sessions.refreshPb(s)));
  }

  private async takeTurn(): Promise<boolean> {
    if (!this.opts.redis) return true;
    const ok = await this.opts.redis.set(`${this.opts.prefix ?? 'hapta:'}validate-lock`, '1', 'PX', Math.max(1000, this.opts.intervalMs - 500), 'NX');
    return ok === 'OK';
  }

  private async pass(signal: AbortSignal): Promise<void> {
    if (!(await this.takeTurn())) return;
    const live = await this.sessions.store.listLive(Date.now(), 10_000);
    for (let i = 0; i < live.length && !signal.aborted; i += 8) {
      await Promise.all(live.slice(i, i + 8).map((s) => this.sessions.refreshPb(s)));
    }
  }
}
