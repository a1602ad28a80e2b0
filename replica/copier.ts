// Copies whole collections from PocketBase into the replica: pages in rowid order (keyset, so
// concurrent writes never shift a page) into a build table that replaces the live table at once.
// The next page is fetched while the previous one is written.
import type { ChangeSource } from './change-source.js';
import type { PbCollection } from './schema.js';
import type { ReplicaStore } from './store.js';
import type { Logger } from './log.js';

export interface CopyStats {
  records: number;
  ms: number;
}

export async function copyCollection(
  store: ReplicaStore, source: ChangeSource, collection: PbCollection, pageSize: number, log: Logger, signal?: AbortSignal,
): Promise<CopyStats> {
  const started = Date.now();
  const build = store.createBuildTable(collection);
  let records = 0;
  let nextLog = Date.now() + 5000;
  let pending = source.readPage(collection.id, 0, pageSize, signal);
  for (;;) {
    const page = await pending;
    if (!page.done) pending = source.readPage(collection.id, page.last, pageSize, signal);
    store.insertPage(build, collection, page);
    records += page.records.length;
    if (Date.now() >= nextLog) {
      log.info('copying collection', { collection: collection.name, records, perSecond: Math.round(records / ((Date.now() - started) / 1000)) });
      nextLog = Date.now() + 5000;
    }
    if (page.done) break;
  }
  store.publishTable(collection, build);
  return { records, ms: Date.now() - started };
}
