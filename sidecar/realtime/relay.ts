// Topics the replica cannot answer (custom topics a PocketBase hook sends on, collections it does not
// hold, subscriptions whose rules it cannot evaluate with certainty) are relayed: the sidecar holds one
// realtime stream to PocketBase for that client, subscribes those topics there as the client (its
// PocketBase token and real IP, through the Forwarder), and copies PocketBase's frames onto the client's
// stream with the client's own id. When PocketBase ends that stream (its idle timeout, a restart), the
// sidecar reconnects and subscribes again; what PocketBase sent in between is lost, as it would be for a
// client connected to PocketBase itself.
import type { Context } from 'koa';
import { sseFrames } from '../../lib/sse.js';
import type { Dispatcher, Pool } from 'undici';
import { Backoff, sleep } from '../../lib/backoff.js';
import type { Logger } from '../../lib/log.js';
import type { Upstream } from '../../lib/upstream.js';
import type { Forwarder, UpstreamAnswer } from '../http/forward.js';
import type { RtClient } from './clients.js';

export interface RelayDeps {
  upstream: Upstream;
  /** Unbounded connections for held streams (the shared upstream pool must not be filled by them). */
  streams: Pool;
  forwarder: Forwarder;
  log: Logger;
  onFrame?: () => void;
}

/** The context the Forwarder reads a caller's identity from, rebuilt from what the client subscribed with. */
function callerOf(client: RtClient): Context {
  return {
    req: { headers: client.forwardState.headers },
    state: { auth: client.auth ?? undefined, passThroughAuth: client.passThroughAuth ?? undefined, clientIp: client.forwardState.clientIp },
  } as unknown as Context;
}

export class Relay {
  private topics: string[] = [];
  private upstreamId: string | null = null;
  private waiters: Array<(id: string | null) => void> = [];
  private abort: AbortController | null = null;
  private running = false;
  private readonly life = new AbortController();
  private readonly backoff = new Backoff(200, 10_000);

  constructor(private readonly client: RtClient, private readonly deps: RelayDeps) {}

  get active(): boolean {
    return this.topics.length > 0;
  }

  /**
   * Replaces the relayed topics. Returns PocketBase's answer when it refused them (a 4xx, which the
   * client gets instead of 204), null when they are in place or will be once PocketBase is reachable.
   */
  async set(topics: string[]): Promise<UpstreamAnswer | null> {
    const previous = this.topics;
    this.topics = topics;
    if (topics.length === 0) {
      this.stop();
      return null;
    }
    this.ensureRunning();
    const id = await this.connected(3000);
    if (!id) return null; // not reachable now: subscribed once the stream connects
    const answer = await this.submit(id);
    if (answer && answer.status >= 400 && answer.status < 500 && answer.status !== 404) {
      this.topics = previous;
      if (previous.length === 0) this.stop();
      else await this.resubmit();
      return answer;
    }
    if (answer?.status === 404) this.restart(); // PocketBase forgot the stream: reconnect and subscribe again
    return null;
  }

  close(): void {
    this.topics = [];
    this.life.abort();
    this.stop();
  }

  private stop(): void {
    this.abort?.abort();
    this.abort = null;
    this.upstreamId = null;
  }

  private restart(): void {
    this.abort?.abort();
  }

  private async resubmit(): Promise<void> {
    if (this.upstreamId) await this.submit(this.upstreamId);
  }

  private connected(timeoutMs: number): Promise<string | null> {
    if (this.upstreamId) return Promise.resolve(this.upstreamId);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), timeoutMs);
      timer.unref();
      const done = (id: string | null) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(id);
      };
      this.waiters.push(done);
    });
  }

  /** POST /api/realtime upstream as the client; null when PocketBase could not be asked. */
  private async submit(id: string): Promise<UpstreamAnswer | null> {
    try {
      const headers = await this.deps.forwarder.headers(callerOf(this.client), true, 'application/json');
      const res = await this.deps.upstream.request('realtime', {
        method: 'POST', path: '/api/realtime', headers, body: JSON.stringify({ clientId: id, subscriptions: this.topics }),
      });
      return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
    } catch (e) {
      this.deps.log.debug('realtime relay: subscribe failed', { error: (e as Error).message });
      return null;
    }
  }

  private ensureRunning(): void {
    if (this.running) return;
    this.running = true;
    void this.loop().finally(() => {
      this.running = false;
      if (this.active && !this.client.closed && !this.life.signal.aborted) this.ensureRunning();
    });
  }

  private async loop(): Promise<void> {
    while (this.active && !this.client.closed && !this.life.signal.aborted) {
      const abort = new AbortController();
      this.abort = abort;
      try {
        await this.listen(abort.signal);
      } catch (e) {
        if (!abort.signal.aborted) this.deps.log.debug('realtime relay: stream ended', { error: (e as Error).message });
      }
      this.upstreamId = null;
      if (!this.active || this.client.closed || this.life.signal.aborted) break;
      if (!abort.signal.aborted) await sleep(this.backoff.next(), this.life.signal);
    }
    for (const w of [...this.waiters]) w(null);
  }

  private async listen(signal: AbortSignal): Promise<void> {
    const headers = await this.deps.forwarder.headers(callerOf(this.client), true);
    delete headers['content-type'];
    delete headers['accept-encoding'];
    headers.accept = 'text/event-stream';
    const res: Dispatcher.ResponseData = await this.deps.streams.request({ method: 'GET', path: '/api/realtime', headers, signal });
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => {});
      throw new Error(`realtime status ${res.statusCode}`);
    }
    for await (const frame of sseFrames(res.body)) {
      await this.onFrame(frame);
      if (this.client.closed || !this.active) break;
    }
  }

  private async onFrame(frame: string): Promise<void> {
    const nl = frame.indexOf('\n');
    const first = nl === -1 ? frame : frame.slice(0, nl);
    const rest = first.startsWith('id:') ? (nl === -1 ? '' : frame.slice(nl + 1)) : frame;
    if (/^event:PB_CONNECT$/m.test(rest)) {
      const m = /^data:(.*)$/m.exec(rest);
      let id: string | null = null;
      try {
        id = (JSON.parse(m?.[1] ?? '') as { clientId?: string }).clientId ?? null;
      } catch { /* not PocketBase */ }
      if (!id) throw new Error('no client id from PocketBase');
      this.upstreamId = id;
      this.backoff.reset();
      const waiting = this.waiters.length > 0;
      for (const w of [...this.waiters]) w(id);
      // A reconnect nobody waits for: subscribe the current topics again.
      if (!waiting) await this.submit(id);
      return;
    }
    this.deps.onFrame?.();
    this.client.send(`id:${this.client.id}\n${rest}\n\n`);
  }
}
