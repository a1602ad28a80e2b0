// The record of an event exactly as PocketBase's realtimeBroadcastRecord writes it for one subscription:
// hidden fields for superusers only, an auth record's email for superusers, its owner, its managers or
// when emailVisibility is on, `expand` fetched under the related collections' view rules for that
// subscriber, then `fields` picked (a picker error sends the whole record, as PocketBase does). The read
// path's renderer is used as is, so events and REST answers print records identically.
import type { ReplicaStore } from '../../replica/store.js';
import type { Catalog, CollectionInfo } from '../reads/catalog.js';
import { Unsupported } from '../reads/errors.js';
import { Expander } from '../reads/expand.js';
import { FieldsError, parseFields, pick } from '../reads/fields.js';
import { stringifyGo } from '../reads/json.js';
import type { Row } from '../reads/query.js';
import { node, recordJson, recordPlain, resolveFlags } from '../reads/records.js';
import type { RequestInfo } from '../reads/request.js';

export interface RenderStats {
  expandUnsupported: number;
}

/** The JSON text of `row` as the event's `record` for a subscriber described by `info`. */
export function renderRecord(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo, row: Row, info: RequestInfo, stats: RenderStats): string {
  const expand = info.query.expand ?? '';
  let n = node(coll, row);
  flags(store, catalog, n, info);
  if (expand !== '') {
    try {
      new Expander(store, catalog, info).expand([n], expand.split(','));
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
      // An expand into a collection the replica does not hold: the record without it.
      stats.expandUnsupported++;
      n = node(coll, row);
      flags(store, catalog, n, info);
    }
  }
  const raw = info.query.fields ?? '';
  if (raw === '') return recordJson(n);
  let fields;
  try {
    fields = parseFields(raw);
  } catch (e) {
    if (e instanceof FieldsError) return recordJson(n);
    throw e;
  }
  const plain = recordPlain(n);
  pick(plain, fields);
  return stringifyGo(plain);
}

function flags(store: ReplicaStore, catalog: Catalog, n: ReturnType<typeof node>, info: RequestInfo): void {
  try {
    resolveFlags(store, catalog, [n], info);
  } catch (e) {
    // The manage-rule check failing to build or run: PocketBase then keeps the email hidden.
    if (info.requester.kind === 'superuser') { n.unhidden = true; n.showEmail = true; }
    if (!(e instanceof Error)) throw e;
  }
}
