// Sends a checked write to PocketBase as the caller (through the Forwarder) and relays PocketBase's
// status, headers and body unchanged; after an acknowledged write it waits (bounded)
// until the replica has applied a log read that started after the acknowledgement: read-your-writes.
import type { Context } from 'koa';
import type { Replicator } from '../../replica/replicator.js';
import type { Forwarder } from '../http/forward.js';

export interface ForwardDeps {
  replicator: Replicator;
  forwarder: Forwarder;
  syncTimeoutMs: number;
  onSynced?(ms: number, timedOut: boolean): void;
}

export async function forwardWrite(ctx: Context, deps: ForwardDeps, body: Buffer | undefined, contentType?: string, path = ctx.url): Promise<void> {
  const answer = await deps.forwarder.fetch(ctx, { body, contentType, path });
  if (answer.status >= 200 && answer.status < 300) await readYourWrites(deps);
  deps.forwarder.relay(ctx, answer);
}

/** Waits for the replica to include the acknowledged write, at most syncTimeoutMs. */
export async function readYourWrites(deps: Pick<ForwardDeps, 'replicator' | 'syncTimeoutMs' | 'onSynced'>): Promise<void> {
  if (!deps.replicator.store) return;
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    deps.replicator.syncAfterNow().then(() => false),
    new Promise<boolean>((res) => (timer = setTimeout(() => res(true), deps.syncTimeoutMs))),
  ]);
  clearTimeout(timer);
  deps.onSynced?.(performance.now() - started, timedOut);
}
