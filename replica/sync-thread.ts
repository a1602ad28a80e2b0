// Reads of the change log from a thread of their own (sync-worker.ts), with PocketBase's realtime stream.
// On a busy sidecar each answer from PocketBase waits behind the requests the main thread is answering,
// several times over (headers, body, the next request): the sync thread's event loop is idle, so it
// sends, receives and reads ahead at once, and the main thread takes the whole answer in one turn and
// applies it. The sync engine's rules are unchanged (replicator.ts): it asks for the log after its
// position and never takes an answer sent before one it already used, or before a waiter registered.
// A thread that stops is started again; meanwhile the main thread reads the log itself.
import { Worker } from 'node:worker_threads';
import { Backoff } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import { compiled } from '../lib/runtime.js';
import { jsonAnswer, UpstreamError, type Purpose, type SuperuserSession } from '../lib/upstream.js';
import type { ChangeSource, ChangesResponse } from './change-source.js';
import { monotonicMs, type FromSync, type SyncWorkerData, type ToSync } from './sync-protocol.js';

/** How the sync engine reads the log: an answer and when its request was sent (monotonicMs). */
export interface ChangeReader {
  read(after: number, limit: number, notBefore: number, signal?: AbortSignal): Promise<{ res: ChangesResponse; sentAt: number }>;
  /** The position the engine reads from next. */
  position(seq: number): void;
}

/** The main thread reading the log itself (no sync thread). */
export function directReader(source: ChangeSource): ChangeReader {
  return {
    async read(after, limit, _notBefore, signal) {
      const sentAt = monotonicMs();
      return { res: await source.readChanges(after, limit, true, signal), sentAt };
    },
    position() {},
  };
}

export interface SyncThreadOptions {
  url: string;
  timeoutMs: number;
  consumerId: string;
  batchSize: number;
  session: SuperuserSession;
  /** Reads while the thread is not running. */
  source: ChangeSource;
  log: Logger;
  /** A write announced on the realtime stream (null: read the log). */
  onAnnounced(seq: number | null): void;
  /** A read ahead arrived: the engine may apply it now. */
  onAhead(): void;
  onRequest?(purpose: Purpose): void;
  /** Each batch read for the engine, by how it was read. */
  onRead?(by: 'ahead' | 'thread' | 'main'): void;
}

interface Answer { sentAt: number; status: number; text: string }

