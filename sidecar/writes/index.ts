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
import { isUtf8 } from 'node:buffer';
import { hasLoneSurrogate } from './cast.js';
import { hasDuplicateKeys } from './fields.js';
import type { Requester } from '../reads/request.js';
import { firstValues, parseGoQuery } from '../reads/request.js';
import { judgeRule, ruleFailure } from './rule-gate.js';
import { goValue, prepareWrite, validatePrepared, type BodyEntry } from './validate.js';

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
    return (store.prepared(sql).get(...ids) as { n: number }).n === ids.length;
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

const FORBIDDEN = 'Only superusers can perform this action.';

/** A write's answer when it can be decided here: PocketBase's own error, or null (forward it). */
interface Decision { error: ApiError; reason: string; readsReplica: boolean }

/**
 * Hooks, then PocketBase's checks in its order (apis/record_crud.go), as far as they can be decided
 * here; shared by the records routes and the batch route:
 * 1. a null rule: 403 for non-superusers, before anything else is looked at;
 * 2. update/delete: the stored record (absent from the replica: PocketBase says whether it exists);
 * 3. the collection rule (rule-gate.ts), before any field is validated: a failure is answered only when
 *    it follows from the request alone, never from replicated data that may be older than PocketBase's;
 * 4. field validation (validate.ts) once the rule passes: only errors the submitted values cause by
 *    themselves (an update's value computed from the stored one goes to PocketBase).
 * An answer that read replicated data waits, like a read, for the replica to hold the caller's own
 * writes (the caller's watermark); if it cannot, the write goes to PocketBase.
 */
export async function checkWrite(opts: WriteRoutesOptions, store: ReplicaStore, ctx: Context, t: Target, body: Record<string, unknown>, uploads: Map<string, Upload[]>): Promise<CheckResult> {
  const auth = (ctx.state.auth as Authenticated | undefined) ?? null;
  const failMessage = t.action === 'create' ? 'Failed to create record.' : t.action === 'update' ? 'Failed to update record.' : 'Failed to delete record.';
  const hooked = await runHooks(opts.hooks, { body: nullProto(body), requester: auth, collection: t.collection, action: t.action, recordId: t.recordId });
  if ('reject' in hooked) return { body, error: hookError(hooked.reject, failMessage), reason: 'hook' };
  body = hooked.body;
  const changed = hooked.changed;
  // PocketBase tokens passed through: PocketBase knows who that is, we do not.
  if (ctx.state.passThroughAuth) return { body, changed };
  const first = decide(store, ctx, t, body, uploads, auth);
  if (!first || first === 'unsure') return { body, changed, unsure: first === 'unsure' };
  if (first.readsReplica) {
    // what the replica says must include the caller's own writes: wait as a read would, then decide again
    if (!(await readable(opts, ctx))) return { body, changed, unsure: true };
    const again = decide(opts.replicator.store ?? store, ctx, t, body, uploads, auth);
    if (!again || again === 'unsure') return { body, changed, unsure: again === 'unsure' };
    return { body, error: again.error, reason: again.reason };
  }
  return { body, error: first.error, reason: first.reason };
}

/** Whether the replica holds what this caller has written or read (consistency.ts); unknown is no. */
async function readable(opts: WriteRoutesOptions, ctx: Context): Promise<boolean> {
  const c = opts.consistency as { readable?: (ctx: Context) => Promise<boolean> } | undefined;
  if (typeof c?.readable !== 'function') return true;
  try {
    return await c.readable(ctx);
  } catch {
    return false;
  }
}

