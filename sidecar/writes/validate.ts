// The write validator: rebuilds what PocketBase builds from a request (recordDataFromRequest's body with
// modifiers resolved and hidden fields dropped, then form.Load into the stored record or a new one) and
// checks every field through a yup schema compiled per collection definition (cached by its JSON).
// The prepared write also carries what the collection rule sees: `@request.body` and, for a create,
// the would-be record. Outcome "unsure" forwards the write: PocketBase decides whenever we are not certain.
import { createHash } from 'node:crypto';
import * as yup from 'yup';
import type { PbCollection, PbField } from '../../replica/schema.js';
import { toStr, toUniqueStrings, UNSURE, type Maybe } from './cast.js';
import {
  applyKey, bodyValue, dbValue, fromReplica, keyKind, REQUIRED, validateField, zeroValue,
  type FieldError, type GoValue, type Stored,
} from './fields.js';
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

/** One `@request.body` entry: its Go value, and whether it follows from the request alone. */
export interface BodyEntry { value: Maybe<GoValue>; pure: boolean }

export interface Prepared {
  input: WriteInput;
  /** The record PocketBase validates, field by field (stored model). */
  record: Record<string, Stored>;
  /** `@request.body` as the rules see it (requestInfo.Body after recordDataFromRequest). */
  body: Map<string, BodyEntry>;
  /** For a create: each column of the dummy row the create rule runs against (UNSURE: not reproduced). */
  dummy: Map<string, Maybe<unknown>> | null;
  /** Fields given a value by a plain key (for an update: a value that does not depend on the stored one). */
  plain: Set<string>;
  /** Fields some key applied to. */
  touched: Set<string>;
  oldFiles: Record<string, string[]>;
}

interface Ctx { oldFiles: Record<string, string[]>; relationExists: WriteInput['relationExists']; isNew: boolean; unsure: string[] }

interface Compiled { hash: string; schema: yup.ObjectSchema<Record<string, unknown>> }
const compiled = new Map<string, Compiled>();

const byDefinition = new WeakMap<PbCollection, yup.ObjectSchema<Record<string, unknown>>>();

/** The collection's yup schema, rebuilt when its definition changes. */
export function schemaFor(collection: PbCollection): yup.ObjectSchema<Record<string, unknown>> {
  // the replica hands out one definition object per schema version: most calls stop here
  const known = byDefinition.get(collection);
  if (known) return known;
  const schema = schemaForFields(collection);
  byDefinition.set(collection, schema);
  return schema;
}

