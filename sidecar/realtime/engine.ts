// Events from the replica's applied batches, in commit order. For each change of a record (create and
// update judged on the state after the batch, delete on the state before it), the subscriptions whose
// topic names that collection (`name/*`, `id/*`, `name`, `id`) or that record (`name/RID`, `id/RID`) are
// grouped by (collection, topic kind, requester, options); each group's access is evaluated in SQL
// (access.ts: one statement per distinct rule shape), each visible record rendered once per distinct
// rendering, and every client gets its frames for the batch in one write. The groups of a collection's
// list topics, their plans and statements are kept between batches until its subscriptions or a
// requester change, so a batch's work grows with the events it delivers, not with every subscriber.
//
// A batch's record states are read after its log rows, so they can be newer than its last change: a
// record created or updated in the batch may already be gone, deleted by a change the next read brings.
// The replica drops it with this batch, and that later delete would find nothing to judge; so such a
// record's delete event is decided here, on the state before the batch, at its last change's position.
import type { Logger } from '../../lib/log.js';
import { quoteIdent } from '../../replica/schema.js';
import type { ChangeRow, RecordPage, ReplicaStore } from '../../replica/store.js';
import { catalogOf, type Catalog, type CollectionInfo } from '../reads/catalog.js';
import { invalidateResults, type Row } from '../reads/query.js';
import type { Requester, RequestInfo } from '../reads/request.js';
import { AccessRunner, NONE, planAccess, type AccessGroup, type Plan, type PreparedAccess } from './access.js';
import { ANONYMOUS, type LocalSub, type RequesterRef, type RtClient } from './clients.js';
import { renderRecord, type RenderStats } from './render.js';

type Action = 'create' | 'update' | 'delete';

interface Target {
  /** Position of the change in its batch (commit order). */
  at: number;
  action: Action;
  coll: CollectionInfo;
  id: string;
}

/** A change's frames: who gets which, in parallel lists (no object per delivered event). */
interface Delivery { clients: RtClient[]; tails: Buffer[] }
type Frames = Map<number, Delivery>;

/** Subscriptions evaluated and rendered alike. */
interface Group extends AccessGroup {
  kind: 'list' | 'view';
  coll: CollectionInfo;
  ref: RequesterRef;
  optKey: string;
  options: LocalSub['options'];
  subs: LocalSub[];
  ids: Set<string>;
  info?: RequestInfo;
  /** The ref.key the plan, info and render key were made for. */
  planKey: string;
  /** The plan depends on the time: made again for every batch. */
  volatile: boolean;
  /** Groups with equal keys render a record alike. */
  renderKey: string;
}

/** The list-topic groups of one collection, kept until one of its four topic bases changes. */
interface ListTable {
  catalog: Catalog;
  bases: string[];
  versions: number[];
  groups: Group[];
  /** Some group's plan depends on the time. */
  volatile: boolean;
  /** The requesters' epoch the plans were brought up to. */
  epoch: number;
  /** The groups' statements; null once a plan changed. */
  prepared: PreparedAccess | null;
}

const ALL_PLACEHOLDER: Plan = NONE;

const TIME_MACRO = /@(now|second|minute|hour|weekday|day|month|year|yesterday|tomorrow|todayStart|todayEnd|monthStart|monthEnd|yearStart|yearEnd)\b/;

export interface EngineStats extends RenderStats {
  batches: number;
  changes: number;
  groups: number;
  renders: number;
  events: number;
  deletesWithoutPreState: number;
  /** Records gone with a batch that only created or updated them: their delete sent from the state before. */
  deletesAhead: number;
}

interface SharedRef extends RequesterRef {
  mapKey: string;
  users: number;
  version: number;
}

