// The write validator: rebuilds the record PocketBase would validate (current replica state or zero
// values, hidden fields dropped, uploads merged, modifiers applied in PocketBase's order) and checks
// every field through a yup schema compiled per collection definition (cached by its JSON).
// Outcome "unsure" forwards the write untouched: PocketBase decides whenever we are not certain.
import { createHash } from 'node:crypto';
import * as yup from 'yup';
import type { PbCollection, PbField } from '../../replica/schema.js';
import { toStr, toUniqueStrings, UNSURE } from './cast.js';
import { applyKey, fromReplica, REQUIRED, validateField, zeroValue, type FieldError, type Stored } from './fields.js';
import type { Upload } from './uploads.js';

export type Outcome =
  | { kind: 'ok' }
  | { kind: 'invalid'; data: Record<string, FieldError>; message: string }
  | { kind: 'unsure'; reason: string };

export interface WriteInput {
  collection: PbCollection;
  action: 'create' | 'update';
  /** Null-prototype map of the submitted body (JSON or multipart fields). */
  body: Record<string, unknown>;
  /** Uploaded files by multipart key (name, +name, name+). */
  uploads: Map<string, Upload[]>;
  /** The record as the replica holds it (update), null for create. */
  current: Record<string, unknown> | null;
  superuser: boolean;
  relationExists(field: PbField, ids: string[]): boolean;
}

interface Ctx { oldFiles: Record<string, string[]>; relationExists: WriteInput['relationExists']; unsure: string[] }

interface Compiled { hash: string; schema: yup.ObjectSchema<Record<string, unknown>> }
const compiled = new Map<string, Compiled>();

/** The collection's yup schema, rebuilt when its definition changes. */
export function schemaFor(collection: PbCollection): yup.ObjectSchema<Record<string, unknown>> {
  const hash = createHash('sha1').update(JSON.stringify(collection.fields)).digest('hex');
  const hit = compiled.get(collection.id);
  if (hit?.hash === hash) return hit.schema;
  const shape: Record<string, yup.AnySchema> = {};
  for (const f of collection.fields) {
    // ids are generated (a custom one is PocketBase's call); autodates and token keys are not settable
    if (f.type === 'autodate' || f.primaryKey || (collection.type === 'auth' && f.name === 'tokenKey')) continue;
    shape[f.name] = yup.mixed().test({
      name: f.type,
      test(value, testCtx) {
        const ctx = testCtx.options.context as Ctx;
        const verdict = validateField(f, value as Stored, { oldFiles: ctx.oldFiles[f.name] ?? [], relationExists: ctx.relationExists });
        if (verdict === UNSURE) {
          ctx.unsure.push(f.name);
          return true;
        }
        return verdict === null ? true : testCtx.createError({ path: f.name, message: verdict.message, params: { pb: verdict } });
      },
    });
  }
  const schema = yup.object(shape).noUnknown(false) as unknown as yup.ObjectSchema<Record<string, unknown>>;
  compiled.set(collection.id, { hash, schema });
  return schema;
}

