// Sends a checked write to PocketBase as the caller (through the Forwarder) and relays PocketBase's
// status, headers and body unchanged. An acknowledged write is answered at once; the caller's watermark
// (consistency.ts) makes its next reads wait for the replica, or go to PocketBase: read-your-writes. The
// log head that watermark comes from is asked for on the write's own connection, right behind it.
import type { Context } from 'koa';
import type { Consistency } from '../consistency.js';
import type { Forwarder } from '../http/forward.js';

export interface ForwardDeps {
  forwarder: Forwarder;
  consistency: Pick<Consistency, 'afterWrite'> & { beforeWrite?: (ctx: Context) => Promise<void> };
}

export async function forwardWrite(ctx: Context, deps: ForwardDeps, body: Buffer | undefined, contentType?: string, path = ctx.url): Promise<void> {
  await deps.consistency.beforeWrite?.(ctx);
  const { answer, head } = await deps.forwarder.fetchWrite(ctx, { body, contentType, path });
  if (answer.status >= 200 && answer.status < 300) await deps.consistency.afterWrite(ctx, undefined, head);
  deps.forwarder.relay(ctx, answer);
}
