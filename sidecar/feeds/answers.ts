// Whole feed pages kept until the replica changes, as the read path keeps list answers: a page of a
// snapshot is a function of the snapshot, the page parameters and the replica's contents (visibility,
// rows, expand, the requester's record), so while no batch was applied and the catalog is the same
// object, answering it again gives the same text. Pages whose rules read the request beyond the
// requester (headers, query, time macros) are never kept.
import type { ReplicaStore } from '../../replica/store.js';

export interface AnswerCacheOptions {
  /** Bytes of answers kept (0: none). */
  maxBytes: number;
  /** Answers kept. */
  maxEntries: number;
}

export class AnswerCache {
  private map = new Map<string, string>();
  private bytes = 0;
  private changes = 0;
  private seen = -1;
  private store: ReplicaStore | null = null;
  private catalog: object | null = null;

  constructor(private readonly opts: AnswerCacheOptions) {}

  get enabled(): boolean {
    return this.opts.maxBytes > 0 && this.opts.maxEntries > 0;
  }

  /** The replica applied a batch: everything kept may be stale. */
  changed(): void {
    this.changes++;
  }

  private current(store: ReplicaStore, catalog: object): Map<string, string> {
    if (this.seen !== this.changes || this.store !== store || this.catalog !== catalog) {
      this.map = new Map();
      this.bytes = 0;
      this.seen = this.changes;
      this.store = store;
      this.catalog = catalog;
    }
    return this.map;
  }

  get(store: ReplicaStore, catalog: object, key: string): string | undefined {
    return this.current(store, catalog).get(key);
  }

  /** Keeps an answer computed from `store` and `catalog` while no change was applied since `since`. */
  set(store: ReplicaStore, catalog: object, key: string, body: string, since: number): void {
    if (!this.enabled || since !== this.changes || body.length > this.opts.maxBytes / 4) return;
    const map = this.current(store, catalog);
    if (map.size >= this.opts.maxEntries || this.bytes + body.length > this.opts.maxBytes) {
      map.clear();
      this.bytes = 0;
    }
    map.set(key, body);
    this.bytes += body.length;
  }

  /** The change count to pass to `set` for an answer started now. */
  get mark(): number {
    return this.changes;
  }
}
