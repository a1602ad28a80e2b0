// Listens to PocketBase's realtime stream as the sidecar's superuser, subscribed to the topic
// "hapta/changes" on which the hook announces the change-log head after each record write, and wakes
// the sync engine unless it has already read that far. Announcements are never applied: the change log
// is the truth, and they are lost while disconnected, so a reconnect wakes the engine too.
import { Backoff } from '../lib/backoff.js';
import { sseFrames } from '../lib/sse.js';
import { Loop } from '../lib/lifecycle.js';
import type { Logger } from '../lib/log.js';
import type { SuperuserSession, Upstream } from '../lib/upstream.js';

export const CHANGES_TOPIC = 'hapta/changes';

export interface RealtimeWakerOptions {
  upstream: Upstream;
  /** Subscribes the stream (as the superuser). */
  session: Pick<SuperuserSession, 'json'>;
  log: Logger;
  /** A write committed; `seq` is the log head just after it (null: unknown, read the log). */
  onChange: (seq: number | null) => void;
}

export class RealtimeWaker {
  private readonly backoff = new Backoff(200, 10_000);
  private readonly loop: Loop;

  constructor(private readonly opts: RealtimeWakerOptions) {
    // Every end of the stream is retried after a backoff delay; a subscribed stream resets it.
    this.loop = new Loop((signal) => this.connect(signal), {
      log: opts.log, failure: 'realtime stream ended', failureLevel: 'debug', backoff: this.backoff,
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async connect(signal: AbortSignal): Promise<void> {
    try {
      await this.listen(signal, () => this.backoff.reset());
    } finally {
      if (!signal.aborted) this.opts.onChange(null); // announcements may have been lost
    }
    throw new Error('closed by PocketBase');
  }

  private async listen(signal: AbortSignal, onHealthy: () => void): Promise<void> {
    const res = await this.opts.upstream.request('realtime', {
      method: 'GET', path: '/api/realtime', headers: { accept: 'text/event-stream' }, signal,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`realtime status ${res.statusCode}`);
    }
    for await (const frame of sseFrames(res.body)) await this.onFrame(frame, onHealthy);
  }

  private async onFrame(frame: string, onHealthy: () => void): Promise<void> {
    let event = '';
    let data = '';
    for (const line of frame.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5);
    }
    if (event === 'PB_CONNECT') {
      const { clientId } = JSON.parse(data) as { clientId: string };
      await this.opts.session.json('realtime', 'POST', '/api/realtime', { clientId, subscriptions: [CHANGES_TOPIC] });
      onHealthy();
      this.opts.onChange(null); // catch up with what happened while disconnected
      return;
    }
    if (event === CHANGES_TOPIC) {
      let seq: number | null = null;
      try {
        const v = (JSON.parse(data) as { seq?: unknown }).seq;
        seq = typeof v === 'number' ? v : null;
      } catch { /* unknown payload: read the log */ }
      this.opts.onChange(seq);
    }
  }
}