export class Engine {
  /** Local subscriptions by topic base (the text before "?"). */
  private readonly index = new Map<string, Set<LocalSub>>();
  /** Bumped whenever a base's subscriptions change. */
  private readonly baseVersions = new Map<string, number>();
  /** List-topic groups by collection id, and which table each base feeds. */
  private readonly lists = new Map<string, ListTable>();
  private readonly listOfBase = new Map<string, string>();
  /** Bumped whenever some requester's key changes (its plans are made again). */
  private requesterEpoch = 0;
  private readonly refs = new Map<string, SharedRef>();
  private readonly plans = new WeakMap<Catalog, WeakMap<RequesterRef, Map<string, { version: string; plan: Plan }>>>();
  private readonly timeDependent = new WeakMap<Catalog, boolean>();
  private pending: { changes: readonly ChangeRow[]; frames: Frames; ahead: Target[] } | null = null;
  readonly access = new AccessRunner();
  readonly stats: EngineStats = { batches: 0, changes: 0, groups: 0, renders: 0, events: 0, deletesWithoutPreState: 0, deletesAhead: 0, expandUnsupported: 0 };

  constructor(private readonly log: Logger) {}

  get subscriptions(): number {
    let n = 0;
    for (const s of this.index.values()) n += s.size;
    return n;
  }

  /** Whether any collection topic is answered here. */
  get active(): boolean {
    return this.index.size > 0;
  }

  // --- requesters ------------------------------------------------------------------------------

  /** The shared reference for a requester (clients of one auth record share it and its updates). */
  refFor(requester: Requester): RequesterRef {
    if (requester.kind === 'anonymous') return ANONYMOUS;
    const collectionId = requester.kind === 'record' ? requester.collectionId : String(requester.record.collectionId ?? '_superusers');
    const recordId = String(requester.record.id ?? '');
    const mapKey = `${requester.kind}:${collectionId}:${recordId}`;
    let ref = this.refs.get(mapKey);
    if (!ref) {
      ref = { key: '', requester, ref: { collectionId, recordId }, mapKey, users: 0, version: 0 };
      this.refs.set(mapKey, ref);
    }
    if (ref.key === '' || JSON.stringify(ref.requester) !== JSON.stringify(requester)) {
      ref.requester = requester;
      ref.version++;
      this.requesterEpoch++;
      ref.key = `${requester.kind === 'superuser' ? 's' : 'r'}:${collectionId}:${recordId}:${ref.version}`;
    }
    return ref;
  }

  retain(ref: RequesterRef): void {
    if (ref !== ANONYMOUS) (ref as SharedRef).users++;
  }

  release(ref: RequesterRef): void {
    if (ref === ANONYMOUS) return;
    const r = ref as SharedRef;
    if (--r.users > 0) return;
    if (this.refs.get(r.mapKey) === r) this.refs.delete(r.mapKey);
  }

  /** Auth records changed by the batch: their clients' @request.auth follows (PocketBase updates it too). */
  private refreshRequesters(store: ReplicaStore, changes: readonly ChangeRow[]): void {
    if (this.refs.size === 0) return;
    for (const ch of changes) {
      const ref = this.refs.get(`record:${ch.coll}:${ch.rid}`);
      if (!ref) continue;
      const record = store.record(ch.coll, ch.rid);
      // A deleted auth record: PocketBase unsets the client's auth (a guest until its session ends here).
      ref.requester = record ? { kind: 'record', collectionId: ch.coll, record } : { kind: 'anonymous' };
      ref.version++;
      this.requesterEpoch++;
      ref.key = record ? `r:${ch.coll}:${ch.rid}:${ref.version}` : `a:${ref.version}`;
    }
  }

  // --- subscriptions ---------------------------------------------------------------------------

  setLocal(client: RtClient, subs: LocalSub[]): void {
    this.removeLocal(client);
    client.local = subs;
    for (const s of subs) {
      let set = this.index.get(s.base);
      if (!set) this.index.set(s.base, (set = new Set()));
      set.add(s);
      this.changed(s.base);
    }
  }

  removeLocal(client: RtClient): void {
    for (const s of client.local) {
      const set = this.index.get(s.base);
      if (!set) continue;
      set.delete(s);
      if (set.size === 0) this.index.delete(s.base);
      this.changed(s.base);
    }
    client.local = [];
  }