function schemaForFields(collection: PbCollection): yup.ObjectSchema<Record<string, unknown>> {
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
        const verdict = validateField(f, value as Stored, { oldFiles: ctx.oldFiles[f.name] ?? [], relationExists: ctx.relationExists, isNew: ctx.isNew });
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

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** security.PseudorandomString: the dummy id's random part (its value does not matter). */
function pseudorandom(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALNUM[Math.floor(Math.random() * ALNUM.length)];
  return s;
}

interface KeyIndex { keys: Map<string, PbField>; byName: Map<string, PbField> }
const keyIndexes = new WeakMap<PbField[], KeyIndex>();

/** Every body key a field's setters take (name, name+, +name, name-), per definition. */
function keyIndex(fields: PbField[]): KeyIndex {
  let idx = keyIndexes.get(fields);
  if (!idx) {
    idx = { keys: new Map(), byName: new Map(fields.map((f) => [f.name, f])) };
    for (const f of fields) {
      for (const key of [f.name, `${f.name}+`, `+${f.name}`, `${f.name}-`]) {
        if (!idx.keys.has(key) && keyKind(f, key)) idx.keys.set(key, f);
      }
    }
    keyIndexes.set(fields, idx);
  }
  return idx;
}

/** The field a body key sets (the first field whose setter takes it), or null for a key that is not a field's. */
function fieldOfKey(fields: PbField[], key: string): PbField | null {
  return keyIndex(fields).keys.get(key) ?? null;
}

/** Rebuilds the body, the record and (create) the dummy row, as PocketBase does before its rule check. */
export function prepareWrite(input: WriteInput): Prepared {
  const { collection, superuser } = input;
  const isNew = input.action === 'create';
  const isAuth = collection.type === 'auth';
  const fields = collection.fields;

  // the body, uploads joined to the submitted names of the same plain key (recordDataFromRequest)
  const data: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(input.body)) data[k] = v;
  const uncertain = new Set<string>();
  for (const [key, files] of input.uploads) {
    let merged: unknown[] = files;
    const plainKey = !key.startsWith('+') && !key.endsWith('+') && !key.endsWith('-');
    if (data[key] !== undefined && data[key] !== null) {
      const existing = toUniqueStrings(data[key]);
      // a modifier key sent both as names and as files: PocketBase applies them in two passes
      if (!plainKey || existing === UNSURE) uncertain.add(fieldOfKey(fields, key)?.name ?? key);
      else merged = [...existing, ...files];
    }
    data[key] = merged;
  }

  // the stored record (or zero values), then each key in PocketBase's order (shorter keys first)
  const record: Record<string, Stored> = Object.create(null);
  const oldFiles: Record<string, string[]> = Object.create(null);
  for (const f of fields) {
    record[f.name] = input.current ? fromReplica(f, input.current[f.name]) : zeroValue(f);
    if (f.type === 'file' && input.current) {
      const names = toUniqueStrings(input.current[f.name]);
      oldFiles[f.name] = names === UNSURE ? [] : names;
    }
  }
  const body = new Map<string, BodyEntry>();
  const plain = new Set<string>();
  const touched = new Set<string>();
  const lengths = new Map<string, number>();
  const keys = Object.keys(data).sort((a, b) => a.length - b.length);
  for (const key of keys) {
    let f = fieldOfKey(fields, key);
    if (!f && key.endsWith(':autogenerate')) {
      // text's "name:autogenerate": the value plus a random string
      f = fields.find((x) => x.type === 'text' && `${x.name}:autogenerate` === key) ?? null;
      if (f) {
        if (f.hidden && !superuser) continue;
        uncertain.add(f.name);
        touched.add(f.name);
        continue;
      }
    }
    if (!f) {
      // not a field: `@request.body` keeps it as sent
      body.set(key, { value: goValue(data[key]), pure: true });
      continue;
    }
    // hidden fields are dropped for non-superusers (auth "password" excepted), modifiers included
    if (f.hidden && !superuser && !(isAuth && f.name === 'password')) continue;
    if (f.primaryKey) {
      body.set(f.name, { value: toStr(data[key]), pure: true });
      continue;
    }
    // same-length keys for one field run in Go's random map order
    if (lengths.get(f.name) === key.length && key !== f.name) uncertain.add(f.name);
    lengths.set(f.name, key.length);
    const kind = keyKind(f, key)!;
    const next = applyKey(f, key, record[f.name], data[key]);
    record[f.name] = next ?? UNSURE;
    touched.add(f.name);
    if (kind === 'set') plain.add(f.name);
  }
  for (const name of uncertain) if (name in record) record[name] = UNSURE;
  const byName = keyIndex(fields).byName;
  for (const name of touched) {
    const f = byName.get(name)!;
    body.set(name, { value: bodyValue(f, record[name]), pure: isNew || plain.has(name) });
  }

  let dummy: Map<string, Maybe<unknown>> | null = null;
  if (isNew) {
    dummy = new Map();
    for (const f of fields) {
      if (f.primaryKey) {
        const id = data.id === undefined || data.id === null ? '' : toStr(data.id);
        dummy.set(f.name, id !== '' ? id : `__temp_id____pb_create__${pseudorandom(6)}`);
      } else if (isAuth && f.name === 'verified') {
        dummy.set(f.name, false);
      } else {
        dummy.set(f.name, dbValue(f, record[f.name]));
      }
    }
  }
  return { input, record, body, dummy, plain, touched, oldFiles };
}

