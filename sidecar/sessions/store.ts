// Where sessions live: the interface, and the SQLite store (HAPTA_DATA_DIR/sessions.db) a single
// sidecar uses. The Redis store (redis-store.ts) implements the same interface for several sidecars.
// PocketBase tokens are stored sealed (secret-box.ts); keys themselves are never stored, only their ids.
import Database from 'better-sqlite3';
import { Lru } from '../lru.js';

export interface StoredSession {
  sid: string;
  collectionId: string;
  collectionName: string;
  recordId: string;
  /** PocketBase token, sealed. */
  pbToken: string;
  /** ms */
  pbTokenExp: number;
  refreshable: boolean;
  currentKid: string;
  /** ms: expiry of the current key */
  keyExp: number;
  /** Keys retired by rotation, newest first: [kid, retiredAt ms]. */
  retired: [string, number][];
  createdAt: number;
  revokedAt: number | null;
}

export interface Rotation {
  sid: string;
  expectedKid: string;
  newKid: string;
  keyExp: number;
  pbToken: string;
  pbTokenExp: number;
  now: number;
}

export interface SessionStore {
  create(s: StoredSession): Promise<void>;
  get(sid: string): Promise<StoredSession | null>;
  /** Atomically replaces the current key if it is still `expectedKid`; null when it was not. */
  rotate(r: Rotation): Promise<StoredSession | null>;
  setPbToken(sid: string, pbToken: string, pbTokenExp: number): Promise<void>;
  revoke(sid: string, now: number): Promise<boolean>;
  revokeRecord(collectionId: string, recordId: string, now: number): Promise<number>;
  /** Live sessions (not revoked, key not expired), for periodic validation. */
  listLive(now: number, limit: number): Promise<StoredSession[]>;
  /** Live sessions of one auth record. */
  listForRecord(collectionId: string, recordId: string, now: number): Promise<StoredSession[]>;
  /** Short-lived key-value entries (file tokens). */
  putTemp(key: string, value: string, ttlMs: number): Promise<void>;
  getTemp(key: string): Promise<string | null>;
  close(): Promise<void>;
}

/** Retired keys kept per session (older ones are past any grace window anyway). */
export const RETIRED_KEPT = 8;

interface Row {
  sid: string; collection_id: string; collection_name: string; record_id: string; pb_token: string; pb_token_exp: number;
  refreshable: number; current_kid: string; key_exp: number; retired: string; created_at: number; revoked_at: number | null;
}

function fromRow(r: Row): StoredSession {
  return {
    sid: r.sid, collectionId: r.collection_id, collectionName: r.collection_name, recordId: r.record_id,
    pbToken: r.pb_token, pbTokenExp: r.pb_token_exp, refreshable: r.refreshable === 1, currentKid: r.current_kid,
    keyExp: r.key_exp, retired: JSON.parse(r.retired) as [string, number][], createdAt: r.created_at, revokedAt: r.revoked_at,
  };
}

/**
 * Sessions in SQLite, for one sidecar. This process is the only writer of the file, so an in-memory
 * cache in front of it (updated by every write) is authoritative and spares a query per request.
 */
