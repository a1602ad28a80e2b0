// Maps PocketBase collections to replica tables: one table per base/auth collection, named after it,
// one column per field, values stored so that decoding gives back exactly what PocketBase's API returns.
// Multi-value fields and json fields are stored as JSON text; bools as 0/1.

export interface PbField {
  id?: string;
  name: string;
  type: string;
  hidden?: boolean;
  system?: boolean;
  maxSelect?: number;
  [key: string]: unknown;
}

export interface PbCollection {
  id: string;
  name: string;
  type: 'base' | 'auth' | 'view' | string;
  system?: boolean;
  fields: PbField[];
  listRule?: string | null;
  viewRule?: string | null;
  createRule?: string | null;
  updateRule?: string | null;
  deleteRule?: string | null;
  manageRule?: string | null;
  indexes?: string[];
  [key: string]: unknown;
}

/** How a column holds its value. */
export type Storage = 'text' | 'number' | 'bool' | 'json';

export interface ColumnSpec {
  name: string;
  type: string;
  storage: Storage;
  sqlType: 'TEXT' | 'NUMERIC' | 'INTEGER';
  hidden: boolean;
  multiple: boolean;
}

export interface TableSpec {
  collectionId: string;
  collectionName: string;
  table: string;
  columns: ColumnSpec[];
}

/** Fields PocketBase never returns through its API: nothing to replicate. */
const NEVER_EXPORTED = new Set(['password']);
const AUTH_NEVER_EXPORTED = new Set(['password', 'tokenKey']);
const SAFE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,99}$|^_[A-Za-z0-9_]{1,99}$/;

export const ROWID_COLUMN = '_pb_rowid';

export function isReplicable(c: PbCollection, includeSystem: boolean): boolean {
  if (c.type !== 'base' && c.type !== 'auth') return false;
  if (c.system && !includeSystem) return false;
  if (c.name.startsWith('_hapta')) return false;
  return SAFE_NAME.test(c.name);
}

function columnFor(field: PbField, isAuth: boolean): ColumnSpec | null {
  if (field.type === 'password' || NEVER_EXPORTED.has(field.name) || (isAuth && AUTH_NEVER_EXPORTED.has(field.name))) return null;
  if (!SAFE_NAME.test(field.name) || field.name === ROWID_COLUMN) return null;
  const multiple = ['select', 'relation', 'file'].includes(field.type) && (field.maxSelect ?? 1) > 1;
  const hidden = field.hidden === true;
  const base = { name: field.name, type: field.type, hidden, multiple };
  if (multiple) return { ...base, storage: 'json', sqlType: 'TEXT' };
  switch (field.type) {
    case 'number':
      return { ...base, storage: 'number', sqlType: 'NUMERIC' };
    case 'bool':
      return { ...base, storage: 'bool', sqlType: 'INTEGER' };
    case 'json':
    case 'geoPoint':
      return { ...base, storage: 'json', sqlType: 'TEXT' };
    case 'text': case 'editor': case 'email': case 'url': case 'date': case 'autodate':
    case 'select': case 'relation': case 'file':
      return { ...base, storage: 'text', sqlType: 'TEXT' };
    default:
      // A field type this version does not know: keep its JSON value as is.
      return { ...base, storage: 'json', sqlType: 'TEXT' };
  }
}

export function tableSpec(c: PbCollection): TableSpec {
  const isAuth = c.type === 'auth';
  const columns: ColumnSpec[] = [];
  for (const f of c.fields) {
    const col = columnFor(f, isAuth);
    if (col) columns.push(col);
  }
  if (!columns.some((col) => col.name === 'id')) throw new Error(`collection ${c.name} has no id field`);
  return { collectionId: c.id, collectionName: c.name, table: c.name, columns };
}

/**
 * A name that reaches a table's own rowid: SQLite's `_rowid_`, `rowid` or `oid`, whichever no column of
 * the collection takes (null if every one is a field's name).
 */
export function rowidAlias(spec: TableSpec): string | null {
  const taken = new Set(spec.columns.map((c) => c.name.toLowerCase()));
  return ['_rowid_', 'rowid', 'oid'].find((n) => !taken.has(n)) ?? null;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** CREATE TABLE for a collection; hidden fields are marked in a comment a person sees in `.schema`. */
export function createTableSql(spec: TableSpec, table = spec.table): string {
  const cols = spec.columns.map((col) => {
    const pk = col.name === 'id' ? ' PRIMARY KEY NOT NULL' : '';
    const note = col.hidden ? ' /* hidden: superusers only */' : '';
    return `  ${quoteIdent(col.name)} ${col.sqlType}${pk}${note}`;
  });
  cols.push(`  ${quoteIdent(ROWID_COLUMN)} INTEGER NOT NULL /* PocketBase rowid: its order when no sort is given */`);
  return `CREATE TABLE ${quoteIdent(table)} (\n${cols.join(',\n')}\n)`;
}

export function createIndexSql(spec: TableSpec, table = spec.table): string[] {
  return [`CREATE INDEX ${quoteIdent(`${table}__pb_rowid`)} ON ${quoteIdent(table)} (${quoteIdent(ROWID_COLUMN)})`];
}

/** Row values in column order (then the rowid), from a record as PocketBase's API returns it. */
export function encodeRecord(spec: TableSpec, record: Record<string, unknown>, rowid: number): unknown[] {
  const out: unknown[] = new Array(spec.columns.length + 1);
  for (let i = 0; i < spec.columns.length; i++) out[i] = encodeValue(spec.columns[i], record[spec.columns[i].name]);
  out[spec.columns.length] = rowid;
  return out;
}

function encodeValue(col: ColumnSpec, v: unknown): unknown {
  switch (col.storage) {
    case 'text':
      return v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    case 'number':
      return typeof v === 'number' ? v : v === undefined || v === null ? 0 : Number(v);
    case 'bool':
      return v === true ? 1 : 0;
    case 'json':
      return v === undefined || v === null ? null : JSON.stringify(v);
  }
}

/** A stored row back to the API's value for each column. */
export function decodeValue(col: ColumnSpec, v: unknown): unknown {
  switch (col.storage) {
    case 'text':
      return v ?? '';
    case 'number':
      return typeof v === 'number' ? v : Number(v ?? 0);
    case 'bool':
      return v === 1 || v === 1n || v === true;
    case 'json':
      return v === null || v === undefined ? (col.multiple ? [] : null) : JSON.parse(String(v));
  }
}

/** The record as a superuser sees it through PocketBase's API. */
export function decodeRow(spec: TableSpec, row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { collectionId: spec.collectionId, collectionName: spec.collectionName };
  for (const col of spec.columns) out[col.name] = decodeValue(col, row[col.name]);
  return sortKeys(out);
}

/** PocketBase (Go maps) emits object keys in sorted order. */
export function sortKeys(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj).sort()) out[k] = obj[k];
  return out;
}

/** Whether two collection definitions need a different table (vs. only rules or options changed). */
export function sameTableShape(a: TableSpec, b: TableSpec): boolean {
  if (a.table !== b.table || a.columns.length !== b.columns.length) return false;
  return a.columns.every((col, i) => {
    const o = b.columns[i];
    return col.name === o.name && col.storage === o.storage && col.sqlType === o.sqlType && col.hidden === o.hidden && col.multiple === o.multiple;
  });
}
