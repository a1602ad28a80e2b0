// Collection and field lookups over the replica's catalog, with PocketBase's matching rules (collection
// names case-insensitive, ids and field names exact). A collection PocketBase has but the replica does not
// (views, system collections) cannot be answered here: lookups of unknown names are Unsupported.
import type { PbCollection, PbField } from '../../replica/schema.js';
import { ROWID_COLUMN, tableSpec, type TableSpec } from '../../replica/schema.js';
import type { ReplicaStore } from '../../replica/store.js';
import { Unsupported } from './errors.js';

export interface CollectionInfo {
  c: PbCollection;
  spec: TableSpec;
  fields: Map<string, PbField>;
  /** Fields the replica holds a column for (not password, tokenKey or names it cannot store). */
  columns: Set<string>;
  isAuth: boolean;
}

/** The read path's view of one collection definition (also for collections the replica does not hold). */
export function collectionInfo(c: PbCollection): CollectionInfo {
  const spec = tableSpec(c);
  return { c, spec, fields: new Map(c.fields.map((f) => [f.name, f])), columns: new Set(spec.columns.map((col) => col.name)), isAuth: c.type === 'auth' };
}

/** A snapshot of the catalog, rebuilt whenever the store's collection list changes. */
export class Catalog {
  private byId = new Map<string, CollectionInfo>();
  private byLowerName = new Map<string, CollectionInfo>();

  constructor(readonly store: ReplicaStore, collections: PbCollection[]) {
    for (const c of collections) {
      const info = collectionInfo(c);
      this.byId.set(c.id, info);
      this.byLowerName.set(c.name.toLowerCase(), info);
    }
  }

  /** FindCachedCollectionByNameOrId: null when the replica does not hold it (PocketBase may). */
  find(nameOrId: string): CollectionInfo | null {
    return this.byLowerName.get(nameOrId.toLowerCase()) ?? this.byId.get(nameOrId) ?? null;
  }

  /** Like find, but a collection the replica lacks is a reason to fall back. */
  need(nameOrId: string): CollectionInfo {
    const info = this.find(nameOrId);
    if (!info) throw new Unsupported('collection_not_replicated');
    return info;
  }

  byCollectionId(id: string): CollectionInfo | undefined {
    return this.byId.get(id);
  }
}

const catalogs = new WeakMap<ReplicaStore, { key: PbCollection[]; catalog: Catalog }>();

/** The catalog of a store, cached until the store reloads its definitions. */
export function catalogOf(store: ReplicaStore): Catalog {
  const collections = store.collections();
  const cached = catalogs.get(store);
  if (cached && sameList(cached.key, collections)) return cached.catalog;
  const catalog = new Catalog(store, collections);
  catalogs.set(store, { key: collections, catalog });
  return catalog;
}

function sameList(a: PbCollection[], b: PbCollection[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const ROWID = ROWID_COLUMN;

const authTablesByCatalog = new WeakMap<object, string[]>();

/** The replica tables of the auth collections (rules read the requester's record from one of them). */
export function authTablesOf(store: ReplicaStore): string[] {
  const catalog = catalogOf(store);
  let tables = authTablesByCatalog.get(catalog);
  if (!tables) authTablesByCatalog.set(catalog, (tables = store.collections().filter((c) => c.type === 'auth').map((c) => tableSpec(c).table)));
  return tables;
}

/** select, file and relation fields implement PocketBase's MultiValuer. */
export function isMultiValuer(f: PbField): boolean {
  return f.type === 'select' || f.type === 'file' || f.type === 'relation';
}

export function isMultiple(f: PbField): boolean {
  return isMultiValuer(f) && Number(f.maxSelect ?? 0) > 1;
}

/** dbutils.FindSingleColumnUniqueIndex over the collection's index definitions. */
export function hasSingleColumnUniqueIndex(c: PbCollection, column: string): boolean {
  for (const idx of c.indexes ?? []) {
    const m = /^\s*CREATE\s+UNIQUE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?[^(]*?\bON\b[^(]*\((.*)\)\s*(?:WHERE\b[\s\S]*)?$/is.exec(idx);
    if (!m) continue;
    const cols = splitTopLevel(m[1]);
    if (cols.length !== 1) continue;
    const name = cols[0].trim().split(/\s+/)[0].replace(/^[`"'[]|[`"'\]]$/g, '');
    if (name.toLowerCase() === column.toLowerCase()) return true;
  }
  return false;
}

function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out;
}
