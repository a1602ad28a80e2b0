// Listens to PocketBase's realtime stream as the sidecar's superuser, subscribed to every replicated
// collection with only the id in each event, and wakes the sync engine on every event. Events are never
// applied: they arrive out of commit order and are lost while disconnected; the change log is the truth.
// A reconnect also wakes the engine, since events in the gap are gone.
import { Backoff, sleep } from './backoff.js';
import type { Logger } from './log.js';
import type { SuperuserSession, Upstream } from './upstream.js';

export interface RealtimeWakerOptions {
  upstream: Upstream;
  session: SuperuserSession;
  log: Logger;
  /** The collection ids to follow (read again on every (re)subscribe). */
  topics: () => string[];
  onEvent: () => void;
  onConnect?: () => void;
}

export class RealtimeWaker {
  private abort = new AbortController();
  private current: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private subscribed = '';
  private clientId: string | null = null;
  connected = false;

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

  /** Re-subscribes when the set of collections changed. */
  async refresh(): Promise<void> {
    if (!this.clientId || this.topicKey() === this.subscribed) return;
    await this.subscribe(this.clientId).catch(() => this.current?.abort());
  }

  private topicKey(): string {
    return this.opts.topics().join(',');
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
      this.connected = false;
      this.clientId = null;
      if (this.abort.signal.aborted) break;
      this.opts.onEvent(); // events may have been lost
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
      await this.subscribe(clientId);
      this.clientId = clientId;
      this.connected = true;
      onHealthy();
      this.opts.onConnect?.();
      this.opts.onEvent(); // catch up with what happened while disconnected
      return;
    }
    if (event) this.opts.onEvent();
  }

  private async subscribe(clientId: string): Promise<void> {
    const key = this.topicKey();
    const options = encodeURIComponent(JSON.stringify({ query: { fields: 'id' } }));
    const subscriptions = this.opts.topics().slice(0, 1000).map((id) => `${id}/*?options=${options}`);
    await this.opts.session.json('realtime', 'POST', '/api/realtime', { clientId, subscriptions });
    this.subscribed = key;
  }
}