export class SyncThread implements ChangeReader {
  private worker: Worker | null = null;
  private stopping = false;
  private readonly backoff = new Backoff(200, 10_000);
  private restartTimer: NodeJS.Timeout | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(a: Answer): void; reject(e: Error): void }>();
  /** The newest read ahead, until the engine takes it or moves past it. */
  private ready: ({ after: number; limit: number } & Answer) | null = null;
  private nextSeq = -1;
  /** Batches the engine took from reads ahead, asked of the thread, read on the main thread; thread restarts. */
  readonly stats = { ahead: 0, thread: 0, direct: 0, restarts: 0 };
  /** Reads on this thread, while the sync thread is not running or cannot serve one. */
  private readonly here: ChangeReader;

  constructor(private readonly opts: SyncThreadOptions) {
    this.here = directReader(opts.source);
  }

  private counted(by: 'ahead' | 'thread' | 'main'): void {
    this.stats[by === 'main' ? 'direct' : by]++;
    this.opts.onRead?.(by);
  }

  start(): void {
    this.stopping = false;
    this.spawn();
  }

  private spawn(): void {
    const data: SyncWorkerData = { url: this.opts.url, timeoutMs: this.opts.timeoutMs, consumerId: this.opts.consumerId, batchSize: this.opts.batchSize };
    const entry = new URL(`./sync-worker.${compiled ? 'js' : 'ts'}`, import.meta.url).href;
    // TypeScript source (tsx): a thread's entry module is loaded before tsx's hooks are in place there,
    // so the thread imports the module through tsx's API instead.
    const worker = compiled ? new Worker(new URL(entry), { workerData: data }) : new Worker(
      `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => m.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`,
      { eval: true, workerData: data },
    );
    this.worker = worker;
    worker.on('message', (m: FromSync) => this.onMessage(m));
    worker.on('error', (err) => this.opts.log.warn('sync thread failed', { error: err.message }));
    worker.on('exit', () => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.ready = null;
      for (const p of this.pending.values()) p.reject(new UpstreamError(0, 'the sync thread stopped'));
      this.pending.clear();
      if (this.stopping) return;
      this.stats.restarts++;
      this.opts.log.warn('sync thread stopped; starting it again');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (!this.stopping) this.spawn();
      }, this.backoff.next());
    });
    if (this.nextSeq >= 0) this.post({ type: 'position', seq: this.nextSeq });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    this.post({ type: 'stop' });
    const force = setTimeout(() => void w.terminate(), 2000);
    await exited;
    clearTimeout(force);
    this.worker = null;
  }

  /** Stops the thread as a crash would (tests): it is started again. */
  crashForTest(): Promise<number> {
    return this.worker?.terminate() ?? Promise.resolve(0);
  }

  private post(m: ToSync): void {
    this.worker?.postMessage(m);
  }

  private onMessage(m: FromSync): void {
    switch (m.type) {
      case 'answer': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.resolve(m);
        break;
      }
      case 'ahead':
        if (m.after !== this.nextSeq || m.status !== 200) break;
        this.ready = m;
        this.opts.onAhead();
        break;
      case 'announced':
        this.opts.onAnnounced(m.seq);
        break;
      case 'token-needed':
        if (m.refused && this.opts.session.currentToken() === m.refused) this.opts.session.invalidate();
        this.sendToken();
        break;
      case 'request':
        this.opts.onRequest?.(m.purpose);
        break;
      case 'log':
        this.opts.log[m.level](m.msg, m.fields);
        break;
    }
  }

  /** The superuser token to the thread; tried again while PocketBase cannot sign the sidecar in. */
  private sendToken(): void {
    const worker = this.worker;
    this.opts.session.getToken().then((token) => {
      if (this.worker === worker) this.post({ type: 'token', token });
    }, (err: Error) => {
      this.opts.log.warn('sync thread: no superuser token', { error: err.message });
      if (this.worker === worker && !this.stopping) setTimeout(() => this.sendToken(), 1000).unref();
    });
  }

  position(seq: number): void {
    if (seq === this.nextSeq) return;
    this.nextSeq = seq;
    if (this.ready && this.ready.after !== seq) this.ready = null;
    this.post({ type: 'position', seq });
  }

  async read(after: number, limit: number, notBefore: number, signal?: AbortSignal): Promise<{ res: ChangesResponse; sentAt: number }> {
    this.position(after);
    const r = this.ready;
    if (r && r.after === after && r.limit === limit && r.sentAt > notBefore) {
      this.ready = null;
      const res = this.parse(r);
      if (res) {
        this.counted('ahead');
        return { res, sentAt: r.sentAt };
      }
    }
    if (this.worker) {
      let answer = await this.ask(after, limit, notBefore, signal);
      if (answer.status === 401 || answer.status === 403) answer = await this.ask(after, limit, monotonicMs(), signal); // the thread asked for a new token
      const res = this.parse(answer);
      if (res) {
        this.counted('thread');
        return { res, sentAt: answer.sentAt };
      }
      // An answer the thread's reads cannot use (hooks that predate "upper"): the main thread reads it.
    }
    this.counted('main');
    return this.here.read(after, limit, notBefore, signal);
  }

  private ask(after: number, limit: number, notBefore: number, signal?: AbortSignal): Promise<Answer> {
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(new UpstreamError(0, 'aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (a) => { signal?.removeEventListener('abort', onAbort); resolve(a); },
        reject: (e) => { signal?.removeEventListener('abort', onAbort); reject(e); },
      });
      this.post({ type: 'read', id, after, limit, notBefore });
    });
  }

  /** PocketBase's answer as Upstream.json reads it; null when it lacks what the thread's reads need. */
  private parse(a: Answer): ChangesResponse | null {
    const res = jsonAnswer<ChangesResponse | undefined>(a.status, a.text);
    // Hooks older than "upper" answer without it; the thread's reads then bound nothing newer than the head
    // read after them, which only the main thread can read (rare: an old pb_hooks).
    if (!res || typeof res !== 'object' || typeof res.upper !== 'number') return null;
    return res;
  }
}
