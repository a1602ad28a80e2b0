// The requester as the read path needs it: the auth record behind the caller's session, read from the
// replica (superusers, not replicated, carry their ids only). A session whose record is not in the
// replica, even after a read of the log that started after the request arrived, cannot be judged here:
// Unsupported, so PocketBase answers (it treats a token of a deleted record as anonymous).
import type { Context } from 'koa';
import type { Replicator } from '../replica/replicator.js';
import { Unsupported } from './reads/errors.js';
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
    if (!record) throw new Unsupported('requester_not_in_replica');
    return { kind: 'record', collectionId: s.collectionId, record };
  };
}