  /** A base's subscriptions changed: the table built from it (and its references to clients) goes. */
  private changed(base: string): void {
    this.baseVersions.set(base, (this.baseVersions.get(base) ?? 0) + 1);
    const coll = this.listOfBase.get(base);
    if (coll === undefined) return;
    const t = this.lists.get(coll);
    this.lists.delete(coll);
    if (t) for (const b of t.bases) if (this.listOfBase.get(b) === coll) this.listOfBase.delete(b);
  }

  /** Whether some subscription could match changes of this collection (any record). */
  private watched(coll: CollectionInfo, id: string): boolean {
    const { name } = coll.c;
    const cid = coll.c.id;
    return this.index.has(`${name}/*`) || this.index.has(`${cid}/*`) || this.index.has(name) || this.index.has(cid)
      || this.index.has(`${name}/${id}`) || this.index.has(`${cid}/${id}`);
  }

  // --- batches ---------------------------------------------------------------------------------

  /**
   * Exact mode: the store holds the state before `changes`, `records` the states they bring; delete
   * events are decided now, those of records the batch brings no state for included (see the top).
   */
  before(store: ReplicaStore, changes: readonly ChangeRow[], records: Readonly<Record<string, RecordPage>>): void {
    this.pending = null;
    if (this.index.size === 0) return;
    const catalog = catalogOf(store);
    const targets = this.targets(catalog, changes, true);
    const ahead = records ? this.goneAhead(catalog, changes, records) : [];
    if (targets.length === 0 && ahead.length === 0) return;
    const all = ahead.length === 0 ? targets : [...targets, ...ahead].sort((a, b) => a.at - b.at);
    this.pending = { changes, frames: this.evaluate(store, catalog, all, true), ahead };
  }

  /** `changes` were applied: create/update events on the state now, deletes from before (or its reconstruction). */
  after(store: ReplicaStore, changes: readonly ChangeRow[], withPreState: (<T>(fn: () => T) => T) | null): void {
    this.stats.batches++;
    this.stats.changes += changes.length;
    let deletes: Frames = new Map();
    if (this.pending && this.pending.changes === changes) {
      deletes = this.pending.frames;
      // A record the batch named without its state is gone unless its collection was copied meanwhile.
      for (const t of this.pending.ahead) {
        if (this.row(store, t.coll, t.id)) deletes.delete(t.at);
        else if (deletes.has(t.at)) this.stats.deletesAhead++;
      }
    } else if (this.index.size > 0) {
      const catalog = catalogOf(store);
      const targets = this.targets(catalog, changes, true);
      if (targets.length > 0) {
        if (withPreState) deletes = withPreState(() => this.evaluate(store, catalog, targets, true));
        else this.stats.deletesWithoutPreState += targets.length;
      }
    }
    this.pending = null;
    this.refreshRequesters(store, changes);
    if (this.index.size === 0) return;
    const catalog = catalogOf(store);
    const upserts = this.evaluate(store, catalog, this.targets(catalog, changes, false));
    this.dispatch(changes.length, deletes, upserts);
  }

  private targets(catalog: Catalog, changes: readonly ChangeRow[], deletes: boolean): Target[] {
    const out: Target[] = [];
    for (let at = 0; at < changes.length; at++) {
      const ch = changes[at];
      if (ch.coll === '_collections') continue;
      const isDelete = ch.op === 'd';
      if (isDelete !== deletes || (!isDelete && ch.op !== 'c' && ch.op !== 'u')) continue;
      const coll = catalog.byCollectionId(ch.coll);
      if (!coll || !this.watched(coll, ch.rid)) continue;
      out.push({ at, action: isDelete ? 'delete' : ch.op === 'c' ? 'create' : 'update', coll, id: ch.rid });
    }
    return out;
  }

