// The sync engine: keeps the replica file equal to PocketBase. It reads the change log after the
// stored position and applies each batch (with the records' current state) in one transaction; realtime
// events, the migrations watcher and a poll timer only wake it. It bootstraps into a temporary file
// published atomically, and rebuilds when the log no longer continues what the replica holds.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff } from '../lib/backoff.js';
import type { ChangeSource, ChangesResponse } from './change-source.js';
import { copyCollection, CopyProgress } from './copier.js';
import { Loop } from '../lib/lifecycle.js';
import type { Logger } from '../lib/log.js';
import { isReplicable, sameTableShape, tableSpec, type PbCollection } from './schema.js';
import { FORMAT_VERSION, ReplicaStore, type ChangeRow, type RecordPage } from './store.js';
import { directReader, type ChangeReader } from './sync-thread.js';
import { monotonicMs } from './sync-protocol.js';

export type BeforeApplyListener = (changes: readonly ChangeRow[], records: Readonly<Record<string, RecordPage>>) => void;

export interface ReplicatorOptions {
  dataDir: string;
  batchSize: number;
  bootstrapPageSize: number;
  pollIntervalMs: number;
  includeSystemCollections: boolean;
  log: Logger;
  /** Called after each applied batch with the lag of its newest change (ms). */
  onApplied?: (info: { changes: number; records: number; lagMs: number }) => void;
  /** Called after a collection was copied whole (bootstrap, schema change, trigger re-install). */
  onCopied?: (info: { collection: string; records: number; ms: number }) => void;
  /** Called for every store opened or created (e.g. to attach derived indexes). */
  prepareStore?: (store: ReplicaStore) => void;
  /** Called whenever the replica file is replaced (readers must reopen it). */
  onSwap?: (store: ReplicaStore) => void;
  /** How the live replica's batches are read (default: by this thread, through `source`). */
  reader?: ChangeReader;
}

const ANNOUNCE_DELAY_MS = 3;

/** The log no longer continues what the replica holds: only a fresh copy is correct. */
class RebuildNeeded extends Error {}

export class Replicator {
  store: ReplicaStore | null = null;
  lagMs: number | null = null;
  private readonly loop: Loop;
  /** The signal of the loop's current run. */
  private signal: AbortSignal = new AbortController().signal;
  private schemaCheckRequested = false;
  private waiters: Array<{ resolve: () => void; at: number }> = [];
  private readonly reader: ChangeReader;
  /** When the request of the last batch read for the live replica was sent: no older answer is applied after it. */
  private lastSentAt = 0;
  private readyResolvers: Array<() => void> = [];
  private appliedListeners = new Set<(changes: readonly ChangeRow[]) => void>();

  constructor(private readonly source: ChangeSource, private readonly opts: ReplicatorOptions) {
    this.reader = opts.reader ?? directReader(source);
    this.loop = new Loop((signal) => this.sync(signal), {
      log: opts.log, failure: 'replication paused', backoff: new Backoff(100, 5000), intervalMs: opts.pollIntervalMs,
    });
  }

  get path(): string {
    return join(this.opts.dataDir, 'replica.db');
  }

  get ready(): boolean {
    return this.store !== null;
  }

  get seq(): number {
    return this.store?.position.seq ?? 0;
  }

  /** A position no state in the replica is newer than (see ReplicaStore.upper). */
  get upper(): number {
    return this.store?.upper ?? 0;
  }

