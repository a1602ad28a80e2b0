// PocketBase's secondary indexes, recreated on the replica's tables so filters, sorts and feeds read
// them as PocketBase does. Only plain column lists are copied (quoted identifiers, ASC/DESC, COLLATE);
// expression and partial indexes are skipped. Unique indexes become plain ones: the replica applies a
// batch's current states in one transaction, and an intermediate state may repeat a key for a moment.
// Each index ends with PocketBase's rowid: the read path breaks sort ties by it, so `ORDER BY created
// DESC, _pb_rowid DESC LIMIT 20` walks the index instead of sorting every matching row.
import type Database from 'better-sqlite3';
import { quoteIdent, ROWID_COLUMN, type TableSpec } from './schema.js';

const PREFIX = '_hapta_ix_';
const INDEX = /^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?[`"[]?([A-Za-z0-9_]+)[`"\]]?\s+ON\s+[`"[]?[A-Za-z0-9_]+[`"\]]?\s*\((.*)\)\s*$/is;
const TERM = /^\s*[`"[]?([A-Za-z0-9_]+)[`"\]]?(\s+COLLATE\s+(?:NOCASE|BINARY|RTRIM))?(\s+(?:ASC|DESC))?\s*$/i;

/**
 * The key terms of a PocketBase index the replica can hold (a plain column list: `"col" COLLATE X DESC`),
 * or null for an expression or partial index, or one naming a column the table does not have.
 */
export function indexTerms(spec: TableSpec, def: string): { name: string; terms: string[] } | null {
  const m = INDEX.exec(def);
  if (!m) return null;
  const columns = new Set(spec.columns.map((c) => c.name));
  const terms: string[] = [];
  for (const raw of m[2].split(',')) {
    const t = TERM.exec(raw);
    if (!t || !columns.has(t[1])) return null;
    terms.push(`${quoteIdent(t[1])}${t[2] ? ` COLLATE ${t[2].trim().split(/\s+/)[1].toUpperCase()}` : ''}${t[3] ? ` ${t[3].trim().toUpperCase()}` : ''}`);
  }
  return terms.length > 0 ? { name: m[1], terms } : null;
}

/** `CREATE INDEX` statements for the replica table, from PocketBase's index definitions. */
export function replicaIndexes(spec: TableSpec, pbIndexes: readonly string[]): string[] {
  const out: string[] = [];
  for (const def of pbIndexes) {
    const held = indexTerms(spec, def);
    if (!held) continue;
    const terms = [...held.terms];
    if (!terms.some((t) => t.startsWith(quoteIdent(ROWID_COLUMN)))) terms.push(quoteIdent(ROWID_COLUMN));
    out.push(`CREATE INDEX ${quoteIdent(`${PREFIX}${spec.table}__${held.name}`)} ON ${quoteIdent(spec.table)} (${terms.join(', ')})`);
  }
  return out;
}

/** Replaces the copied indexes of one table with those its collection declares now. */
export function syncIndexes(db: Database.Database, spec: TableSpec, pbIndexes: readonly string[]): void {
  const existing = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE ? ESCAPE '\\'")
    .all(spec.table, `${PREFIX.replace(/_/g, '\\_')}%`) as { name: string }[];
  for (const r of existing) db.exec(`DROP INDEX IF EXISTS ${quoteIdent(r.name)}`);
  for (const sql of replicaIndexes(spec, pbIndexes)) db.exec(sql);
}
