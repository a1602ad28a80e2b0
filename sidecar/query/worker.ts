// A worker thread of the query pool: runs read-only SQL on its own connection to the replica file, so a
// heavy ranking or list query never blocks the event loop that serves everything else. A ranking task runs
// its whole plan here (window.ts: candidate windows, widened until exact) and returns it packed; a filter
// task checks a shared ranking's items against one requester's rules and counts that requester's items;
// a read task answers a records list whole, a page task renders a search page (sidecar/reads/task.ts).
import type Database from 'better-sqlite3';
import { setPriority } from 'node:os';
import { workerData } from 'piscina';
import type { FeedProfile } from '../../config.js';
import { nameThisThread, thisThreadId } from '../../lib/runtime.js';
import { ReplicaStore } from '../../replica/store.js';
import { adoptVersions } from '../reads/query.js';
import { runPage, runRead, type PageResult, type PageTask, type ReadResult, type ReadTask } from '../reads/task.js';
import type { RankPlan } from '../feeds/feed-sql.js';
import { rank, type Ranked, type WindowOptions } from '../feeds/window.js';

// The thread's name (`hapta-reads`, `hapta-feeds`, `hapta-search`: its lane, as `top -H` shows it) and
// scheduling priority (its nice value, Linux): a thread that yields the cores to the main thread, which
// answers every request, whenever both want one.
const data = (workerData ?? {}) as { nice?: number; lane?: string };
if (data.lane) nameThisThread(`hapta-${data.lane}`);
const nice = Number(data.nice ?? 0);
const tid = nice > 0 ? thisThreadId() : null;
if (tid !== null) {
  try {
    setPriority(tid, nice);
  } catch { /* not permitted here: the thread keeps the process's priority */ }
}

interface Base {
  path: string;
  /** Bumped when the replica file is replaced: the worker reopens it. */
  generation: number;
}

export interface QueryTask extends Base {
  kind?: 'all';
  sql: string;
  /** Positional values, or one object of named values (@p1 ...). */
  params: unknown[];
}

export interface RankTask extends Base {
  kind: 'rank';
  profile: FeedProfile;
  plan: RankPlan;
  window?: WindowOptions;
  /**
   * A shared ranking's first requester: their filter over its first `limit` items (all without), in the
   * same transaction (FilterTask's fields).
   */
  filter?: Omit<FilterTask, keyof Base | 'kind' | 'rids'> & { limit?: number };
}

/**
 * A requester's filter over a shared ranking (routes.ts): `sql` selects, as `rid`, the rowids among
 * @`idsParam` (a JSON array, bound here from `rids`) that pass the requester's rules; `count`, when
 * given, counts their visible items up to the ranking's cap (else the total is -1). Both run in one
 * read transaction.
 */
export interface FilterTask extends Base {
  kind: 'filter';
  sql: string;
  bindings: Record<string, unknown>;
  idsParam: string;
  rids: Float64Array;
  count?: { sql: string; bindings: Record<string, unknown> };
}

export interface ReadTaskMessage extends Base, ReadTask {
  kind: 'read';
}

export interface PageTaskMessage extends Base, PageTask {
  kind: 'page';
}

/** SQLite errors come back as data: an Error's `code` does not survive the thread boundary. */
export type TaskResult = { rows: unknown[] } | { ranked: Ranked; kept?: { keep: Uint32Array; total: number } } | { keep: Uint32Array; total: number } | { read: ReadResult } | { page: PageResult } | { error: { code: string; message: string } };

let store: ReplicaStore | null = null;
let openPath = '';
let openGeneration = -1;
const statements = new Map<string, Database.Statement>();

function replica(path: string, generation: number): ReplicaStore {
  if (!store || openPath !== path || openGeneration !== generation) {
    store?.close();
    store = null;
    statements.clear();
    store = new ReplicaStore(path, { readonly: true });
    openPath = path;
    openGeneration = generation;
  }
  return store;
}

function connection(path: string, generation: number): Database.Database {
  return replica(path, generation).db;
}

function statement(conn: Database.Database, sql: string): Database.Statement {
  let stmt = statements.get(sql);
  if (!stmt) {
    stmt = conn.prepare(sql);
    if (statements.size > 200) statements.clear();
    statements.set(sql, stmt);
  }
  return stmt;
}

/** Positions of the kept rowids in `rids` (ascending), and the requester's count. */
function filter(conn: Database.Database, task: Omit<FilterTask, keyof Base | 'kind'>): { keep: Uint32Array; total: number } {
  const passed = new Set<number>();
  for (const r of statement(conn, task.sql).all({ ...task.bindings, [task.idsParam]: JSON.stringify(Array.from(task.rids)) }) as { rid: number }[]) passed.add(Number(r.rid));
  const keep = new Uint32Array(passed.size);
  let n = 0;
  for (let i = 0; i < task.rids.length && n < keep.length; i++) if (passed.has(task.rids[i])) keep[n++] = i;
  const total = task.count ? Number((statement(conn, task.count.sql).get(task.count.bindings) as { n: number }).n) : -1;
  return { keep: keep.subarray(0, n), total };
}

export default function run(task: QueryTask | RankTask | FilterTask | ReadTaskMessage | PageTaskMessage): TaskResult {
  try {
    if (task.kind === 'read' || task.kind === 'page') {
      // The sender's table versions: this thread's cached query results are fresh only under them.
      adoptVersions(task.stamp);
      const at = replica(task.path, task.generation);
      return task.kind === 'read' ? { read: runRead(at, task) } : { page: runPage(at, task) };
    }
    const conn = connection(task.path, task.generation);
    if (task.kind === 'rank') {
      // One read transaction: every statement of the plan (and the filter) sees the same state of the file.
      return conn.transaction(() => {
        const ranked = rank(task.profile, task.plan, (sql, b) => statement(conn, sql).all(b) as Record<string, unknown>[], task.window);
        if (!task.filter) return { ranked };
        return { ranked, kept: filter(conn, { ...task.filter, rids: ranked.rids.subarray(0, Math.min(ranked.count, task.filter.limit ?? ranked.count)) }) };
      })();
    }
    if (task.kind === 'filter') return conn.transaction(() => filter(conn, task))();
    return { rows: statement(conn, task.sql).all(...task.params) };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { error: { code: String(err.code ?? (e instanceof RangeError || e instanceof TypeError ? 'BIND' : 'UNKNOWN')), message: String(err.message ?? e) } };
  }
}