/** A raw body value as Go holds it (JSON-decoded: maps, slices, float64, bool, string, nil). */
export function goValue(v: unknown, depth = 0): Maybe<GoValue> {
  if (depth > 1000) return UNSURE;
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) {
    const out: GoValue[] = [];
    for (const x of v) {
      const g = goValue(x, depth + 1);
      if (g === UNSURE) return UNSURE;
      out.push(g);
    }
    return out;
  }
  if (typeof v === 'object') {
    if ((v as { kind?: unknown }).kind === 'upload') return UNSURE;
    const out: Record<string, GoValue> = Object.create(null); // "__proto__" stays a key
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k.startsWith('$')) return UNSURE; // would read as one of our Go-type wrappers
      const g = goValue(x, depth + 1);
      if (g === UNSURE) return UNSURE;
      out[k] = g;
    }
    return out;
  }
  return UNSURE;
}

/** Validates a prepared write: PocketBase's answer to it when it is certain. */
export function validatePrepared(p: Prepared): Outcome {
  const { collection, action, superuser } = p.input;
  const message = action === 'create' ? 'Failed to create record.' : 'Failed to update record.';
  const data = p.input.body;
  if (collection.type === 'auth') {
    const verdict = authForm(data, p.input.uploads, action, superuser);
    if (verdict === 'unsure') return { kind: 'unsure', reason: 'auth form' };
    if (verdict) return { kind: 'invalid', data: verdict, message };
  }
  if (typeof data.id === 'string' ? data.id !== '' : data.id !== undefined) return { kind: 'unsure', reason: 'custom id' };

  const ctx: Ctx = { oldFiles: p.oldFiles, relationExists: p.input.relationExists, isNew: action === 'create', unsure: [] };
  let errors: Record<string, FieldError> = {};
  try {
    schemaFor(collection).validateSync(p.record, { abortEarly: false, context: ctx, strict: true });
  } catch (err) {
    if (!(err instanceof yup.ValidationError)) throw err;
    errors = collect(err);
  }
  if (ctx.unsure.length) return { kind: 'unsure', reason: `field ${ctx.unsure[0]}` };
  const names = Object.keys(errors);
  if (!names.length) return { kind: 'ok' };
  if (action === 'update') {
    // an update failing on a field it did not touch: stale replica or legacy data, PocketBase's call
    if (names.some((n) => !p.touched.has(n))) return { kind: 'unsure', reason: 'untouched field' };
    // a value computed from the stored one (modifiers, kept files) may differ in PocketBase's newer copy
    const types = new Map(collection.fields.map((f) => [f.name, f.type]));
    if (names.some((n) => !p.plain.has(n) || types.get(n) === 'file')) return { kind: 'unsure', reason: 'stored value' };
  }
  return { kind: 'invalid', data: errors, message };
}

/** prepareWrite then validatePrepared (the bench and tests call this). */
export function validateWrite(input: WriteInput): Outcome {
  return validatePrepared(prepareWrite(input));
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
function authForm(data: Record<string, unknown>, uploads: Map<string, Upload[]>, action: 'create' | 'update', superuser: boolean): Record<string, FieldError> | null | 'unsure' {
  if (action === 'update') {
    for (const k of ['email', 'verified', 'password', 'passwordConfirm', 'oldPassword']) if (k in data || uploads.has(k)) return 'unsure';
    return null;
  }
  if ('verified' in data && !superuser) return 'unsure'; // manage access is decided by a rule
  if (uploads.has('password') || uploads.has('passwordConfirm')) return 'unsure';
  const password = toStr(data.password);
  const confirm = toStr(data.passwordConfirm);
  const errors: Record<string, FieldError> = {};
  if (password === '') errors.password = REQUIRED;
  if (confirm === '') errors.passwordConfirm = REQUIRED;
  else if (confirm !== password) errors.passwordConfirm = { code: 'validation_values_mismatch', message: "Values don't match." };
  return Object.keys(errors).length ? errors : null;
}
