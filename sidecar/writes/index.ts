// The write path: record create/update/delete (JSON, urlencoded, multipart) and /api/batch for
// replicated collections. Each write runs its hooks, is validated against the collection's definition
// (an invalid one never reaches PocketBase), then is forwarded as the caller and answered after the
// replica has caught up. Anything else, or anything we cannot judge, goes on to the proxy.
import type { Context, Middleware, Next } from 'koa';
import type { Replicator } from '../../replica/replicator.js';
import { quoteIdent, type PbCollection, type PbField } from '../../replica/schema.js';
import type { ReplicaStore } from '../../replica/store.js';
import { ApiError, sendApiError, sendError } from '../errors.js';
import { BodyTooLarge, readBody, TOO_LARGE } from '../gate/body-limit.js';
import type { Forwarder } from '../http/forward.js';
import { collectionRefs, parseTarget } from '../http/target.js';
import type { Authenticated } from '../sessions/manager.js';
import { handleBatch } from './batch.js';
import { hookError, validationError } from './errors.js';
import { formBody, readForm } from './form.js';
import { forwardWrite, type ForwardDeps } from './forward.js';
import { nullProto, runHooks, type WriteAction, type WriteHooks } from './hooks.js';
import { encodeMultipart, fileFieldOf, MalformedBody, parseMultipart } from './multipart.js';
import type { Upload } from './uploads.js';
import { ruleFailure, ruleVerdict } from './rule-gate.js';
import { validateWrite } from './validate.js';

export type { WriteHooks, Hook, HookInput, HookResult } from './hooks.js';

export interface WriteRoutesOptions {
  replicator: Replicator;
  forwarder: Forwarder;
  hooks?: WriteHooks;
  maxUploadBody: number;
  maxJsonBody: number;
  consistency: ForwardDeps['consistency'];
  onRejected?(reason: string): void;
}

export interface Target { collection: PbCollection; action: WriteAction; recordId?: string }

/**
 * The replicated collection and action a records URL addresses (canonicalised as PocketBase routes it:
 * escapes, collection by id or name in any case), or null.
 */
export function targetOf(store: ReplicaStore, method: string, url: string): Target | null {
  const parsed = parseTarget(method, url, collectionRefs(store));
  if (parsed.kind !== 'ok') return null;
  const s = parsed.target.segments;
  if (s.length < 4 || s.length > 5 || s[0] !== 'api' || s[1] !== 'collections' || s[3] !== 'records') return null;
  const recordId = s.length === 5 ? s[4] : undefined;
  if (recordId === '') return null;
  const action = method === 'POST' && recordId === undefined ? 'create' : method === 'PATCH' && recordId ? 'update' : method === 'DELETE' && recordId ? 'delete' : null;
  if (!action) return null;
  const ref = parsed.target.collection?.ref;
  const collection = ref ? store.entry(ref.id)?.collection : undefined;
  return collection ? { collection, action, recordId } : null;
}

export function relationExists(store: ReplicaStore) {
  return (f: PbField, ids: string[]): boolean => {
    const entry = typeof f.collectionId === 'string' ? store.entry(f.collectionId) : undefined;
    if (!entry || ids.length > 500) return false;
    const sql = `SELECT COUNT(*) AS n FROM ${quoteIdent(entry.spec.table)} WHERE id IN (${ids.map(() => '?').join(',')})`;
    return (store.db.prepare(sql).get(...ids) as { n: number }).n === ids.length;
  };
}

export interface CheckResult {
  body: Record<string, unknown>;
  changed?: boolean;
  error?: ApiError;
  reason?: string;
  /** Invalid, but only PocketBase can say with which answer (its rule comes first). */
  unsure?: boolean;
}

/** Hooks, then validation, of one write (shared by the records routes and the batch route). */
export async function checkWrite(opts: WriteRoutesOptions, store: ReplicaStore, ctx: Context, t: Target, body: Record<string, unknown>, uploads: Map<string, Upload[]>): Promise<CheckResult> {
  const auth = (ctx.state.auth as Authenticated | undefined) ?? null;
  const superuser = auth?.session.collectionName === '_superusers';
  const failMessage = t.action === 'create' ? 'Failed to create record.' : t.action === 'update' ? 'Failed to update record.' : 'Failed to delete record.';
  const hooked = await runHooks(opts.hooks, { body: nullProto(body), requester: auth, collection: t.collection, action: t.action, recordId: t.recordId });
  if ('reject' in hooked) return { body, error: hookError(hooked.reject, failMessage), reason: 'hook' };
  body = hooked.body;
  const changed = hooked.changed;
  // PocketBase tokens passed through: PocketBase knows who that is, we do not.
  if (ctx.state.passThroughAuth) return { body, changed };
  const rule = t.action === 'create' ? t.collection.createRule : t.action === 'update' ? t.collection.updateRule : t.collection.deleteRule;
  const current = t.action === 'create' ? null : store.record(t.collection.id, t.recordId!);
  const verdict = ruleVerdict(rule, superuser, { authId: auth && !superuser ? auth.session.recordId : null, body, record: current });
  // A rule that certainly fails is answered as PocketBase answers it. Only for creates: an update or
  // delete rule reads the stored record, and the replica may not have its newest state yet, so
  // PocketBase (the authority on rules) decides those.
  if (verdict === 'fails' && t.action === 'create') {
    const f = ruleFailure(t.action);
    return { body, error: new ApiError(f.status, f.message), reason: 'rule' };
  }
  if (t.action === 'delete' || verdict === 'superusers-only' || verdict === 'fails') return { body, changed };
  if (t.action === 'update' && !current) return { body, changed };
  const outcome = validateWrite({ collection: t.collection, action: t.action, body, uploads, current, superuser, relationExists: relationExists(store) });
  if (outcome.kind === 'invalid') {
    // The rule is checked first in PocketBase: only a rule known to pass lets us answer the errors.
    if (verdict === 'unknown') return { body, changed, unsure: true };
    return { body, error: validationError(outcome.message, outcome.data), reason: 'validation' };
  }
  return { body, changed };
}

