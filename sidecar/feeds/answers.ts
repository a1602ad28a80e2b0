// Whole feed pages, kept as the read path keeps list answers: a page of a snapshot is a function of the
// snapshot, the page parameters and the replica tables its statement, rules and expands read (the
// requester's auth table included: rules read the requester's record), so while none of those tables
// changed and the catalog is the same object, answering it again gives the same text. A like does not
// empty the kept pages of a feed whose page statement never reads the likes. Pages whose rules read the
// request beyond the requester (headers, query, time macros) are never kept.
import type { ReplicaStore } from '../../replica/store.js';
import type { ReadSet } from '../reads/query.js';

export interface AnswerCacheOptions {
  /** Bytes of answers kept (0: none). */
  maxBytes: number;
  /** Answers kept. */
  maxEntries: number;
}

export class AnswerCache {
  private map = new Map<string, { body: string; reads: ReadSet }>();
  private bytes = 0;
  private store: ReplicaStore | null = null;
  private catalog: object | null = null;

  constructor(private readonly opts: AnswerCacheOptions) {}

  get enabled(): boolean {
    return this.opts.maxBytes > 0 && this.opts.maxEntries > 0;
  }

  private current(store: ReplicaStore, catalog: object): Map<string, { body: string; reads: ReadSet }> {
    if (this.store !== store || this.catalog !== catalog) {
      this.map = new Map();
      this.bytes = 0;
      this.store = store;
      this.catalog = catalog;
    }
    return this.map;
  }

  get(store: ReplicaStore, catalog: object, key: string): string | undefined {
    const map = this.current(store, catalog);
    const kept = map.get(key);
    if (!kept) return undefined;
    if (kept.reads.fresh()) return kept.body;
    map.delete(key);
    this.bytes -= kept.body.length;
    return undefined;
  }

  /** Keeps an answer computed from `store` and `catalog`, fresh while the tables of `reads` are unchanged. */
  set(store: ReplicaStore, catalog: object, key: string, body: string, reads: ReadSet): void {
    if (!this.enabled || body.length > this.opts.maxBytes / 4 || !reads.fresh()) return;
    const map = this.current(store, catalog);
    if (map.size >= this.opts.maxEntries || this.bytes + body.length > this.opts.maxBytes) {
      map.clear();
      this.bytes = 0;
    }
    const old = map.get(key);
    if (old) this.bytes -= old.body.length;
    map.set(key, { body, reads });
    this.bytes += body.length;
  }
}
