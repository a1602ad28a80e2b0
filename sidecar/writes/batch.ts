// POST /api/batch (JSON): every inner records request of a replicated collection goes through the same
// hooks and validation as a direct write; the first invalid one answers PocketBase's batch error
// without any upstream request. The batch (with hook-transformed bodies) is then forwarded whole.
import type { Context } from 'koa';
import type { ReplicaStore } from '../../replica/store.js';
import { readBody } from '../gate/body-limit.js';
import { batchBody, send } from './errors.js';
import { forwardWrite, type ForwardDeps } from './forward.js';
import { checkWrite, parseJsonObject, targetOf, type WriteRoutesOptions } from './index.js';

interface InnerRequest { method?: unknown; url?: unknown; body?: unknown; headers?: unknown }

export async function handleBatch(ctx: Context, opts: WriteRoutesOptions, deps: ForwardDeps, store: ReplicaStore): Promise<void> {
  const raw = await readBody(ctx.req, opts.maxJsonBody);
  const payload = parseJsonObject(raw);
  const requests = payload?.requests;
  // malformed batches, too many requests, unknown methods: PocketBase's own answers
  if (!Array.isArray(requests)) return forwardWrite(ctx, deps, raw);
  let changed = false;
  for (let i = 0; i < requests.length; i++) {
    const inner = requests[i] as InnerRequest;
    if (!inner || typeof inner !== 'object' || typeof inner.method !== 'string' || typeof inner.url !== 'string') continue;
    let path: string;
    try {
      path = new URL(inner.url, 'http://batch.invalid').pathname;
    } catch {
      continue;
    }
    const t = targetOf(store, inner.method.toUpperCase(), path);
    if (!t) continue;
    let body: Record<string, unknown> | null = Object.create(null);
    if (inner.body !== undefined && inner.body !== null) {
      body = typeof inner.body === 'object' && !Array.isArray(inner.body) ? parseJsonObject(Buffer.from(JSON.stringify(inner.body))) : null;
    }
    if (!body) continue;
    const r = await checkWrite(opts, store, ctx, t, body, new Map());
    if (r.error) {
      opts.onRejected?.(`batch ${r.reason ?? 'validation'}`);
      return send(ctx, batchBody(i, r.error));
    }
    if (r.changed) {
      inner.body = { ...r.body };
      changed = true;
    }
  }
  if (!changed) return forwardWrite(ctx, deps, raw);
  return forwardWrite(ctx, deps, Buffer.from(JSON.stringify(payload)), 'application/json');
}
