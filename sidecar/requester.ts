// The requester as the read path needs it: the auth record behind the caller's session, read from the
// replica (superusers, not replicated, carry their ids only). A session whose record is not in the
// replica after one wait for the replica to catch up is anonymous, as PocketBase treats a token of a
// deleted record.
import type { Context } from 'koa';
import type { Replicator } from '../replica/replicator.js';
import type { Requester } from './reads/index.js';
import type { Authenticated } from './sessions/manager.js';

export function requesterFrom(replicator: Replicator, waitMs = 1000) {
  return async function identifyRequester(ctx: Context): Promise<Requester> {
    const auth = ctx.state.auth as Authenticated | undefined;
    if (!auth) return { kind: 'anonymous' };
    const s = auth.session;
    if (s.collectionName === '_superusers') {
      return { kind: 'superuser', record: { id: s.recordId, collectionId: s.collectionId, collectionName: s.collectionName } };
    }
    let store = replicator.store;
    if (!store?.entry(s.collectionId)) return { kind: 'record', collectionId: s.collectionId, record: { id: s.recordId } };
    let record = store.record(s.collectionId, s.recordId);
    if (!record) {
      await Promise.race([replicator.syncAfterNow(), new Promise((r) => setTimeout(r, waitMs).unref())]);
      store = replicator.store;
      record = store ? store.record(s.collectionId, s.recordId) : null;
    }
    return record ? { kind: 'record', collectionId: s.collectionId, record } : { kind: 'anonymous' };
  };
}
