// The run/stop lifecycle of every background loop: runs a body again and again until stop(), hands it
// an AbortSignal, logs a failed run (its message only) and waits a Backoff delay before the next one,
// pauses between runs that succeeded, and lets wake() end that pause early.
import { Backoff, sleep } from './backoff.js';
import type { Level, Logger } from './log.js';

/** One run of the loop; it should return soon after `signal` aborts. Throwing counts as a failure. */
export type LoopBody = (signal: AbortSignal) => Promise<void> | void;

export interface LoopOptions {
  log: Logger;
  /** The message logged for a failed run, with `{ error: message }`. */
  failure: string;
  /** The level of that line (default warn). */
  failureLevel?: Level;
  /** Delays after failed runs; reset by a run that succeeds. */
  backoff?: Backoff;
  /** The pause after a run that succeeded (ms); wake() ends it early. */
  intervalMs?: number;
  /**
   * A periodic task: the pause comes before every run, the first one and those after a failure included
   * (the backoff delay adds to it). Otherwise the first run starts at once and a failed run is retried
   * right after its backoff delay.
   */
  periodic?: boolean;
}

export class Loop {
  private readonly backoff: Backoff;
  private abort: AbortController | null = null;
  private done: Promise<void> = Promise.resolve();
  private woken = false;
  private wakeUp: (() => void) | null = null;

  constructor(private readonly body: LoopBody, private readonly opts: LoopOptions) {
    this.backoff = opts.backoff ?? new Backoff();
  }

  /** Starts the loop unless it runs; started while a stop() is under way, it begins once that is done. */
  start(): void {
    if (this.abort && !this.abort.signal.aborted) return;
    const abort = new AbortController();
    this.abort = abort;
    // A body that throws is caught in run(); this only keeps stop() from ever rejecting.
    this.done = this.done.then(() => this.run(abort.signal)).catch(() => {});
  }

  /** Aborts the body's signal and resolves once the body has returned. Safe to call at any time. */
  stop(): Promise<void> {
    this.abort?.abort();
    return this.done;
  }

  /** Ends the pause now, or skips the next one when a run is under way (never a backoff delay). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { intervalMs = 0, periodic = false } = this.opts;
    let pause = periodic;
    while (!signal.aborted) {
      if (pause) await this.pause(intervalMs, signal);
      if (signal.aborted) break;
      this.woken = false;
      try {
        await this.body(signal);
        this.backoff.reset();
        pause = true;
      } catch (err) {
        if (signal.aborted) break;
        this.opts.log[this.opts.failureLevel ?? 'warn'](this.opts.failure, { error: err instanceof Error ? err.message : String(err) });
        await sleep(this.backoff.next(), signal);
        pause = periodic;
      }
    }
  }

  private pause(ms: number, signal: AbortSignal): Promise<void> {
    if (this.woken) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wakeUp = done;
    });
  }
}
