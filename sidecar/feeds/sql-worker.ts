// A worker thread of the feed query pool: runs read-only SQL on its own connection to the replica file,
// so a heavy ranking query never blocks the event loop that serves everything else. A ranking task runs
// its whole plan here (window.ts: candidate windows, widened until exact) and returns it packed.
import Database from 'better-sqlite3';
import type { FeedProfile } from '../../config.js';
import type { RankPlan } from './feed-sql.js';
import { rank, type Ranked, type WindowOptions } from './window.js';

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
}

/** SQLite errors come back as data: an Error's `code` does not survive the thread boundary. */
export type TaskResult = { rows: unknown[] } | { ranked: Ranked } | { error: { code: string; message: string } };

let db: Database.Database | null = null;
let openPath = '';
let openGeneration = -1;
const statements = new Map<string, Database.Statement>();

function connection(path: string, generation: number): Database.Database {
  if (!db || openPath !== path || openGeneration !== generation) {
    db?.close();
    db = null;
    statements.clear();
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('query_only = ON');
    openPath = path;
    openGeneration = generation;
  }
  return db;
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

export default function run(task: QueryTask | RankTask): TaskResult {
  try {
    const conn = connection(task.path, task.generation);
    if (task.kind === 'rank') {
      // One read transaction: every statement of the plan sees the same state of the file.
      const ranked = conn.transaction(() => rank(task.profile, task.plan, (sql, b) => statement(conn, sql).all(b) as Record<string, unknown>[], task.window))();
      return { ranked };
    }
    return { rows: statement(conn, task.sql).all(...task.params) };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { error: { code: String(err.code ?? (e instanceof RangeError || e instanceof TypeError ? 'BIND' : 'UNKNOWN')), message: String(err.message ?? e) } };
  }
}
