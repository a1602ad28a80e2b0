// Sends a checked write to PocketBase as the caller (identity and real IP from prepareUpstream) and
// relays PocketBase's status, headers and body unchanged; after an acknowledged write it waits (bounded)
// until the replica has applied a log read that started after the acknowledgement: read-your-writes.
import type { Context } from 'koa';
import type { Dispatcher } from 'undici';
import type { Replicator } from '../../replica/replicator.js';
import type { Upstream } from '../../lib/upstream.js';
import { sendError } from '../errors.js';
import { forwardHeaders } from '../proxy.js';

export interface ForwardDeps {
  replicator: Replicator;
  upstream: Upstream;
  prepareUpstream(ctx: Context, headers: Record<string, string | string[]>): Promise<void>;
  syncTimeoutMs: number;
  onSynced?(ms: number, timedOut: boolean): void;
}

const SKIP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

export async function forwardWrite(ctx: Context, deps: ForwardDeps, body: Buffer | undefined, contentType?: string, path = ctx.url): Promise<void> {
  const headers = forwardHeaders(ctx.req.headers);
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  delete headers.expect;
  if (contentType) headers['content-type'] = contentType;
  await deps.prepareUpstream(ctx, headers);
  ctx.state.upstream = true;
  let res: Dispatcher.ResponseData;
  let text: Buffer;
  try {
    res = await deps.upstream.request('proxy', { method: ctx.method as Dispatcher.HttpMethod, path, headers, body: body && body.length ? body : undefined });
    text = Buffer.from(await res.body.arrayBuffer());
  } catch {
    return sendError(ctx, 502, 'PocketBase is unavailable.');
  }
  if (res.statusCode >= 200 && res.statusCode < 300) await readYourWrites(deps);
  ctx.status = res.statusCode;
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || SKIP.has(name)) continue;
    ctx.set(name, value as string | string[]);
  }
  ctx.body = res.statusCode === 204 ? null : text;
  if (res.statusCode === 204) ctx.status = 204;
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