  /**
   * Delete targets for records the batch creates or updates (and does not delete) but brings no state
   * for: deleted by a change after the batch, they leave the replica with it. At each one's last change.
   */
  private goneAhead(catalog: Catalog, changes: readonly ChangeRow[], records: Readonly<Record<string, RecordPage>>): Target[] {
    const last = new Map<string, number>();
    const deleted = new Set<string>();
    for (let at = 0; at < changes.length; at++) {
      const ch = changes[at];
      if (ch.coll === '_collections') continue;
      const key = `${ch.coll}/${ch.rid}`;
      if (ch.op === 'd') deleted.add(key);
      else if (ch.op === 'c' || ch.op === 'u') last.set(key, at);
    }
    const out: Target[] = [];
    let present: Map<string, Set<string>> | null = null;
    for (const [key, at] of last) {
      if (deleted.has(key)) continue;
      const ch = changes[at];
      const coll = catalog.byCollectionId(ch.coll);
      if (!coll || !this.watched(coll, ch.rid)) continue;
      present ??= new Map();
      let ids = present.get(ch.coll);
      if (!ids) present.set(ch.coll, (ids = new Set((records[ch.coll]?.records ?? []).map((r) => String(r.id)))));
      if (!ids.has(ch.rid)) out.push({ at, action: 'delete', coll, id: ch.rid });
    }
    return out;
  }

  private row(store: ReplicaStore, coll: CollectionInfo, id: string): Row | null {
    try {
      return (store.prepared(`SELECT * FROM ${quoteIdent(coll.spec.table)} WHERE "id" = ?`).get(id) as Row | undefined) ?? null;
    } catch {
      return null; // the table went away with a schema change
    }
  }

  private removeRow(store: ReplicaStore, coll: CollectionInfo, id: string): void {
    try {
      store.db.prepare(`DELETE FROM ${quoteIdent(coll.spec.table)} WHERE "id" = ?`).run(id);
    } catch { /* the table went away */ }
  }

  private isTimeDependent(catalog: Catalog, store: ReplicaStore): boolean {
    let v = this.timeDependent.get(catalog);
    if (v === undefined) {
      v = store.collections().some((c) => [c.listRule, c.viewRule, c.manageRule].some((r) => typeof r === 'string' && TIME_MACRO.test(r)));
      this.timeDependent.set(catalog, v);
    }
    return v;
  }

  private plan(store: ReplicaStore, catalog: Catalog, g: Group): Plan {
    if (g.volatile) return planAccess(catalog, g.coll, g.kind, this.info(g));
    let byRef = this.plans.get(catalog);
    if (!byRef) this.plans.set(catalog, (byRef = new WeakMap()));
    let cache = byRef.get(g.ref);
    if (!cache) byRef.set(g.ref, (cache = new Map()));
    const key = `${g.coll.c.id}\u0000${g.kind}\u0000${g.optKey}`;
    const hit = cache.get(key);
    if (hit && hit.version === g.ref.key) return hit.plan;
    if (cache.size > 10_000) cache.clear();
    const plan = planAccess(catalog, g.coll, g.kind, this.info(g));
    cache.set(key, { version: g.ref.key, plan });
    return plan;
  }

  private info(g: Group): RequestInfo {
    return (g.info ??= { context: 'realtime', method: 'GET', query: g.options.query, headers: g.options.headers, requester: g.ref.requester });
  }

  private newGroup(store: ReplicaStore, catalog: Catalog, kind: 'list' | 'view', coll: CollectionInfo, sub: LocalSub, ids: Set<string>): Group {
    return {
      kind, coll, ref: sub.client.requester, optKey: sub.optKey, options: sub.options, subs: [], ids, plan: ALL_PLACEHOLDER,
      planKey: '', renderKey: '', volatile: this.isTimeDependent(catalog, store) || TIME_MACRO.test(sub.options.query.filter ?? ''),
    };
  }

  /** Brings a group's plan, request info and render key up to its requester; true when the plan changed. */
  private refresh(store: ReplicaStore, catalog: Catalog, g: Group): boolean {
    if (g.planKey === g.ref.key && !g.volatile) return false;
    g.info = undefined;
    g.planKey = g.ref.key;
    const q = g.options.query;
    const expand = q.expand ?? '';
    const perRequester = g.coll.isAuth || expand !== '';
    g.renderKey = `${q.fields ?? ''}\u0000${expand}\u0000${g.ref.requester.kind === 'superuser' ? 1 : 0}\u0000${perRequester ? g.ref.key : ''}\u0000${expand !== '' ? g.optKey : ''}`;
    g.plan = this.plan(store, catalog, g);
    return true;
  }

