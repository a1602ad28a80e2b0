// The messages between the main thread (sync-thread.ts) and the sync thread (sync-worker.ts).
import type { Level } from '../lib/log.js';
import type { Purpose } from '../lib/upstream.js';

export interface SyncWorkerData {
  url: string;
  timeoutMs: number;
  consumerId: string;
  /** Change-log rows per read ahead (the main thread's batch size). */
  batchSize: number;
}

export type ToSync =
  | { type: 'token'; token: string }
  /** A read of the log after `after`, sent after `notBefore` (monotonicMs). */
  | { type: 'read'; id: number; after: number; limit: number; notBefore: number }
  /** The position the main thread reads from next (after a batch applied, a rebuild). */
  | { type: 'position'; seq: number }
  | { type: 'stop' };

export type FromSync =
  /**
   * Read the log: the stream (re)connected and announcements may have been lost (null), or a write was
   * announced at `seq` that the thread does not read ahead. Announced writes the thread reads ahead come
   * as `ahead` answers only.
   */
  | { type: 'announced'; seq: number | null }
  /** The answer to `read` `id`: PocketBase's status (0: unreachable) and body, and when its request was sent. */
  | { type: 'answer'; id: number; sentAt: number; status: number; text: string }
  /** A read of the log ahead, unasked. */
  | { type: 'ahead'; after: number; limit: number; sentAt: number; status: number; text: string }
  /** The token is missing, or PocketBase refused `refused`. */
  | { type: 'token-needed'; refused: string | null }
  | { type: 'request'; purpose: Purpose }
  | { type: 'log'; level: Level; msg: string; fields?: Record<string, unknown> };

/** Milliseconds on the monotonic clock every thread of the process shares. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