export class SqliteSessionStore implements SessionStore {
  private readonly db: Database.Database;
  private readonly cache = new Lru<string, StoredSession>(100_000);
  private readonly statements = new Map<string, Database.Statement>();

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS sessions (
        sid TEXT PRIMARY KEY NOT NULL, collection_id TEXT NOT NULL, collection_name TEXT NOT NULL, record_id TEXT NOT NULL,
        pb_token TEXT NOT NULL, pb_token_exp INTEGER NOT NULL, refreshable INTEGER NOT NULL, current_kid TEXT NOT NULL,
        key_exp INTEGER NOT NULL, retired TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
      CREATE INDEX IF NOT EXISTS sessions_record ON sessions (collection_id, record_id);
      CREATE INDEX IF NOT EXISTS sessions_key_exp ON sessions (key_exp);
      CREATE TABLE IF NOT EXISTS temp (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, expires_at INTEGER NOT NULL);
    `);
  }

  /** Each statement prepared once (sign-ins and rotations run the same few). */
  private statement(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  private load(sid: string): StoredSession | null {
    const r = this.statement('SELECT * FROM sessions WHERE sid = ?').get(sid) as Row | undefined;
    const s = r ? fromRow(r) : null;
    if (s) this.cache.set(sid, s);
    else this.cache.delete(sid);
    return s;
  }

  async create(s: StoredSession): Promise<void> {
    this.statement(`INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      s.sid, s.collectionId, s.collectionName, s.recordId, s.pbToken, s.pbTokenExp, s.refreshable ? 1 : 0,
      s.currentKid, s.keyExp, JSON.stringify(s.retired), s.createdAt, s.revokedAt);
    // Sessions whose key expired long ago are of no use to anyone.
    this.statement('DELETE FROM sessions WHERE key_exp < ?').run(s.createdAt - 7 * 86400_000);
    this.cache.set(s.sid, { ...s });
  }

  async get(sid: string): Promise<StoredSession | null> {
    return this.cache.get(sid) ?? this.load(sid);
  }

  async rotate(r: Rotation): Promise<StoredSession | null> {
    return this.db.transaction(() => {
      const row = this.statement('SELECT * FROM sessions WHERE sid = ?').get(r.sid) as Row | undefined;
      if (!row || row.revoked_at !== null || row.current_kid !== r.expectedKid) return null;
      const retired = [[row.current_kid, r.now], ...(JSON.parse(row.retired) as [string, number][])].slice(0, RETIRED_KEPT);
      this.statement('UPDATE sessions SET current_kid = ?, key_exp = ?, pb_token = ?, pb_token_exp = ?, retired = ? WHERE sid = ?')
        .run(r.newKid, r.keyExp, r.pbToken, r.pbTokenExp, JSON.stringify(retired), r.sid);
      return this.load(r.sid);
    })();
  }

  async setPbToken(sid: string, pbToken: string, pbTokenExp: number): Promise<void> {
    this.statement('UPDATE sessions SET pb_token = ?, pb_token_exp = ? WHERE sid = ?').run(pbToken, pbTokenExp, sid);
    this.load(sid);
  }

  async revoke(sid: string, now: number): Promise<boolean> {
    const changed = this.statement('UPDATE sessions SET revoked_at = ? WHERE sid = ? AND revoked_at IS NULL').run(now, sid).changes > 0;
    this.load(sid);
    return changed;
  }

  async revokeRecord(collectionId: string, recordId: string, now: number): Promise<number> {
    const sids = (this.statement('SELECT sid FROM sessions WHERE collection_id = ? AND record_id = ? AND revoked_at IS NULL')
      .all(collectionId, recordId) as { sid: string }[]).map((r) => r.sid);
    const n = this.statement('UPDATE sessions SET revoked_at = ? WHERE collection_id = ? AND record_id = ? AND revoked_at IS NULL')
      .run(now, collectionId, recordId).changes;
    for (const sid of sids) this.load(sid);
    return n;
  }

  async listLive(now: number, limit: number): Promise<StoredSession[]> {
    return (this.statement('SELECT * FROM sessions WHERE revoked_at IS NULL AND key_exp > ? ORDER BY key_exp LIMIT ?').all(now, limit) as Row[]).map(fromRow);
  }

  async listForRecord(collectionId: string, recordId: string, now: number): Promise<StoredSession[]> {
    return (this.statement('SELECT * FROM sessions WHERE collection_id = ? AND record_id = ? AND revoked_at IS NULL AND key_exp > ?')
      .all(collectionId, recordId, now) as Row[]).map(fromRow);
  }

  async putTemp(key: string, value: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.statement('INSERT OR REPLACE INTO temp VALUES (?, ?, ?)').run(key, value, now + ttlMs);
    this.statement('DELETE FROM temp WHERE expires_at < ?').run(now);
  }

  async getTemp(key: string): Promise<string | null> {
    const r = this.statement('SELECT value, expires_at FROM temp WHERE key = ?').get(key) as { value: string; expires_at: number } | undefined;
    return r && r.expires_at > Date.now() ? r.value : null;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