  /** The list-topic groups of a collection with current plans and statements (kept between batches). */
  private listTable(store: ReplicaStore, catalog: Catalog, coll: CollectionInfo): ListTable | null {
    const { name, id: cid } = coll.c;
    let t = this.lists.get(cid);
    if (t && (t.catalog !== catalog || t.bases.some((b, i) => (this.baseVersions.get(b) ?? 0) !== t!.versions[i]))) t = undefined;
    if (!t) {
      const bases = [`${name}/*`, `${cid}/*`, name, cid];
      const groups: Group[] = [];
      const byRef = new Map<RequesterRef, Map<string, Group>>();
      const ids = new Set<string>();
      for (const base of bases) {
        for (const sub of this.index.get(base) ?? []) {
          if (sub.client.closed) continue;
          const g = groupFor(byRef, sub, () => this.newGroup(store, catalog, 'list', coll, sub, ids), groups);
          g.subs.push(sub);
        }
      }
      if (groups.length === 0) return null;
      t = {
        catalog, bases, versions: bases.map((b) => this.baseVersions.get(b) ?? 0), groups, volatile: groups.some((g) => g.volatile), epoch: -1, prepared: null,
      };
      this.lists.set(cid, t);
      for (const b of bases) this.listOfBase.set(b, cid);
    }
    if (t.prepared && t.epoch === this.requesterEpoch && !t.volatile) return t;
    let stale = t.prepared === null;
    for (const g of t.groups) if (this.refresh(store, catalog, g)) stale = true;
    t.epoch = this.requesterEpoch;
    if (stale) t.prepared = this.access.prepare(t.groups);
    return t;
  }