  /** Starts the background loop (bootstrap if needed, then follow the log). */
  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    if (this.announceTimer) clearTimeout(this.announceTimer);
    this.announceTimer = null;
    await this.loop.stop();
    this.store?.close();
    this.store = null;
  }

  /** The highest log position a read of the log has seen (applied, or being applied). */
  private seenSeq = 0;

  /** The highest log head announced by PocketBase after a write. */
  private announcedSeq = 0;
  private announceTimer: NodeJS.Timeout | null = null;

  /**
   * A write committed with the log head at `seq` after it. Nothing to do when a read of the log has
   * already seen that far; otherwise the loop reads again (after its current read, if one is under
   * way). Null: unknown, read the log.
   */
  announced(seq: number | null): void {
    if (seq === null) return this.wake();
    this.announcedSeq = Math.max(this.announcedSeq, seq);
    this.announcedAt = monotonicMs();
    if (this.announcedSeq <= this.seenSeq || this.pulling) return;
    // A short delay lets the writer's own request (answered at about the same moment) join the same
    // read of the log, and coalesces bursts; the replication lag pays at most this much for it.
    this.announceTimer ??= setTimeout(() => {
      this.announceTimer = null;
      if (this.announcedSeq > this.seenSeq) this.wake();
    }, ANNOUNCE_DELAY_MS);
  }

  private pulling = false;
  private announcedAt = 0;

  /** Asks the loop to read the log now (realtime event, write through the sidecar, ...). */
  wake(opts: { schema?: boolean } = {}): void {
    if (opts.schema) this.schemaCheckRequested = true;
    this.loop.wake();
  }

  /** Resolves once a full read of the log that started after this call has been applied. */
  syncAfterNow(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ resolve, at: monotonicMs() });
      this.wake();
    });
  }

  /**
   * Calls `fn` with each batch just before it is applied to the live replica, synchronously (the store
   * still holds the state before it: realtime judges deletes on that), with the record states the batch
   * brings (a record absent from them leaves the replica); returns the unsubscribe function.
   */
  onBeforeApply(fn: BeforeApplyListener): () => void {
    this.beforeApplyListeners.add(fn);
    return () => this.beforeApplyListeners.delete(fn);
  }

  private beforeApplyListeners = new Set<BeforeApplyListener>();

  /** Calls `fn` after every batch applied to the live replica; returns the unsubscribe function. */
  onApplied(fn: (changes: readonly ChangeRow[]) => void): () => void {
    this.appliedListeners.add(fn);
    return () => this.appliedListeners.delete(fn);
  }

  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyResolvers.push(resolve));
  }

  /**
   * One run of the loop: opens the replica if needed, then reads the log until it has no more. The loop
   * retries a failure after a backoff delay; a log that no longer continues the replica rebuilds it.
   */
  private async sync(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    const waiting: Array<{ resolve: () => void; at: number }> = [];
    try {
      if (!this.store) await this.open();
      let more: boolean;
      this.pulling = true;
      try {
        do {
          // Waiters registered before this read of the log is sent are satisfied once it is applied.
          const joined = this.waiters.splice(0);
          waiting.push(...joined);
          more = await this.pullOnce(this.store!, joined.reduce((t, w) => Math.max(t, w.at), 0));
        } while ((more || this.announcedSeq > this.seenSeq) && !signal.aborted);
      } finally {
        this.pulling = false;
      }
    } catch (err) {
      this.waiters.unshift(...waiting);
      if (!(err instanceof RebuildNeeded) || signal.aborted) throw err;
      this.opts.log.warn('replica rebuild', { reason: err.message });
      await this.rebuild().catch((e) => this.opts.log.error('rebuild failed', { error: (e as Error).message }));
      this.loop.wake(); // read the log again at once
      return;
    }
    for (const w of waiting) w.resolve();
  }

  /** Opens the existing replica when it continues the log, or builds a new one. */
  private async open(): Promise<void> {
    await this.source.ensureTriggers(this.signal);
    if (existsSync(this.path)) {
      const store = this.openStore(this.path);
      const reason = await this.incompatibility(store);
      if (!reason) {
        this.publish(store);
        // Schema changes made while the sidecar was down are in the log; the periodic check covers the rest.
        this.schemaCheckRequested = true;
        return;
      }
      this.opts.log.warn('replica not reusable', { reason });
      store.close();
    }
    const store = await this.buildFresh();
    this.removeFiles(this.path);
    renameSync(store.path, this.path);
    this.publish(this.openStore(this.path));
  }

  private openStore(path: string): ReplicaStore {
    const store = new ReplicaStore(path);
    try {
      this.opts.prepareStore?.(store);
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  private async incompatibility(store: ReplicaStore): Promise<string | null> {
    if (store.format !== FORMAT_VERSION) return `format ${store.format} != ${FORMAT_VERSION}`;
    const res = await this.source.readChanges(store.position.seq, 1, false, this.signal);
    if (!store.instance || res.instance !== store.instance) return 'different PocketBase database';
    return this.continuity(store.position.seq, store.position.anchor, res);
  }

  /** Why the log does not continue from `seq` (null when it does). */
  private continuity(seq: number, anchor: ChangeRow | null, res: ChangesResponse): string | null {
    if (seq === 0) return null;
    if (res.head < seq) return 'the change log is behind the replica (database restored?)';
    if (res.prunedThrough > seq) return 'the replica fell behind the change-log retention';
    if (anchor && res.anchor && (res.anchor.coll !== anchor.coll || res.anchor.rid !== anchor.rid || res.anchor.at !== anchor.at)) {
      return 'the change log was rewritten (database restored?)';
    }
    if (anchor && !res.anchor && seq > res.prunedThrough) return 'the change log lost the last applied change';
    return null;
  }

  private publish(store: ReplicaStore): void {
    this.store = store;
    this.seenSeq = store.position.seq;
    this.lastSentAt = 0;
    this.reader.position(store.position.seq);
    this.opts.onSwap?.(store);
    for (const r of this.readyResolvers.splice(0)) r();
  }

  /** A complete replica in a temporary file: copy every collection, then catch up with the log. */
  private async buildFresh(): Promise<ReplicaStore> {
    const signal = this.signal;
    const tmp = `${this.path}.building`;
    this.removeFiles(tmp);
    const store = this.openStore(tmp);
    try {
      // The position is read before copying: every write after it is in the log and gets re-applied.
      const start = await this.source.readChanges(0, 1, false, signal);
      const head = start.head > 0 ? await this.source.readChanges(start.head, 1, false, signal) : start;
      store.initialise(start.instance, { seq: start.head, anchor: head.anchor });
      const started = Date.now();
      let total = 0;
      // Two collections at a time: PocketBase answers one while the other's page is being written.
      const queue = await this.replicable();
      const counts = await Promise.all(queue.map((c) => this.source.countRecords(c.id, signal)));
      const expected = counts.reduce((a, b) => a + b, 0);
      this.opts.log.info('bootstrap started', { collections: queue.length, records: expected });
      const progress = new CopyProgress(expected, this.opts.log);
      const worker = async () => {
        for (let c = queue.shift(); c; c = queue.shift()) {
          const stats = await copyCollection(store, this.source, c, this.opts.bootstrapPageSize, this.opts.log, signal, progress);
          this.opts.onCopied?.({ collection: c.name, ...stats });
          total += stats.records;
        }
      };
      await Promise.all([worker(), worker()]);
      this.opts.log.info('bootstrap copied', { records: total, ms: Date.now() - started });
      store.setPlannerSchema(await this.source.readPlannerSchema(signal));
      while (!signal.aborted && (await this.pullOnce(store))) { /* catch up */ }
      store.analyze();
      store.db.pragma('wal_checkpoint(TRUNCATE)');
      store.close();
      return store;
    } catch (err) {
      store.close();
      this.removeFiles(tmp);
      throw err;
    }
  }

  /** Replaces a running replica that can no longer follow the log; the old one serves until the swap. */
  private async rebuild(): Promise<void> {
    const fresh = await this.buildFresh();
    this.store?.close();
    this.store = null;
    this.removeFiles(this.path);
    renameSync(fresh.path, this.path);
    this.publish(this.openStore(this.path));
  }

  private removeFiles(path: string): void {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
  }

  private async replicable(): Promise<PbCollection[]> {
    const all = await this.source.listCollections(this.signal);
    return all.filter((c) => isReplicable(c, this.opts.includeSystemCollections));
  }

  /**
   * Reads one batch of the log after the store's position and applies it. Returns true when the log
   * has more. Schema changes in the batch are handled first; collections copied because of them skip
   * the batch's record states (the copy is newer).
   */
  private async pullOnce(store: ReplicaStore = this.store!, notBefore = 0): Promise<boolean> {
    const { seq, anchor } = store.position;
    let res: ChangesResponse;
    let readAt: number;
    if (store === this.store) {
      // Never an answer older than one already applied, nor than a waiter of this read.
      ({ res, sentAt: readAt } = await this.reader.read(seq, this.opts.batchSize, Math.max(notBefore, this.lastSentAt), this.signal));
      if (store === this.store) this.lastSentAt = Math.max(this.lastSentAt, readAt);
    } else {
      readAt = monotonicMs();
      res = await this.source.readChanges(seq, this.opts.batchSize, true, this.signal);
    }
    if (res.instance !== store.instance) throw new RebuildNeeded('different PocketBase database');
    if (store === this.store) {
      // Everything up to the head read before these rows is covered once this batch is applied.
      const last = res.changes.length > 0 ? res.changes[res.changes.length - 1].seq : 0;
      this.seenSeq = Math.max(this.seenSeq, last, res.more ? 0 : res.head);
      // An announcement received before this read and beyond everything the log holds is stale (a
      // restored database): forget it rather than read again and again.
      if (!res.more && this.announcedAt < readAt && this.announcedSeq > this.seenSeq) this.announcedSeq = this.seenSeq;
    }
    const broken = this.continuity(seq, anchor, res);
    if (broken) throw new RebuildNeeded(broken);

    const schemaRows = res.changes.filter((c) => c.coll === '_collections');
    let copied = new Set<string>();
    if (schemaRows.length > 0 || (this.schemaCheckRequested && store === this.store)) {
      if (store === this.store) this.schemaCheckRequested = false;
      const forced = new Set(schemaRows.filter((c) => c.op === 't').map((c) => c.rid));
      copied = await this.syncSchema(store, forced);
      // Copies are read after this batch's rows: bound them by a head read after them.
      if (copied.size > 0) store.raiseUpper((await this.source.readHead(this.signal)).head);
      // Planner statistics: new for copied tables, refreshed where the data drifted since.
      if (copied.size > 0) store.analyze([...copied].map((id) => store.entry(id)?.spec.table).filter((t): t is string => t !== undefined));
      else store.optimize();
    }
    if (res.changes.length === 0) return false;
    if (store === this.store) for (const fn of this.beforeApplyListeners) fn(res.changes, res.records);
    const touched = store.applyBatch(res.changes, res.records, copied, res.upper);
    const newest = res.changes[res.changes.length - 1];
    const lagMs = Math.max(0, Date.now() - newest.at);
    if (store === this.store) {
      this.lagMs = lagMs;
      this.reader.position(store.position.seq);
      this.opts.onApplied?.({ changes: res.changes.length, records: touched, lagMs });
      for (const fn of this.appliedListeners) fn(res.changes);
      // Records newer than the position (writes committed during the read): read again now, so the
      // replica is whole at that state soon and readers bounded by it wait little.
      if (!res.more && store.upper > store.position.seq) this.announced(store.upper);
    }
    return res.more;
  }

  /** Brings tables in line with PocketBase's collections; returns the ids of collections copied whole. */
  private async syncSchema(store: ReplicaStore, forced: ReadonlySet<string>): Promise<Set<string>> {
    const remote = await this.replicable();
    store.setPlannerSchema(await this.source.readPlannerSchema(this.signal));
    const copied = new Set<string>();
    const remoteIds = new Set(remote.map((c) => c.id));
    for (const local of store.collections()) {
      if (!remoteIds.has(local.id)) {
        store.dropCollection(local.id);
        this.opts.log.info('collection dropped', { collection: local.name });
      }
    }
    for (const c of remote) {
      const entry = store.entry(c.id);
      if (!entry || forced.has(c.id) || !sameTableShape(entry.spec, tableSpec(c))) {
        const stats = await copyCollection(store, this.source, c, this.opts.bootstrapPageSize, this.opts.log, this.signal);
        copied.add(c.id);
        this.opts.onCopied?.({ collection: c.name, ...stats });
        this.opts.log.info('collection copied', { collection: c.name, records: stats.records, ms: stats.ms });
      } else if (JSON.stringify(entry.collection) !== JSON.stringify(c)) {
        store.updateDefinition(c);
      }
    }
    return copied;
  }
}
