// Listens to PocketBase's realtime stream as the sidecar's superuser, subscribed to the topic
// "hapta/changes" on which the hook announces the change-log head after each record write, and wakes
// the sync engine unless it has already read that far. Announcements are never applied: the change log
// is the truth, and they are lost while disconnected, so a reconnect wakes the engine too.
import { Backoff, sleep } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import type { SuperuserSession, Upstream } from '../lib/upstream.js';

export const CHANGES_TOPIC = 'hapta/changes';

export interface RealtimeWakerOptions {
  upstream: Upstream;
  session: SuperuserSession;
  log: Logger;
  /** A write committed; `seq` is the log head just after it (null: unknown, read the log). */
  onChange: (seq: number | null) => void;
}

export class RealtimeWaker {
  private abort = new AbortController();
  private current: AbortController | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly opts: RealtimeWakerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.current?.abort();
    await this.loop?.catch(() => {});
    this.loop = null;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(200, 10_000);
    while (!this.abort.signal.aborted) {
      const ctl = new AbortController();
      this.current = ctl;
      try {
        await this.listen(ctl.signal, () => backoff.reset());
      } catch (err) {
        if (!this.abort.signal.aborted) this.opts.log.debug('realtime stream ended', { error: (err as Error).message });
      }
      if (this.abort.signal.aborted) break;
      this.opts.onChange(null); // announcements may have been lost
      await sleep(backoff.next(), this.abort.signal);
    }
  }

  private async listen(signal: AbortSignal, onHealthy: () => void): Promise<void> {
    const res = await this.opts.upstream.request('realtime', {
      method: 'GET', path: '/api/realtime', headers: { accept: 'text/event-stream' }, signal,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`realtime status ${res.statusCode}`);
    }
    let buffer = '';
    res.body.setEncoding('utf8');
    for await (const chunk of res.body) {
      buffer += chunk as string;
      let idx: number;
      while ((idx = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, idx);
        buffer = buffer.slice(idx + 2);
        await this.onFrame(frame, onHealthy);
      }
    }
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
