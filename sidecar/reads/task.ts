// A records list or view, or the records of a feed page, as a task: lists go to a read thread (the query
// pool's `reads` lane), search pages to the `search` lane, views and other feed pages run on the main
// thread through the same functions. A thread holds its own read-only connection to the replica file and
// runs the whole answer there (rules, query, expand, rendering), so the main thread only parses the
// request, identifies the caller and writes the answer. Everything a task carries is plain data; so is
// what it returns.
import { ApiError } from '../errors.js';
import type { ReplicaStore } from '../../replica/store.js';
import { catalogOf, type Catalog } from './catalog.js';
import { ResolveError, Unsupported } from './errors.js';
import { list, renderItems, view, type Answer } from './handlers.js';
import { planStats, quotedIdentifiers, tracked, type Row, type VersionStamp } from './query.js';
import type { Requester, RequestInfo } from './request.js';

export interface ReadTask {
  /** The collection as the path names it (name or id). */
  collection: string;
  /** null: the list; otherwise the record viewed. */
  id: string | null;
  info: RequestInfo;
  /** The sender's table versions when it sent the task (a thread's cached query results are fresh under them). */
  stamp: VersionStamp;
}

export type ReadResult =
  | {
    answer: Answer;
    /** The replica tables the answer read (its freshness, with the stamp). */
    tables: string[];
    /** An empty filtered list PocketBase answers after its timing guard (routes.ts). */
    guarded: boolean;
    /** The collection's id (the path may name it by name or id). */
    collectionId: string;
    /** How the thread planned the answer (planStats counts, for the sender's). */
    plan: typeof planStats;
    /** How long the read took where it ran, in ms (its cost, for placement.ts). */
    ms: number;
  }
  | { unsupported: string }
  | { apiError: { status: number; message: string } };

/** The records of a feed page: the page's statement (built by the caller), rendered in the ids' order. */
export interface PageTask {
  /** The collection's id. */
  collection: string;
  sql: string;
  bindings: Record<string, unknown>;
  /** The page's ids, in the ranking's order; those the statement does not return are left out. */
  ids: string[];
  info: RequestInfo;
  stamp: VersionStamp;
}

export type PageResult =
  | { items: string; ids: string[]; tables: string[] }
  | { unsupported: string }
  | { apiError: { status: number; message: string; data: Record<string, unknown>; resolve: boolean } };

/** The requester as a thread needs it: the definition of its auth collection only when not replicated. */
export function forThread(r: Requester, catalog: Catalog): Requester {
  if (r.kind === 'anonymous' || !r.collection) return r;
  const id = r.kind === 'record' ? r.collectionId : String(r.record.collectionId ?? r.collection.id);
  if (!catalog.byCollectionId(id)) return r;
  const { collection: _omitted, ...rest } = r;
  return rest;
}

/** A thread's error as the caller's: the same class, status, message and data. */
export function pageError(res: Exclude<PageResult, { items: string }>): Error {
  if ('unsupported' in res) return new Unsupported(res.unsupported);
  const e = res.apiError;
  return e.resolve ? new ResolveError(e.message) : new ApiError(e.status, e.message, e.data);
}

/** Runs a page task in one read transaction (the records and their expands from one state). */
export function runPage(store: ReplicaStore, task: PageTask): PageResult {
  return store.db.transaction((): PageResult => {
    store.refresh();
    const catalog = catalogOf(store);
    const coll = catalog.byCollectionId(task.collection);
    if (!coll) return { unsupported: 'collection_not_replicated' };
    const found = store.prepared(task.sql).all(task.bindings) as Row[];
    const byId = new Map(found.map((r) => [String(r.id), r]));
    const rows = task.ids.map((id) => byId.get(id)).filter((r): r is Row => r !== undefined);
    try {
      const { value: items, reads } = tracked(() => renderItems(store, catalog, coll, rows, task.info));
      // The page statement's own tables: every table it reads is a quoted identifier in it.
      const tables = new Set([...reads.tableNames(), ...quotedIdentifiers(task.sql)]);
      return { items, ids: rows.map((r) => String(r.id)), tables: [...tables] };
    } catch (e) {
      if (e instanceof Unsupported) return { unsupported: e.reason };
      if (e instanceof ApiError) return { apiError: { status: e.status, message: e.message, data: e.data, resolve: e instanceof ResolveError } };
      throw e;
    }
  })();
}

/** Runs a read task in one read transaction: every statement sees the same state of the replica. */
export function runRead(store: ReplicaStore, task: ReadTask): ReadResult {
  const t0 = performance.now();
  const before = { ...planStats };
  const plan = () => Object.fromEntries(Object.entries(planStats).map(([k, v]) => [k, v - before[k as keyof typeof planStats]])) as typeof planStats;
  return store.db.transaction((): ReadResult => {
    // Definitions changed by the writer since this connection loaded them: reload, in this snapshot.
    store.refresh();
    const catalog = catalogOf(store);
    const coll = catalog.find(task.collection);
    if (!coll) return { unsupported: 'collection_not_replicated' };
    const info = task.info;
    try {
      if (task.id === null) {
        const { value, reads } = tracked(() => list(store, catalog, coll, info));
        const guarded = value.empty === true && info.requester.kind !== 'superuser' && !!coll.c.listRule && !!info.query.filter;
        return { answer: value, tables: reads.tableNames(), guarded, collectionId: coll.c.id, plan: plan(), ms: performance.now() - t0 };
      }
      const { value, reads } = tracked(() => view(store, catalog, coll, info, task.id!));
      return { answer: value, tables: reads.tableNames(), guarded: false, collectionId: coll.c.id, plan: plan(), ms: performance.now() - t0 };
    } catch (e) {
      if (e instanceof Unsupported) return { unsupported: e.reason };
      if (e instanceof ApiError) return { apiError: { status: e.status, message: e.message } };
      throw e;
    }
  })();
}