/** PocketBase's answer when certain; null: a valid write (forward it); 'unsure': PocketBase's call. */
function decide(store: ReplicaStore, ctx: Context, t: Target, body: Record<string, unknown>, uploads: Map<string, Upload[]>, auth: Authenticated | null): Decision | null | 'unsure' {
  const superuser = auth?.session.collectionName === '_superusers';
  const c = store.entry(t.collection.id)?.collection ?? t.collection;
  const rule = t.action === 'create' ? c.createRule : t.action === 'update' ? c.updateRule : c.deleteRule;
  if (!superuser && (rule === null || rule === undefined)) return { error: new ApiError(403, FORBIDDEN), reason: 'forbidden', readsReplica: false };
  const current = t.action === 'create' ? null : store.record(c.id, t.recordId!);
  if (t.action !== 'create' && !current) return 'unsure';
  const prepared = t.action === 'delete' ? null : prepareWrite({
    collection: c, action: t.action, body, uploads, current, superuser, relationExists: relationExists(store),
  });
  // validation first (it is cheaper), though PocketBase checks the rule first: a write whose fields are
  // valid, or cannot be judged, is answered here only when its rule certainly fails
  const outcome = prepared ? validatePrepared(prepared) : null;
  const invalid = outcome?.kind === 'invalid';
  // an update's stored record, a relation's targets: what the replica holds
  let readsReplica = t.action === 'update' || (!!prepared && c.fields.some((f) => f.type === 'relation' && hasIds(prepared.record[f.name])));
  if (!superuser && rule) {
    const batch = ctx.path === '/api/batch';
    const judgement = judgeRule({
      store, collection: c, action: t.action, rule, requester: requesterOf(store, auth), batch,
      method: t.action === 'create' ? 'POST' : t.action === 'update' ? 'PATCH' : 'DELETE',
      query: batch ? {} : firstValues(parseGoQuery(ctx.querystring)), headers: {},
      body: prepared ? prepared.body : batch ? rawBody(body) : requestHasBody(ctx) ? null : new Map(),
      prepared: prepared ?? undefined, recordId: t.recordId,
    }, !invalid);
    if (judgement.verdict === 'fails' && judgement.certain) {
      const f = ruleFailure(t.action);
      return { error: new ApiError(f.status, f.message), reason: 'rule', readsReplica: false };
    }
    if (!invalid) return outcome?.kind === 'unsure' ? 'unsure' : null;
    if (judgement.verdict !== 'passes') return 'unsure';
    readsReplica ||= judgement.readsReplica;
  }
  if (!outcome || outcome.kind === 'ok') return null;
  if (outcome.kind === 'unsure') return 'unsure';
  return { error: validationError(outcome.message, outcome.data), reason: 'validation', readsReplica };
}

function hasIds(v: unknown): boolean {
  return typeof v === 'string' ? v !== '' : Array.isArray(v) && v.length > 0;
}

/** A DELETE's body as `@request.body` holds it (no modifiers resolved, nothing dropped). */
function rawBody(body: Record<string, unknown>): Map<string, BodyEntry> {
  const out = new Map<string, BodyEntry>();
  for (const [k, v] of Object.entries(body)) out.set(k, { value: goValue(v), pure: true });
  return out;
}

/** The caller as rules see it: anonymous, or its auth record (from the replica; its ids from the session). */
function requesterOf(store: ReplicaStore, auth: Authenticated | null): Requester {
  if (!auth) return { kind: 'anonymous' };
  const s = auth.session;
  const record = store.entry(s.collectionId) ? store.record(s.collectionId, s.recordId) : null;
  const requester: Requester = { kind: 'record', collectionId: s.collectionId, record: record ?? { id: s.recordId, collectionId: s.collectionId, collectionName: s.collectionName } };
  // only the ids are known: other @request.auth fields are PocketBase's to resolve
  if (!record) (requester as { partial?: boolean }).partial = true;
  return requester;
}

/** A request that carries a body (a DELETE's becomes `@request.body`). */
function requestHasBody(ctx: Context): boolean {
  const len = ctx.get('content-length');
  return (len !== '' && len !== '0') || ctx.get('transfer-encoding') !== '';
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

/**
 * A JSON object body (empty: {}); null for anything else, and for what Go's JSON decoder refuses though
 * JSON.parse accepts it (PocketBase answers those 400 itself): invalid UTF-8, an unpaired surrogate
 * escape, a repeated member name, a number beyond float64. Keys like __proto__ stay plain data.
 */
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
  if (!isUtf8(raw) || !goDecodable(parsed) || hasDuplicateKeys(text)) return null;
  return nullProto(parsed as Record<string, unknown>);
}

/** No number beyond float64, no unpaired surrogate, nesting within Go's limit (iterative: bodies may be deep). */
function goDecodable(root: unknown): boolean {
  const stack: Array<[unknown, number]> = [[root, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return false;
    } else if (typeof v === 'string') {
      if (hasLoneSurrogate(v)) return false;
    } else if (v && typeof v === 'object') {
      if (depth >= 10_000) return false;
      if (Array.isArray(v)) for (const x of v) stack.push([x, depth + 1]);
      else {
        for (const [k, x] of Object.entries(v)) {
          if (hasLoneSurrogate(k)) return false;
          stack.push([x, depth + 1]);
        }
      }
    }
  }
  return true;
}
