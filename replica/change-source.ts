// What the sync engine reads from PocketBase: the change log (with the current state of the records it
// names), pages of a collection in rowid order, and the collection definitions. All requests go through
// the sidecar's superuser session; see pb_hooks/hapta_changes.pb.js for the server side.
import type { PbCollection } from './schema.js';
import type { ChangeRow, RecordPage } from './store.js';
import { randomBytes } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { UpstreamError, type SuperuserSession } from '../lib/upstream.js';

/** PocketBase's change-log head and the database it belongs to. */
export interface LogHead { instance: string; head: number }

export interface ChangesResponse {
  instance: string;
  prunedThrough: number;
  head: number;
  /** A position no record in `records` is newer than (the head read after them). */
  upper: number;
  anchor: ChangeRow | null;
  changes: ChangeRow[];
  more: boolean;
  records: Record<string, RecordPage>;
}

export interface PlannerSchema {
  schema: Array<{ type: 'table' | 'index'; name: string; tbl: string; sql: string }>;
  stats: Array<{ tbl: string; idx: string; stat: string }>;
}

export interface RowidPage {
  rowids: number[];
  ids: string[];
  last: number;
  done: boolean;
}

export class ChangeSource {
  constructor(private readonly session: SuperuserSession, private readonly consumerId: string) {}

  async readChanges(after: number, limit: number, withRecords: boolean, signal?: AbortSignal): Promise<ChangesResponse> {
    const q = new URLSearchParams({ after: String(after), limit: String(limit), consumer: this.consumerId });
    if (withRecords) q.set('records', '1');
    const res = await this.session.json<ChangesResponse>('sync', 'GET', `/api/hapta-sync/changes?${q}`, undefined, signal);
    // Hooks older than "upper": the head read after the answer bounds its records just as well.
    if (typeof res.upper !== 'number') res.upper = withRecords ? (await this.readHead(signal)).head : res.head;
    return res;
  }

  /**
   * A write sent as `first` with a read of the log head pipelined right behind it (Upstream.requestThen):
   * the head is read after the write's handler returned, so it is at least the write's position, and its
   * request is on its way before the write's answer is back. Null when it cannot be paired (every pair
   * connection in use, or no superuser token at hand): read the head after the answer then.
   */
  writeThenHead(first: Dispatcher.RequestOptions): { first: Promise<Dispatcher.ResponseData>; head: Promise<LogHead> } | null {
    const token = this.session.currentToken();
    if (!token) return null;
    // The write names the pair; the head is answered only once that write's handler has returned
    // (pb_hooks), whatever sits between the two processes.
    const id = randomBytes(12).toString('hex');
    const headers = { ...(first.headers as Record<string, string | string[]>), 'x-hapta-pair': id };
    const pair = this.session.upstream.requestThen('proxy', { ...first, headers }, 'sync', {
      method: 'GET', path: `/api/hapta-sync/head?pair=${id}`, headers: { accept: 'application/json', authorization: token },
    });
    if (!pair) return null;
    const head = pair.then.then(({ statusCode, text }) => {
      const h = statusCode === 200 ? (JSON.parse(text) as { instance?: unknown; head?: unknown }) : null;
      if (!h || typeof h.instance !== 'string' || typeof h.head !== 'number') throw new UpstreamError(statusCode, 'log head not read');
      return { instance: h.instance, head: h.head };
    });
    head.catch(() => {}); // a write that failed leaves its head unread; the caller decides
    return { first: pair.first, head };
  }

  /** The log head now (and the database it belongs to): cheap, no rows. */
  readHead(signal?: AbortSignal): Promise<LogHead> {
    return this.session.json<LogHead>('sync', 'GET', '/api/hapta-sync/head', undefined, signal);
  }

  /** How many records a collection holds (for bootstrap progress): one counted page of one id. */
  async countRecords(collectionId: string, signal?: AbortSignal): Promise<number> {
    const res = await this.session.json<{ totalItems: number }>(
      'bootstrap', 'GET', `/api/collections/${encodeURIComponent(collectionId)}/records?perPage=1&fields=id`, undefined, signal);
    return typeof res.totalItems === 'number' ? res.totalItems : 0;
  }

  /** One page of records through the records API, keyset-paged by id (concurrent writes never shift it). */
  async readPage(collectionId: string, afterId: string | null, limit: number, signal?: AbortSignal): Promise<Record<string, unknown>[]> {
    const q = new URLSearchParams({ perPage: String(limit), skipTotal: '1', sort: 'id' });
    if (afterId !== null) q.set('filter', `id > ${JSON.stringify(afterId)}`);
    const res = await this.session.json<{ items: Record<string, unknown>[] }>(
      'bootstrap', 'GET', `/api/collections/${encodeURIComponent(collectionId)}/records?${q}`, undefined, signal);
    return res.items;
  }

  /** (rowid, id) pairs of a collection in rowid order. */
  readRowids(collectionId: string, afterRowid: number, limit: number, signal?: AbortSignal): Promise<RowidPage> {
    const q = new URLSearchParams({ coll: collectionId, after: String(afterRowid), limit: String(limit) });
    return this.session.json<RowidPage>('bootstrap', 'GET', `/api/hapta-sync/rowids?${q}`, undefined, signal);
  }

  async listCollections(signal?: AbortSignal): Promise<PbCollection[]> {
    const out: PbCollection[] = [];
    for (let page = 1; ; page++) {
      const res = await this.session.json<{ items: PbCollection[]; totalPages: number }>(
        'schema', 'GET', `/api/collections?page=${page}&perPage=500`, undefined, signal);
      out.push(...res.items);
      if (page >= res.totalPages || res.items.length === 0) return out;
    }
  }

  /**
   * The SQL of the replicated tables and indexes as PocketBase's SQLite holds them, with their planner
   * statistics; null from hooks that predate it.
   */
  async readPlannerSchema(signal?: AbortSignal): Promise<PlannerSchema | null> {
    try {
      return await this.session.json<PlannerSchema>('schema', 'GET', '/api/hapta-sync/planner-schema', undefined, signal);
    } catch (err) {
      if ((err as { status?: number }).status === 404) return null;
      throw err;
    }
  }

  /** Asks PocketBase to install any change-log trigger that is missing. */
  async ensureTriggers(signal?: AbortSignal): Promise<void> {
    await this.session.json('schema', 'POST', '/api/hapta-sync/ensure', {}, signal);
  }
}
