// Records as PocketBase exports them: which fields a requester sees (hidden fields for superusers only,
// an auth record's email for superusers, its owner, its managers or when emailVisibility is on), with
// expand, rendered either straight to JSON text (fast path) or to plain values for the `fields` picker.
import type { ColumnSpec } from '../../replica/schema.js';
import type { ReplicaStore } from '../../replica/store.js';
import type { Catalog, CollectionInfo } from './catalog.js';
import { numberJson, storedJsonToGo, utf8Compare } from './json.js';
import { managedIds, type Row } from './query.js';
import type { RequestInfo } from './request.js';

export type ExpandValue = RecordNode | RecordNode[];

export interface RecordNode {
  coll: CollectionInfo;
  row: Row;
  /** null: no expand key in the output; {} is printed as "expand":{}. */
  expand: Map<string, ExpandValue> | null;
  /** Back-relation ids set while expanding (PocketBase's record.Set of a non-field key). */
  dynamic: Map<string, string[]> | null;
  unhidden: boolean;
  showEmail: boolean;
}

export function node(coll: CollectionInfo, row: Row): RecordNode {
  return { coll, row, expand: null, dynamic: null, unhidden: false, showEmail: false };
}

/** autoResolveRecordsFlags for records of one collection. */
export function resolveFlags(store: ReplicaStore, catalog: Catalog, nodes: RecordNode[], info: RequestInfo): void {
  if (nodes.length === 0) return;
  const superuser = info.requester.kind === 'superuser';
  if (superuser) for (const n of nodes) { n.unhidden = true; n.showEmail = true; }
  const coll = nodes[0].coll;
  if (!coll.isAuth) return;
  const authId = info.requester.kind === 'anonymous' ? null : String(info.requester.record.id ?? '');
  if (authId !== null) for (const n of nodes) if (n.row.id === authId) n.showEmail = true;
  const managed = managedIds(store, catalog, coll, info, nodes.map((n) => String(n.row.id)));
  for (const n of nodes) if (managed.has(String(n.row.id))) n.showEmail = true;
}

/** The record's relation value as GetStringSlice sees it: non-empty, unique ids. */
export function stringSlice(n: RecordNode, name: string): string[] {
  const dyn = n.dynamic?.get(name);
  if (dyn) return uniqueNonEmpty(dyn);
  const colSpec = n.coll.spec.columns.find((c) => c.name === name);
  if (!colSpec) return [];
  const v = n.row[name];
  if (v === null || v === undefined || v === '') return [];
  if (colSpec.storage === 'json') {
    const parsed = JSON.parse(String(v)) as unknown;
    return uniqueNonEmpty(Array.isArray(parsed) ? parsed.map(String) : [String(parsed)]);
  }
  return [String(v)];
}

function uniqueNonEmpty(list: string[]): string[] {
  return [...new Set(list.filter((s) => s !== ''))];
}

interface Layout { keys: Array<{ key: string; col: ColumnSpec | null }> }
const layouts = new WeakMap<CollectionInfo, Layout>();

/** Output keys in Go's sorted order, with collectionId/collectionName/expand slotted in. */
function layoutOf(coll: CollectionInfo): Layout {
  let l = layouts.get(coll);
  if (!l) {
    const keys: Layout['keys'] = coll.spec.columns.map((c) => ({ key: c.name, col: c }));
    for (const k of ['collectionId', 'collectionName', 'expand']) if (!keys.some((x) => x.key === k)) keys.push({ key: k, col: null });
    keys.sort((a, b) => utf8Compare(a.key, b.key));
    layouts.set(coll, (l = { keys }));
  }
  return l;
}

function visible(n: RecordNode, c: ColumnSpec): boolean {
  if (c.hidden && !n.unhidden) return false;
  if (n.coll.isAuth && c.name === 'email' && !n.showEmail && !(n.row.emailVisibility === 1 || n.row.emailVisibility === true)) return false;
  return true;
}

function valueJson(c: ColumnSpec, v: unknown): string {
  switch (c.storage) {
    case 'text': return JSON.stringify(v ?? '');
    case 'number': return numberJson(typeof v === 'number' ? v : Number(v ?? 0));
    case 'bool': return v === 1 || v === 1n || v === true ? 'true' : 'false';
    case 'json':
      if (v === null || v === undefined) return c.multiple ? '[]' : c.type === 'geoPoint' ? '{"lon":0,"lat":0}' : 'null';
      return c.type === 'geoPoint' ? geoPointJson(String(v)) : storedJsonToGo(String(v));
  }
}

/** types.GeoPoint is a Go struct: its fields print in declaration order (lon, lat), not sorted. */
function geoPointJson(text: string): string {
  const p = JSON.parse(text) as { lon?: number; lat?: number };
  return `{"lon":${numberJson(Number(p.lon ?? 0))},"lat":${numberJson(Number(p.lat ?? 0))}}`;
}

/** Fast path: the record straight to JSON text. */
export function recordJson(n: RecordNode): string {
  let out = '{';
  let first = true;
  for (const { key, col } of layoutOf(n.coll).keys) {
    let v: string;
    if (col) {
      if (!visible(n, col)) continue;
      v = valueJson(col, n.row[key]);
    } else if (key === 'collectionId') v = JSON.stringify(n.coll.c.id);
    else if (key === 'collectionName') v = JSON.stringify(n.coll.c.name);
    else {
      if (!n.expand) continue;
      v = expandJson(n.expand);
    }
    out += (first ? '' : ',') + JSON.stringify(key) + ':' + v;
    first = false;
  }
  return out + '}';
}

function expandJson(e: Map<string, ExpandValue>): string {
  const keys = [...e.keys()].sort(utf8Compare);
  return '{' + keys.map((k) => {
    const v = e.get(k)!;
    return JSON.stringify(k) + ':' + (Array.isArray(v) ? '[' + v.map(recordJson).join(',') + ']' : recordJson(v));
  }).join(',') + '}';
}

/** Plain values (what PocketBase's picker sees after its marshal/unmarshal round trip). */
export function recordPlain(n: RecordNode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, col } of layoutOf(n.coll).keys) {
    if (col) {
      if (!visible(n, col)) continue;
      out[key] = JSON.parse(valueJson(col, n.row[key]));
    } else if (key === 'collectionId') out[key] = n.coll.c.id;
    else if (key === 'collectionName') out[key] = n.coll.c.name;
    else if (n.expand) {
      const e: Record<string, unknown> = {};
      for (const [k, v] of n.expand) e[k] = Array.isArray(v) ? v.map(recordPlain) : recordPlain(v);
      out[key] = e;
    }
  }
  return out;
}