export function createWriteRoutes(opts: WriteRoutesOptions): Middleware {
  const deps: ForwardDeps = opts;
  return async function writeRoutes(ctx: Context, next: Next): Promise<void> {
    const store = opts.replicator.store;
    if (!store || !['POST', 'PATCH', 'DELETE'].includes(ctx.method)) return next();
    if (ctx.method === 'POST' && ctx.path === '/api/batch') {
      if (!ctx.is('json') && ctx.get('content-type') !== '') return next(); // multipart batches: PocketBase checks them
      return guard(ctx, () => handleBatch(ctx, opts, deps, store));
    }
    const t = targetOf(store, ctx.method, ctx.url);
    if (!t) return next();
    return guard(ctx, () => handleRecord(ctx, opts, deps, store, t, next));
  };
}

async function guard(ctx: Context, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (err instanceof BodyTooLarge) {
      ctx.set('Connection', 'close');
      return sendError(ctx, 413, TOO_LARGE);
    }
    if (err instanceof MalformedBody) return sendError(ctx, 400, 'Failed to read the submitted data.');
    throw err;
  }
}

async function handleRecord(ctx: Context, opts: WriteRoutesOptions, deps: ForwardDeps, store: ReplicaStore, t: Target, next: Next): Promise<void> {
  const type = ctx.get('content-type').toLowerCase();
  if (t.action === 'delete') {
    const raw = await readBody(ctx.req, opts.maxJsonBody);
    const r = await checkWrite(opts, store, ctx, t, Object.create(null), new Map());
    if (r.error) return reject(ctx, opts, r);
    return forwardWrite(ctx, deps, raw);
  }
  if (type.startsWith('multipart/form-data')) {
    const parsed = await parseMultipart(ctx.req, {
      limit: opts.maxUploadBody,
      collection: (key) => {
        const f = fileFieldOf(t.collection, key);
        return f ? { maxSize: typeof f.maxSize === 'number' && f.maxSize > 0 ? f.maxSize : 5 << 20 } : null;
      },
    });
    const r = await checkWrite(opts, store, ctx, t, parsed.fields, parsed.uploads);
    if (r.error) return reject(ctx, opts, r);
    const missing = [...parsed.uploads.values()].flat().find((u) => !u.chunks);
    if (missing) return sendError(ctx, 413, TOO_LARGE);
    const enc = encodeMultipart(r.body, parsed.uploads);
    return forwardWrite(ctx, deps, enc.body, enc.contentType);
  }
  const raw = await readBody(ctx.req, opts.maxJsonBody);
  let body: Record<string, unknown> | null = null;
  if (type.startsWith('application/x-www-form-urlencoded')) {
    // as Go's ParseForm reads it (the URL's query merged in); what it refuses, PocketBase refuses first
    const form = readForm({ contentType: ctx.get('content-type'), body: raw, rawQuery: ctx.querystring, empty: raw.length === 0 && !ctx.get('transfer-encoding') });
    const read = form.ok ? formBody(form.values) : form;
    if (!read.ok) return reject(ctx, opts, { body: Object.create(null), error: new ApiError(read.status, read.message, {}, read.detail), reason: 'form' });
    body = read.body;
  } else if (type === '' || type.startsWith('application/json')) {
    body = parseJsonObject(raw);
  }
  // a body we cannot read as PocketBase would: PocketBase answers it
  if (!body) return forwardWrite(ctx, deps, raw);
  const r = await checkWrite(opts, store, ctx, t, body, new Map());
  if (r.error) return reject(ctx, opts, r);
  // unchanged JSON goes on byte for byte; a hook's or a form's body as JSON
  if (!r.changed && !type.startsWith('application/x-www-form-urlencoded')) return forwardWrite(ctx, deps, raw);
  return forwardWrite(ctx, deps, Buffer.from(JSON.stringify(r.body)), 'application/json');
}

function reject(ctx: Context, opts: WriteRoutesOptions, r: CheckResult): void {
  opts.onRejected?.(r.reason ?? 'validation');
  sendApiError(ctx, r.error!);
}

/** A JSON object body (empty: {}); null for anything else. Keys like __proto__ stay plain data. */
export function parseJsonObject(raw: Buffer): Record<string, unknown> | null {
  const text = raw.toString('utf8').trim();
  if (text === '') return Object.create(null);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  return nullProto(parsed as Record<string, unknown>);
}
