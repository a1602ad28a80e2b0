// POST /api/batch (JSON): every inner records request of a replicated collection goes through the same
// hooks and validation as a direct write; the first invalid one answers PocketBase's batch error
// without any upstream request. The batch (with hook-transformed bodies) is then forwarded whole.
import type { Context } from 'koa';
import type { ReplicaStore } from '../../replica/store.js';
import { readBody } from '../gate/body-limit.js';
import { sendApiError } from '../errors.js';
import { batchError } from './errors.js';
import { forwardWrite, type ForwardDeps } from './forward.js';
import { collectionRefs, resolveCollection } from '../http/target.js';
import { checkWrite, parseJsonObject, type Target, type WriteRoutesOptions } from './index.js';

// apis/batch.go matches `METHOD URL` with these patterns on the raw URL: the collection and id are taken
// as written (no unescaping), the collection then found by id or name in any case.
const CREATE = /^POST \/api\/collections\/([^/?]+)\/records(\?.*)?$/;
const UPDATE_DELETE = /^(PATCH|DELETE) \/api\/collections\/([^/?]+)\/records\/([^/?]+)(\?.*)?$/;

/** The replicated collection and action of an inner request, as PocketBase's batch resolves it. */
export function batchTargetOf(store: ReplicaStore, method: string, url: string): Target | null {
  const full = `${method} ${url}`;
  let m = CREATE.exec(full);
  const [name, action, recordId] = m ? [m[1], 'create' as const, undefined]
    : (m = UPDATE_DELETE.exec(full)) ? [m[2], m[1] === 'PATCH' ? 'update' as const : 'delete' as const, m[3]] : [null, null, undefined];
  if (!name || !action) return null;
  const ref = resolveCollection(name, collectionRefs(store));
  const collection = ref ? store.entry(ref.id)?.collection : undefined;
  return collection ? { collection, action, recordId } : null;
}

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
    const t = batchTargetOf(store, inner.method.toUpperCase(), inner.url);
    if (!t) continue;
    let body: Record<string, unknown> | null = Object.create(null);
    if (inner.body !== undefined && inner.body !== null) {
      body = typeof inner.body === 'object' && !Array.isArray(inner.body) ? parseJsonObject(Buffer.from(JSON.stringify(inner.body))) : null;
    }
    if (!body) continue;
    const r = await checkWrite(opts, store, ctx, t, body, new Map());
    if (r.error) {
      opts.onRejected?.(`batch ${r.reason ?? 'validation'}`);
      return sendApiError(ctx, batchError(i, r.error));
    }
    if (r.changed) {
      inner.body = { ...r.body };
      changed = true;
    }
  }
  if (!changed) return forwardWrite(ctx, deps, raw);
  return forwardWrite(ctx, deps, Buffer.from(JSON.stringify(payload)), 'application/json');
}