export function validateWrite(input: WriteInput): Outcome {
  const { collection, action, superuser } = input;
  const isAuth = collection.type === 'auth';
  const message = action === 'create' ? 'Failed to create record.' : 'Failed to update record.';
  const fields = collection.fields;
  const data: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(input.body)) data[k] = v;

  // hidden fields are silently dropped for non-superusers (auth "password" excepted)
  if (!superuser) for (const f of fields) if (f.hidden && !(isAuth && f.name === 'password')) delete data[f.name];

  // uploads join the submitted names of the same plain key (recordDataFromRequest)
  for (const [key, files] of input.uploads) {
    let merged: unknown[] = files;
    if (data[key] !== undefined && data[key] !== null && !key.startsWith('+') && !key.endsWith('+') && !key.endsWith('-')) {
      const existing = toUniqueStrings(data[key]);
      if (existing === UNSURE) return { kind: 'unsure', reason: 'file names' };
      merged = [...existing, ...files];
    }
    data[key] = merged;
  }

  if (isAuth) {
    const verdict = authForm(data, action, superuser);
    if (verdict === 'unsure') return { kind: 'unsure', reason: 'auth form' };
    if (verdict) return { kind: 'invalid', data: verdict, message };
  }
  if (typeof data.id === 'string' ? data.id !== '' : data.id !== undefined) return { kind: 'unsure', reason: 'custom id' };

  // the stored record, then each key in PocketBase's order (shorter keys first)
  const record: Record<string, Stored> = Object.create(null);
  const oldFiles: Record<string, string[]> = Object.create(null);
  for (const f of fields) {
    record[f.name] = input.current ? fromReplica(f, input.current[f.name]) : zeroValue(f);
    if (f.type === 'file' && input.current) {
      const names = toUniqueStrings(input.current[f.name]);
      oldFiles[f.name] = names === UNSURE ? [] : names;
    }
  }
  const keys = Object.keys(data).sort((a, b) => a.length - b.length);
  const touched = new Map<string, number>();
  for (const key of keys) {
    if (key.endsWith(':autogenerate')) return { kind: 'unsure', reason: 'autogenerate modifier' };
    for (const f of fields) {
      if (f.name === 'id') continue;
      const next = applyKey(f, key, record[f.name], data[key]);
      if (next === null) continue;
      // same-length keys for one field run in Go's random map order
      if (touched.get(f.name) === key.length && key !== f.name) return { kind: 'unsure', reason: 'modifier order' };
      touched.set(f.name, key.length);
      record[f.name] = next;
      break;
    }
  }

  const ctx: Ctx = { oldFiles, relationExists: input.relationExists, unsure: [] };
  let errors: Record<string, FieldError> = {};
  try {
    schemaFor(collection).validateSync(record, { abortEarly: false, context: ctx, strict: true });
  } catch (err) {
    if (!(err instanceof yup.ValidationError)) throw err;
    errors = collect(err);
  }
  if (ctx.unsure.length) return { kind: 'unsure', reason: `field ${ctx.unsure[0]}` };
  const names = Object.keys(errors);
  if (!names.length) return { kind: 'ok' };
  // an update failing on a field it did not touch: stale replica or legacy data, PocketBase's call
  if (action === 'update' && names.some((n) => !touched.has(n))) return { kind: 'unsure', reason: 'untouched field' };
  return { kind: 'invalid', data: errors, message };
}

function collect(err: yup.ValidationError): Record<string, FieldError> {
  const out: Record<string, FieldError> = {};
  for (const e of err.inner.length ? err.inner : [err]) {
    const pb = (e.params as { pb?: FieldError } | undefined)?.pb;
    if (e.path && pb) out[e.path] = pb;
  }
  return out;
}

/** RecordUpsert.validateFormFields for auth collections; its errors come alone, before field checks. */
function authForm(data: Record<string, unknown>, action: 'create' | 'update', superuser: boolean): Record<string, FieldError> | null | 'unsure' {
  if (action === 'update') {
    for (const k of ['email', 'verified', 'password', 'passwordConfirm', 'oldPassword']) if (k in data) return 'unsure';
    return null;
  }
  if ('verified' in data && !superuser) return 'unsure'; // manage access is decided by a rule
  const password = toStr(data.password);
  const confirm = toStr(data.passwordConfirm);
  if (password === UNSURE || confirm === UNSURE) return 'unsure';
  const errors: Record<string, FieldError> = {};
  if (password === '') errors.password = REQUIRED;
  if (confirm === '') errors.passwordConfirm = REQUIRED;
  else if (confirm !== password) errors.passwordConfirm = { code: 'validation_values_mismatch', message: "Values don't match." };
  return Object.keys(errors).length ? errors : null;
}
