// The requester as the read path needs it: the auth record behind the caller's session. Records of
// replicated auth collections are read from the replica. A superuser's record (`_superusers` is not
// replicated unless system collections are) is read once from PocketBase with the session's own token,
// together with its collection's definition, and kept until the change log shows that record or that
// definition changed (or the replica is rebuilt), so it is exactly as current as the replica. A caller
// of an auth collection the replica does not hold is known by its ids only (fields that need more fall
// back). A session whose record is not in the replica, even after a read of the log that started after
// the request arrived, cannot be judged here: Unsupported, so PocketBase answers (it treats a token of a
// deleted record as anonymous).
import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import type { Replicator } from '../replica/replicator.js';
import type { ReplicaStore } from '../replica/store.js';
import { Unsupported } from './reads/errors.js';
import type { Requester } from './reads/index.js';
import type { Authenticated, OwnRecord } from './sessions/manager.js';

export function requesterFrom(replicator: Replicator, waitMs = 1000) {
  const superusers = new OwnRecords(replicator);
  return async function identifyRequester(ctx: Context): Promise<Requester> {
    const auth = ctx.state.auth as Authenticated | undefined;
    if (!auth) return { kind: 'anonymous' };
    const s = auth.session;
    const ids = { id: s.recordId, collectionId: s.collectionId, collectionName: s.collectionName };
    let store = replicator.store;
    if (!store?.entry(s.collectionId)) {
      if (s.collectionName !== '_superusers') return { kind: 'record', collectionId: s.collectionId, record: ids, partial: true };
      const own = await superusers.get(auth);
      if (own === 'unavailable') return { kind: 'superuser', record: ids, partial: true };
      if (own === null) throw new Unsupported('requester_not_accepted');
      return { kind: 'superuser', record: own.record, collection: own.collection, version: own.version };
    }
    let record = store.record(s.collectionId, s.recordId);
    if (!record) {
      await Promise.race([replicator.syncAfterNow(), new Promise((r) => setTimeout(r, waitMs).unref())]);
      store = replicator.store;
      record = store ? store.record(s.collectionId, s.recordId) : null;
    }
    if (!record) throw new Unsupported('requester_not_in_replica');
    if (s.collectionName === '_superusers') return { kind: 'superuser', record: { ...record, collectionId: s.collectionId, collectionName: s.collectionName } };
    return { kind: 'record', collectionId: s.collectionId, record };
  };
}

interface Fetched extends OwnRecord { version: string }
interface Entry { gen: number; store: ReplicaStore | null; value: Promise<Fetched | null> }

/**
 * Superusers' own records, fetched on first use and refetched after the replica applies a change to
 * the record or to its collection. A fetch that a change overtook is not trusted: the next read asks
 * again, so no answer uses a state older than the replica's.
 */
class OwnRecords {
  private readonly entries = new Map<string, Entry>();
  /** Bumped per record (collectionId:recordId) and per collection id by changes from the log. */
  private readonly gens = new Map<string, number>();

  constructor(private readonly replicator: Replicator) {
    replicator.onApplied((changes) => {
      for (const ch of changes) {
        // A schema change names the collection; a record change names collection and record.
        this.bump(ch.coll === '_collections' ? ch.rid : `${ch.coll}:${ch.rid}`);
      }
    });
  }

  private bump(key: string): void {
    if (!this.gens.has(key) && !this.watched(key)) return;
    this.gens.set(key, (this.gens.get(key) ?? 0) + 1);
  }

  private watched(key: string): boolean {
    for (const k of this.entries.keys()) if (k === key || k.startsWith(key + ':')) return true;
    return false;
  }

  private gen(collectionId: string, recordId: string): number {
    return (this.gens.get(collectionId) ?? 0) + (this.gens.get(`${collectionId}:${recordId}`) ?? 0);
  }

  /** The record, null when PocketBase refuses the session, 'unavailable' when PocketBase cannot be asked. */
  async get(auth: Authenticated): Promise<Fetched | null | 'unavailable'> {
    const s = auth.session;
    if (!auth.ownRecord) return 'unavailable';
    const key = `${s.collectionId}:${s.recordId}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const gen = this.gen(s.collectionId, s.recordId);
      const store = this.replicator.store;
      let entry = this.entries.get(key);
      if (!entry || entry.gen !== gen || entry.store !== store) {
        const fetching = auth.ownRecord().then((own) => (own ? { ...own, version: versionOf(own) } : null));
        entry = { gen, store, value: fetching };
        this.entries.set(key, entry);
        if (this.entries.size > 1000) this.entries.delete(this.entries.keys().next().value as string);
        // A failed fetch is not kept.
        fetching.catch(() => { if (this.entries.get(key) === entry) this.entries.delete(key); });
      }
      let value: Fetched | null;
      try {
        value = await entry.value;
      } catch {
        return 'unavailable';
      }
      if (this.gen(s.collectionId, s.recordId) === gen && this.replicator.store === store) return value;
    }
    return 'unavailable';
  }
}

function versionOf(own: OwnRecord): string {
  return createHash('sha256').update(JSON.stringify([own.record, own.collection])).digest('base64url').slice(0, 16);
}
