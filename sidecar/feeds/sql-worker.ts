// A worker thread of the feed query pool: runs read-only SQL on its own connection to the replica file,
// so a heavy ranking query never blocks the event loop that serves everything else.
import Database from 'better-sqlite3';

interface Task {
  path: string;
  /** Bumped when the replica file is replaced: the worker reopens it. */
  generation: number;
  sql: string;
  /** Positional values, or one object of named values (@p1 ...). */
  params: unknown[];
}

/** SQLite errors come back as data: an Error's `code` does not survive the thread boundary. */
export type TaskResult = { rows: unknown[] } | { error: { code: string; message: string } };

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

export default function run(task: Task): TaskResult {
  try {
    const conn = connection(task.path, task.generation);
    let stmt = statements.get(task.sql);
    if (!stmt) {
      stmt = conn.prepare(task.sql);
      if (statements.size > 200) statements.clear();
      statements.set(task.sql, stmt);
    }
    return { rows: stmt.all(...task.params) };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { error: { code: String(err.code ?? (e instanceof RangeError || e instanceof TypeError ? 'BIND' : 'UNKNOWN')), message: String(err.message ?? e) } };
  }
}