  /**
   * The frames of each target, by its position in the batch. List-topic groups come from the kept
   * tables, record-topic groups are collected per batch; work is per group and per delivered event,
   * never per subscription and change.
   */
  private evaluate(store: ReplicaStore, catalog: Catalog, targets: Target[], deleting = false): Frames {
    const frames: Frames = new Map();
    if (targets.length === 0) return frames;
    const rowCache = new Map<string, Row | null>();
    const rows = targets.map((t) => {
      const key = `${t.coll.c.id}/${t.id}`;
      let row = rowCache.get(key);
      if (row === undefined) rowCache.set(key, (row = this.row(store, t.coll, t.id)));
      return row;
    });
    const byColl = new Map<string, { coll: CollectionInfo; ids: Set<string> }>();
    targets.forEach((t, i) => {
      if (!rows[i]) return;
      let c = byColl.get(t.coll.c.id);
      if (!c) byColl.set(t.coll.c.id, (c = { coll: t.coll, ids: new Set() }));
      c.ids.add(t.id);
    });
    // Who gets each record: the groups it is visible to.
    const byRecord = new Map<string, Group[]>();
    const visible = (ag: AccessGroup, id: string) => {
      const g = ag as Group;
      const key = `${g.coll.c.id}/${id}`;
      const list = byRecord.get(key);
      if (list) list.push(g);
      else byRecord.set(key, [g]);
    };
    for (const { coll, ids } of byColl.values()) {
      const table = this.listTable(store, catalog, coll);
      if (table) {
        this.stats.groups += table.groups.length;
        this.access.run(store, table.prepared!, visible, ids);
      }
      const { name, id: cid } = coll.c;
      const view: Group[] = [];
      const byRef = new Map<RequesterRef, Map<string, Group>>();
      for (const rid of ids) {
        for (const base of [`${name}/${rid}`, `${cid}/${rid}`]) {
          for (const sub of this.index.get(base) ?? []) {
            if (sub.client.closed) continue;
            const g = groupFor(byRef, sub, () => this.newGroup(store, catalog, 'view', coll, sub, new Set()), view);
            g.ids.add(rid);
            g.subs.push(sub);
          }
        }
      }
      if (view.length === 0) continue;
      for (const g of view) this.refresh(store, catalog, g);
      this.stats.groups += view.length;
      this.access.run(store, this.access.prepare(view), visible);
    }

    const render = (t: Target, row: Row) => {
      const gs = byRecord.get(`${t.coll.c.id}/${t.id}`);
      if (!gs) return;
      const tailCache = new Map<string, Map<string, Buffer>>();
      const rendered = new Map<string, string>();
      const out: Delivery = { clients: [], tails: [] };
      for (const g of gs) {
        const rk = g.renderKey;
        let data = rendered.get(rk);
        if (data === undefined) {
          this.stats.renders++;
          try {
            data = `{"record":${renderRecord(store, catalog, t.coll, row, this.info(g), this.stats)},"action":"${t.action}"}`;
          } catch (e) {
            this.log.warn('realtime: record not rendered', { collection: t.coll.c.name, error: (e as Error).message });
            data = '';
          }
          rendered.set(rk, data);
        }
        if (data === '') continue;
        // The frame after its id line is the same for every subscriber of this topic: encoded once.
        let tails = tailCache.get(data);
        if (!tails) tailCache.set(data, (tails = new Map()));
        for (const sub of g.subs) {
          if ((g.kind === 'view' && sub.recordId !== t.id) || sub.client.closed) continue;
          let tail = tails.get(sub.topic);
          if (!tail) tails.set(sub.topic, (tail = Buffer.from(`event:${sub.topic}\ndata:${data}\n\n`)));
          out.clients.push(sub.client);
          out.tails.push(tail);
        }
      }
      if (out.clients.length > 0) frames.set(t.at, out);
    };
    if (!deleting) {
      targets.forEach((t, i) => { if (rows[i]) render(t, rows[i]!); });
      return frames;
    }
    // Deletes: who receives them was decided on the state before the batch (PocketBase checks access
    // outside the deleting transaction); each record is rendered as PocketBase renders it inside that
    // transaction, where the records deleted before it (a cascade starts with the parent) are gone.
    const touched = new Set<string>();
    store.db.exec('SAVEPOINT __hapta_rt_render');
    try {
      targets.forEach((t, i) => {
        if (!rows[i]) return;
        render(t, rows[i]!);
        this.removeRow(store, t.coll, t.id);
        touched.add(t.coll.spec.table);
        invalidateResults([t.coll.spec.table]);
      });
    } finally {
      store.db.exec('ROLLBACK TO __hapta_rt_render');
      store.db.exec('RELEASE __hapta_rt_render');
      invalidateResults(touched);
    }
    return frames;
  }

  private dispatch(size: number, a: Frames, b: Frames): void {
    if (a.size === 0 && b.size === 0) return;
    // One change with events (the usual batch): each client's frames straight out, in order.
    if (a.size + b.size === 1) {
      const d = (a.size === 1 ? a : b).values().next().value as Delivery;
      this.stats.events += d.clients.length;
      for (let i = 0; i < d.clients.length; i++) d.clients[i].sendFrame(d.tails[i]);
      return;
    }
    const perClient = new Map<RtClient, Buffer[]>();
    for (let at = 0; at < size; at++) {
      for (const d of [a.get(at), b.get(at)]) {
        if (!d) continue;
        for (let i = 0; i < d.clients.length; i++) {
          const list = perClient.get(d.clients[i]);
          if (list) list.push(d.tails[i]);
          else perClient.set(d.clients[i], [d.tails[i]]);
          this.stats.events++;
        }
      }
    }
    for (const [client, tails] of perClient) client.sendFrames(tails);
  }
}

/** The group of subscriptions sharing a requester and options; a new one is made and listed in `all`. */
function groupFor(byRef: Map<RequesterRef, Map<string, Group>>, sub: { client: { requester: RequesterRef }; optKey: string }, make: () => Group, all: Group[]): Group {
  let byOpt = byRef.get(sub.client.requester);
  if (!byOpt) byRef.set(sub.client.requester, (byOpt = new Map()));
  let g = byOpt.get(sub.optKey);
  if (!g) {
    byOpt.set(sub.optKey, (g = make()));
    all.push(g);
  }
  return g;
}
