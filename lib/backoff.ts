// Capped exponential backoff with jitter, reset on success; shared by every background loop.

export class Backoff {
  private attempt = 0;

  constructor(private readonly minMs = 100, private readonly maxMs = 10_000) {}

  /** The delay before the next retry; grows until reset(). */
  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt++;
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** A sleep that resolves early when the signal aborts (used by loops to stop promptly). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
