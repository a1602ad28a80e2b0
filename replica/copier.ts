// Copies whole collections from PocketBase into the replica. Records come through the records API,
// keyset-paged by id (concurrent writes never shift a page), into a build table that replaces the live
// table at once. PocketBase's rowids (its order for a list without sort) are read alongside from the
// hook and joined in at the end. Whatever changes during the copy is in the change log after the
// position read before it, and is applied afterwards.
import type { ChangeSource } from './change-source.js';
import type { PbCollection } from './schema.js';
import type { ReplicaStore } from './store.js';
import type { Logger } from '../lib/log.js';

export interface CopyStats {
  records: number;
  ms: number;
}

const ROWID_PAGE = 20_000;

/**
 * Progress of a whole bootstrap, logged every few seconds: records copied of the total counted before
 * the copy (writes during it make the total approximate), the rate, and the time left at that rate.
 */
export class CopyProgress {
  private copied = 0;
  private readonly started = Date.now();
  private nextLog: number;

  constructor(private readonly total: number, private readonly log: Logger, private readonly everyMs = 5000) {
    this.nextLog = this.started + everyMs;
  }

  add(records: number, collection: string): void {
    this.copied += records;
    const now = Date.now();
    if (now < this.nextLog) return;
    this.nextLog = now + this.everyMs;
    const perSecond = this.copied / Math.max(0.001, (now - this.started) / 1000);
    const left = Math.max(0, this.total - this.copied);
    this.log.info('bootstrap progress', {
      collection, records: this.copied, total: this.total,
      percent: this.total > 0 ? Math.min(100, Math.round((this.copied / this.total) * 1000) / 10) : null,
      perSecond: Math.round(perSecond), secondsLeft: perSecond > 0 ? Math.round(left / perSecond) : null,
    });
  }
}

export async function copyCollection(
  store: ReplicaStore, source: ChangeSource, collection: PbCollection, pageSize: number, log: Logger, signal?: AbortSignal,
  progress?: CopyProgress,
): Promise<CopyStats> {
  const started = Date.now();
  const build = store.createBuildTable(collection);
  const rowidTable = store.createRowidTable(build);
  let records = 0;
  let nextLog = Date.now() + 5000;

  const copyRecords = async () => {
    let pending = source.readPage(collection.id, null, pageSize, signal);
    for (;;) {
      const items = await pending;
      const full = items.length === pageSize;
      if (full) pending = source.readPage(collection.id, String(items[items.length - 1].id), pageSize, signal);
      store.insertPage(build, collection, items);
      records += items.length;
      progress?.add(items.length, collection.name);
      if (!progress && Date.now() >= nextLog) {
        log.info('copying collection', { collection: collection.name, records, perSecond: Math.round(records / ((Date.now() - started) / 1000)) });
        nextLog = Date.now() + 5000;
      }
      if (!full) return;
    }
  };
  const copyRowids = async () => {
    let after = 0;
    for (;;) {
      const page = await source.readRowids(collection.id, after, ROWID_PAGE, signal);
      store.insertRowids(rowidTable, page.ids, page.rowids);
      after = page.last;
      if (page.done) return;
    }
  };
  try {
    await Promise.all([copyRecords(), copyRowids()]);
    store.joinRowids(build, rowidTable);
  } finally {
    store.dropTable(rowidTable);
  }
  store.publishTable(collection, build);
  return { records, ms: Date.now() - started };
}
