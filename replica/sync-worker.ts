// The sync thread (sync-thread.ts starts it): PocketBase's realtime stream and the reads of the change
// log, on a thread whose event loop is idle, so that an announced write is read from PocketBase while the
// main thread is busy answering requests. The main thread applies what this thread read; it hands over
// the superuser token (this thread never signs in) and tells what to read.
//
// Reads are of two kinds, both answered with PocketBase's status and body text and the time the request
// was sent (a monotonic clock shared by every thread of the process):
// - asked for by the main thread (`read`): answered by a request sent after `notBefore` (strictly: the
//   main thread never takes the same answer twice), one already under way or just answered included;
// - read ahead (`ahead`): after an announcement beyond what the last read covered, the log after the
//   position the main thread will read from next, sent to the main thread unasked (the announcement
//   itself is not: the answer wakes the engine).
import { parentPort, workerData } from 'node:worker_threads';
import type { Dispatcher } from 'undici';
import type { Logger } from '../lib/log.js';
import { nameThisThread } from '../lib/runtime.js';
import { UpstreamError, Upstream, type Purpose } from '../lib/upstream.js';
import { RealtimeWaker } from './realtime-waker.js';
import { monotonicMs, type FromSync, type SyncWorkerData, type ToSync } from './sync-protocol.js';

nameThisThread('hapta-sync');
const port = parentPort!;
const data = workerData as SyncWorkerData;
const post = (m: FromSync) => port.postMessage(m);

const upstream = new Upstream({
  url: data.url, timeoutMs: data.timeoutMs, connections: 4,
  onRequest: (purpose) => post({ type: 'request', purpose }),
});

function logger(base: Record<string, unknown>): Logger {
  const emit = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => post({ type: 'log', level, msg, fields: { ...base, ...fields } });
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: (f) => logger({ ...base, ...f }) };
}

// The superuser token, as the main thread holds it. A refused token is reported and replaced.
let token: string | null = null;
let tokenWaiters: Array<(t: string) => void> = [];

function currentToken(): Promise<string> {
  if (token) return Promise.resolve(token);
  return new Promise((resolve) => {
    tokenWaiters.push(resolve);
    if (tokenWaiters.length === 1) post({ type: 'token-needed', refused: null });
  });
}

function refused(t: string): void {
  if (token === t) token = null;
  post({ type: 'token-needed', refused: t });
}

/** What realtime-waker.ts needs of a session: superuser JSON requests (the subscription). */
const session = {
  async json<T>(purpose: Purpose, method: Dispatcher.HttpMethod, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const t = await currentToken();
    try {
      return await upstream.json<T>(purpose, method, path, { token: t, body, signal });
    } catch (err) {
      if (err instanceof UpstreamError && (err.status === 401 || err.status === 403)) refused(t);
      throw err;
    }
  },
};

interface Read {
  after: number;
  limit: number;
  sentAt: number;
  answer: Promise<{ status: number; text: string }>;
  /** Asked for by the main thread (answered to it): not sent again as a read ahead. */
  claimed?: boolean;
  /** Set once answered: the last change's position (the read's own position when it had none), and whether the log had more. */
  done?: { last: number; head: number; more: boolean; status: number };
}

/** Reads under way, and the last one answered (for a request that arrives just after it was sent). */
let reads: Read[] = [];
/** The highest head announced by PocketBase. */
let announced = 0;
/** Where the main thread reads from next, as far as this thread can tell (-1: unknown, nothing read ahead). */
let next = -1;
/** The last read failed: nothing is read ahead until the main thread's own read (it backs off) succeeds. */
let failing = false;

function send(after: number, limit: number): Read {
  const q = new URLSearchParams({ after: String(after), limit: String(limit), consumer: data.consumerId, records: '1' });
  const sentAt = monotonicMs();
  const read: Read = {
    after, limit, sentAt,
    answer: currentToken().then(async (t) => {
      const res = await upstream.request('sync', { method: 'GET', path: `/api/hapta-sync/changes?${q}`, headers: { accept: 'application/json', authorization: t } });
      const text = await res.body.text();
      if (res.statusCode === 401 || res.statusCode === 403) refused(t);
      return { status: res.statusCode, text };
    }).catch((err: Error) => ({ status: 0, text: JSON.stringify({ message: `PocketBase unreachable: ${err.message}` }) })),
  };
  reads.push(read);
  void read.answer.then((a) => {
    read.done = { last: after, head: 0, more: false, status: a.status };
    if (a.status === 200) {
      try {
        const r = JSON.parse(a.text) as { head?: number; more?: boolean; changes?: Array<{ seq: number }> };
        const n = r.changes?.length ?? 0;
        read.done = { last: n > 0 ? r.changes![n - 1].seq : after, head: r.head ?? 0, more: r.more === true, status: 200 };
      } catch { /* the main thread reports it */ }
    }
    failing = read.done.status !== 200;
    // Keep the newest answered read; drop those under way no more.
    reads = reads.filter((r) => !r.done || r === read);
    // The main thread goes on from the last change of this read once it has applied it.
    if (read.done.status === 200 && read.after === next) next = read.done.last;
    ahead();
  });
  return read;
}

/** Reads the log ahead when PocketBase announced more than the reads under way or answered cover. */
function ahead(): void {
  if (next < 0 || failing || reads.some((r) => !r.done)) return;
  const last = reads.find((r) => r.done && r.done.status === 200 && r.after === next);
  // Answered, not yet asked for, and nothing announced beyond it: nothing to read.
  if (last && !last.done!.more && announced <= Math.max(last.done!.head, last.done!.last)) return;
  if (!last && announced <= next) return;
  const read = send(next, data.batchSize);
  void read.answer.then((a) => {
    if (!read.claimed) post({ type: 'ahead', after: read.after, limit: read.limit, sentAt: read.sentAt, status: a.status, text: a.text });
  });
}

port.on('message', (m: ToSync) => {
  switch (m.type) {
    case 'token': {
      token = m.token;
      const waiting = tokenWaiters;
      tokenWaiters = [];
      for (const w of waiting) w(m.token);
      break;
    }
    case 'read': {
      next = m.after;
      // A failed read is never handed out again: the engine retries it after its backoff.
      const match = reads.find((r) => r.after === m.after && r.limit === m.limit && r.sentAt > m.notBefore && (!r.done || r.done.status === 200));
      const read = match ?? send(m.after, m.limit);
      read.claimed = true;
      void read.answer.then((a) => post({ type: 'answer', id: m.id, sentAt: read.sentAt, status: a.status, text: a.text }));
      break;
    }
    case 'position':
      // The main thread applied up to here (or rebuilt): reads ahead go on from it.
      next = m.seq;
      ahead();
      break;
    case 'stop':
      void waker.stop().then(() => upstream.close()).then(() => port.close());
      break;
  }
});

const waker = new RealtimeWaker({
  upstream, session, log: logger({ component: 'realtime' }),
  onChange: (seq) => {
    // A known head is read ahead here, and the engine woken by the answer; an unknown one (a reconnect:
    // announcements may have been lost) wakes the engine, which reads the log itself.
    if (seq === null) return post({ type: 'announced', seq });
    announced = Math.max(announced, seq);
    ahead();
  },
});
waker.start();
