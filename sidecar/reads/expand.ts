// The `expand` parameter (core/record_query_expand.go): direct and back relations, nested up to 6 levels,
// each expanded collection fetched under its viewRule with @request.context = "expand". A path that fails
// (unknown field, superuser-only collection) is dropped whole, silently, as PocketBase only logs it.
import { ApiError } from '../errors.js';
import type { ReplicaStore } from '../../replica/store.js';
import type { Catalog, CollectionInfo } from './catalog.js';
import { hasSingleColumnUniqueIndex, isMultiple } from './catalog.js';
import { ResolveError } from './errors.js';
import { backRelationIds, findByIds } from './query.js';
import { node, resolveFlags, stringSlice, type ExpandValue, type RecordNode } from './records.js';
import type { RequestInfo } from './request.js';

const MAX_LEVEL = 6;
const VIA = /^(\w+)_via_(\w+)$/;
const VIA_OLD = /^(\w+)\((\w+)\)$/;

/** normalizeExpands: spaces removed, dots trimmed, paths contained in longer ones dropped, unique. */
export function normalizeExpands(paths: string[]): string[] {
  const norm = paths.map((p) => p.replace(/ /g, '').replace(/^\.+|\.+$/g, '')).filter((p) => p !== '');
  const kept = norm.filter((p1, i) => !norm.some((p2, j) => i !== j && p2.startsWith(p1 + '.')));
  return [...new Set(kept)];
}

class PathFailed extends Error {}

export class Expander {
  private readonly info: RequestInfo;
  private readonly superuser: boolean;

  constructor(private readonly store: ReplicaStore, private readonly catalog: Catalog, info: RequestInfo) {
    this.info = { ...info, context: 'expand' };
    this.superuser = info.requester.kind === 'superuser';
  }

  expand(records: RecordNode[], expands: string[]): void {
    for (const path of normalizeExpands(expands)) {
      try {
        this.expandPath(records, path, 1);
      } catch (e) {
        if (!(e instanceof PathFailed)) throw e;
      }
    }
  }

  private expandPath(records: RecordNode[], path: string, level: number): void {
    if (path === '' || level > MAX_LEVEL || records.length === 0) return;
    const main = records[0].coll;
    const dot = path.indexOf('.');
    const head = dot === -1 ? path : path.slice(0, dot);
    const rest = dot === -1 ? '' : path.slice(dot + 1);
    const m = head.includes('(') ? VIA_OLD.exec(head) : VIA.exec(head);

    let relName: string;
    let multiple: boolean;
    let relColl: CollectionInfo;
    if (m) {
      relColl = this.catalog.need(m[1]);
      const backField = relColl.fields.get(m[2]);
      if (!backField || backField.type !== 'relation' || backField.collectionId !== main.c.id) throw new PathFailed();
      for (const r of records) {
        const ids = backRelationIds(this.store, relColl, backField.name, isMultiple(backField), String(r.row.id));
        if (ids.length > 0) (r.dynamic ??= new Map()).set(head, ids);
      }
      relName = head;
      multiple = !hasSingleColumnUniqueIndex(relColl.c, backField.name);
    } else {
      const field = main.fields.get(head);
      if (!field || field.type !== 'relation') throw new PathFailed();
      relColl = this.catalog.need(String(field.collectionId ?? ''));
      relName = head;
      multiple = isMultiple(field);
    }

    const wanted: string[] = [];
    const seen = new Set<string>();
    for (const r of records) for (const id of stringSlice(r, relName)) if (!seen.has(id)) { seen.add(id); wanted.push(id); }

    let rels: RecordNode[];
    try {
      rels = wanted.length ? findByIds(this.store, this.catalog, relColl, this.info, wanted, this.superuser).map((row) => node(relColl, row)) : [];
    } catch (e) {
      if (e instanceof ApiError || e instanceof ResolveError) throw new PathFailed();
      throw e;
    }
    resolveFlags(this.store, this.catalog, rels, this.info);
    if (rest) this.expandPath(rels, rest, level + 1);

    const indexed = new Map(rels.map((r) => [String(r.row.id), r]));
    for (const model of records) {
      model.expand ??= new Map();
      const valid = stringSlice(model, relName).map((id) => indexed.get(id)).filter((x): x is RecordNode => !!x);
      if (valid.length === 0) continue;
      const old = model.expand.get(relName);
      const oldList = old === undefined ? [] : Array.isArray(old) ? old : [old];
      for (const o of oldList) for (const rel of valid) if (rel.row.id === o.row.id) mergeExpand(rel, o.expand);
      model.expand.set(relName, multiple ? valid : valid[0]);
    }
  }
}

/** Record.MergeExpand: same-id records merge recursively, new ones are appended. */
function mergeExpand(target: RecordNode, from: Map<string, ExpandValue> | null): void {
  if (!from || from.size === 0) return;
  if (!target.expand) { target.expand = from; return; }
  for (const [key, incoming] of from) {
    const old = target.expand.get(key);
    if (old === undefined) { target.expand.set(key, incoming); continue; }
    const wasOldSlice = Array.isArray(old);
    const oldSlice = wasOldSlice ? [...old] : [old];
    const wasNewSlice = Array.isArray(incoming);
    const newSlice = wasNewSlice ? incoming : [incoming];
    const oldIndexed = new Map(oldSlice.map((r) => [String(r.row.id), r]));
    for (const n of newSlice) {
      const o = oldIndexed.get(String(n.row.id));
      if (o) mergeExpand(o, n.expand);
      else oldSlice.push(n);
    }
    target.expand.set(key, wasOldSlice || wasNewSlice || oldSlice.length === 0 ? oldSlice : oldSlice[0]);
  }
}
