// The two read endpoints as PocketBase's apis/record_crud.go runs them (recordsList, recordView), over one
// replica snapshot and synchronously: checks in PocketBase's order, the query, flags, expand, then the
// response body. Returns the JSON text and status, or throws ApiError/Unsupported.
import { ApiError } from '../errors.js';
import type { ReplicaStore } from '../../replica/store.js';
import type { Catalog, CollectionInfo } from './catalog.js';
import { ResolveError } from './errors.js';
import { Expander } from './expand.js';
import { FieldsError, parseFields, pick } from './fields.js';
import { numberJson, stringifyGo } from './json.js';
import { findByIds, listRecords, parseSortParam, type ListParams, type Row } from './query.js';
import { node, recordJson, recordPlain, resolveFlags, type RecordNode } from './records.js';
import { goAtoi, goParseBool, type RequestInfo } from './request.js';

export interface Answer { status: number; body: string; empty?: boolean }

const FORBIDDEN = 'Only superusers can perform this action.';

/** checkForSuperuserOnlyRuleFields: a plain substring test on filter, then sort. */
export function checkSuperuserOnlyFields(info: RequestInfo): void {
  if (info.requester.kind === 'superuser') return;
  for (const param of ['filter', 'sort']) {
    const v = info.query[param];
    if (!v) continue;
    for (const f of ['@collection.', '@request.']) {
      if (v.includes(f)) throw new ApiError(403, 'Only superusers can filter by ' + f);
    }
  }
}

export function listParams(info: RequestInfo): ListParams {
  const q = info.query;
  const p: ListParams = { page: 1, perPage: 30, skipTotal: false, sort: [], filter: q.filter ?? '' };
  const bad = () => new ResolveError('invalid search parameter');
  if (q.skipTotal) {
    const v = goParseBool(q.skipTotal);
    if (v === null) throw bad();
    p.skipTotal = v;
  }
  if (q.page) {
    const v = goAtoi(q.page);
    if (v === null) throw bad();
    p.page = v;
  }
  if (q.perPage) {
    const v = goAtoi(q.perPage);
    if (v === null) throw bad();
    p.perPage = v;
  }
  if (q.sort) p.sort = parseSortParam(q.sort);
  if (p.page <= 0) p.page = 1;
  if (p.perPage <= 0) p.perPage = 30;
  else if (p.perPage > 1000) p.perPage = 1000;
  return p;
}

export function enrich(store: ReplicaStore, catalog: Catalog, nodes: RecordNode[], info: RequestInfo): void {
  resolveFlags(store, catalog, nodes, info);
  const expand = info.query.expand;
  if (expand && nodes.length > 0) new Expander(store, catalog, info).expand(nodes, expand.split(','));
}

/** Picked fields parsed up front so a picker error is known before anything is rendered. */
export function fieldsOf(info: RequestInfo) {
  const raw = info.query.fields;
  if (!raw) return null;
  try {
    return parseFields(raw);
  } catch (e) {
    if (e instanceof FieldsError) return 'error' as const;
    throw e;
  }
}

/**
 * The JSON array of a page of records as PocketBase renders it for this request: flags, expand, then
 * the `fields` picker (whose error PocketBase raises while writing the answer: its generic 400). The one
 * renderer of record lists: list pages here, feed pages (task.ts) alike.
 */
export function renderItems(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, rows: Row[], info: RequestInfo): string {
  const nodes = rows.map((row) => node(coll, row));
  enrich(store, catalog, nodes, info);
  const fields = fieldsOf(info);
  if (fields === 'error') throw new ResolveError('invalid fields parameter');
  if (!fields) return `[${nodes.map(recordJson).join(',')}]`;
  const items = nodes.map(recordPlain);
  pick(items, fields);
  return stringifyGo(items);
}

export function list(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, info: RequestInfo): Answer {
  const superuser = info.requester.kind === 'superuser';
  if ((coll.c.listRule === null || coll.c.listRule === undefined) && !superuser) throw new ApiError(403, FORBIDDEN);
  checkSuperuserOnlyFields(info);
  const params = listParams(info);
  const res = listRecords(store, catalog, coll, info, params, superuser);
  const items = renderItems(store, catalog, coll, res.rows, info);
  const tail = `,"page":${numberJson(res.page)},"perPage":${numberJson(res.perPage)},"totalItems":${res.totalItems},"totalPages":${res.totalPages}}`;
  return { status: 200, body: `{"items":${items}${tail}`, empty: res.rows.length === 0 };
}

export function view(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, info: RequestInfo, id: string): Answer {
  const superuser = info.requester.kind === 'superuser';
  if (id === '') throw new ApiError(404, "The requested resource wasn't found.");
  if ((coll.c.viewRule === null || coll.c.viewRule === undefined) && !superuser) throw new ApiError(403, FORBIDDEN);
  let rows;
  try {
    rows = findByIds(store, catalog, coll, info, [id], superuser);
  } catch (e) {
    // PocketBase answers any failure of the lookup (rule included) with a plain 404.
    if (e instanceof ResolveError) throw new ApiError(404, "The requested resource wasn't found.");
    throw e;
  }
  if (rows.length === 0) throw new ApiError(404, "The requested resource wasn't found.");
  const n = node(coll, rows[0]);
  enrich(store, catalog, [n], info);
  const fields = fieldsOf(info);
  // PocketBase's picker fails while writing the answer: its generic 400, whatever the records.
  if (fields === 'error') throw new ResolveError('invalid fields parameter');
  if (!fields) return { status: 200, body: recordJson(n) };
  const plain = recordPlain(n);
  pick(plain, fields);
  return { status: 200, body: stringifyGo(plain) };
}
