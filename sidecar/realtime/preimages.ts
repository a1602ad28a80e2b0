// The state before a batch, which delete events are judged on: PocketBase decides who receives a delete
// (and renders the record) before the row goes, outside the deleting transaction, so a cascade-deleted
// child whose rule reads its parent still reaches the parent's readers.
//
// The replicator calls onBeforeApply(fn) synchronously just before it applies a batch to the live replica
// (the store still holds the previous state); delete events are evaluated there.
import type { ChangeRow, RecordPage, ReplicaStore } from '../../replica/store.js';
import type { Replicator } from '../../replica/replicator.js';
import type { Logger } from '../../lib/log.js';

export interface BatchHandlers {
  /** The live store still holds the state before `changes`; `records` are the states they bring (exact mode only). */
  before(store: ReplicaStore, changes: readonly ChangeRow[], records: Readonly<Record<string, RecordPage>>): void;
  /**
   * `changes` were applied. `withPreState(fn)` runs fn on the state before them (fallback mode: the
   * deleted rows put back for the duration of fn) and returns its result.
   */
  after(store: ReplicaStore, changes: readonly ChangeRow[], withPreState: (<T>(fn: () => T) => T) | null): void;
}

/** Attaches `h` to the replicator's batches; returns the detach function and which mode is in use. */
export function attachBatches(replicator: Replicator, h: BatchHandlers, log: Logger): { detach(): void; exact: boolean } {
  const offBefore = replicator.onBeforeApply((changes, records) => {
    const store = replicator.store;
    if (store) guard(log, () => h.before(store, changes, records));
  });
  const offAfter = replicator.onApplied((changes) => {
    const store = replicator.store;
    if (store) guard(log, () => h.after(store, changes, null));
  });
  return { exact: true, detach() { offBefore(); offAfter(); } };
}

function guard(log: Logger, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    log.error('realtime batch failed', { error: (e as Error).message });
  }
}
