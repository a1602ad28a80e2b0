// One PocketBase field type each, as core/field_*.go defines it: how a submitted value is stored
// (PrepareValue and the `field+`/`+field`/`field-` setters), what the record then holds for
// `@request.body.*` (record.Get), what its dummy row holds for a create rule (DBExport), and how the
// stored value is validated (ValidateValue), with PocketBase's error codes, messages and params.
// UNSURE means "PocketBase decides": we never guess a rejection.
import type { PbField } from '../../replica/schema.js';
import { goFloatV, goJson, goQuote, hasLoneSurrogate, runeLength, sentenize, toBool, toFloat, toStr, toUniqueStrings, UNSURE, type Maybe } from './cast.js';
import { checkEmail, checkUrl, compareDates, matchPattern, parseDate, ZERO_DATE, type ParsedDate } from './formats.js';
import type { Upload } from './uploads.js';

export interface FieldError { code: string; message: string; params?: Record<string, unknown> }
export type Verdict = FieldError | null | typeof UNSURE;

export const REQUIRED: FieldError = { code: 'validation_required', message: 'Cannot be blank.' };

export type FileItem = string | Upload;
export interface Geo { lon: number; lat: number }
export interface Password { plain: string; hash: string }

/**
 * A stored value (Go's record.GetRaw) in our model: text kinds a string, number a number, bool a
 * boolean, select/relation a string or string[], file a FileItem or FileItem[], json the raw JSON text
 * ('' for an empty JSONRaw), date a ParsedDate, geoPoint a Geo, password a Password, autodate a
 * ParsedDate; UNSURE once a setter could not be reproduced.
 */
export type Stored = Maybe<unknown>;

const num = (f: PbField, k: string): number => (typeof f[k] === 'number' ? (f[k] as number) : 0);
export const isMultiple = (f: PbField) => num(f, 'maxSelect') > 1;

/** The zero value of a field on a new record. */
export function zeroValue(f: PbField): unknown {
  switch (f.type) {
    case 'number': return 0;
    case 'bool': return false;
    case 'select': case 'relation': case 'file': return isMultiple(f) ? [] : '';
    case 'json': return '';
    case 'geoPoint': return { lon: 0, lat: 0 };
    case 'password': return { plain: '', hash: '' };
    case 'date': case 'autodate': return ZERO_DATE;
    default: return '';
  }
}

/** The value the replica holds (the API's JSON), in the stored model. */
export function fromReplica(f: PbField, v: unknown): Stored {
  if (f.type === 'password') return { plain: '', hash: 'x' };
  if (v === undefined) return UNSURE;
  switch (f.type) {
    case 'json': return v === null ? '' : goJson(v);
    case 'date': case 'autodate': return typeof v === 'string' ? parseDate(v) : UNSURE;
    case 'geoPoint': {
      const p = v as Partial<Geo> | null;
      return p && typeof p.lon === 'number' && typeof p.lat === 'number' ? { lon: p.lon, lat: p.lat } : UNSURE;
    }
    default: return v;
  }
}

/** FileField.toSliceValue: uploads and names; a slice item counts only when it casts to exactly one name. */
function asList(v: unknown): Maybe<FileItem[]> {
  if (v === UNSURE) return UNSURE;
  if (isUpload(v)) return [v];
  if (Array.isArray(v)) {
    const out: FileItem[] = [];
    for (const x of v) {
      if (isUpload(x)) { out.push(x); continue; }
      const casted = toUniqueStrings(x);
      if (casted === UNSURE) return UNSURE;
      if (casted.length === 1) out.push(casted[0]);
    }
    return dedupeFiles(out);
  }
  const s = toUniqueStrings(v);
  return s === UNSURE ? UNSURE : s;
}
export const isUpload = (x: unknown): x is Upload => typeof x === 'object' && x !== null && (x as Upload).kind === 'upload';
const fileName = (x: FileItem) => (typeof x === 'string' ? x : x.name);
function dedupeFiles(list: FileItem[]): FileItem[] {
  const seen = new Set<string>();
  return list.filter((x) => !seen.has(fileName(x)) && (seen.add(fileName(x)), true));
}
function normalizeList<T>(f: PbField, list: T[]): T[] | T | '' {
  if (isMultiple(f)) return list;
  return list.length ? list[list.length - 1] : '';
}

export type KeyKind = 'set' | 'append' | 'prepend' | 'subtract';

/** The setter a body key targets on this field (FindSetter, or the PrepareValue fallback), or null. */
export function keyKind(f: PbField, key: string): KeyKind | null {
  const n = f.name;
  const kind: KeyKind | null = key === n ? 'set' : key === `${n}+` ? 'append' : key === `+${n}` ? 'prepend' : key === `${n}-` ? 'subtract' : null;
  if (!kind || kind === 'set') return kind;
  switch (f.type) {
    case 'number': return kind === 'prepend' ? null : kind;
    case 'select': case 'relation': case 'file': return kind;
    default: return null;
  }
}

/** Applies one body key (plain or modifier) to the current stored value; null: not this field's key. */
export function applyKey(f: PbField, key: string, current: Stored, raw: unknown): Stored | null {
  const kind = keyKind(f, key);
  if (!kind) return null;
  switch (f.type) {
    case 'text': case 'email': case 'url': case 'editor':
      return toStr(raw);
    case 'bool':
      return toBool(raw);
    case 'number': {
      const v = toFloat(raw);
      if (v === UNSURE) return UNSURE;
      if (kind === 'set') return v;
      if (current === UNSURE || typeof current !== 'number') return UNSURE;
      return kind === 'append' ? current + v : current - v;
    }
    case 'select': case 'relation': {
      const add = toUniqueStrings(raw);
      if (add === UNSURE) return UNSURE;
      if (kind === 'set') return normalizeList(f, add);
      const cur = current === UNSURE ? UNSURE : toUniqueStrings(current);
      if (cur === UNSURE) return UNSURE;
      const merged = kind === 'append' ? [...cur, ...add] : kind === 'prepend' ? [...add, ...cur] : cur.filter((x) => !add.includes(x));
      return normalizeList(f, [...new Set(merged)]);
    }
    case 'file': {
      const add = asList(raw);
      if (add === UNSURE) return UNSURE;
      if (kind === 'set') return normalizeList(f, add);
      const cur = asList(current);
      if (cur === UNSURE) return UNSURE;
      const names = new Set(add.map(fileName));
      const merged = kind === 'append' ? [...cur, ...add] : kind === 'prepend' ? [...add, ...cur] : cur.filter((x) => !names.has(fileName(x)));
      return normalizeList(f, dedupeFiles(merged));
    }
    case 'json':
      return jsonRaw(raw);
    case 'date':
      // DateTime.Scan: strings through DefaultDateLayout then cast's layouts; anything else through
      // cast.ToString and cast's layouts only (a number's digits match none of them)
      if (typeof raw === 'string') return parseDate(raw);
      if (typeof raw === 'number' || typeof raw === 'boolean' || raw === null || raw === undefined || typeof raw === 'object') return ZERO_DATE;
      return UNSURE;
    case 'geoPoint':
      return geoPoint(raw);
    case 'password': {
      const plain = toStr(raw);
      // bcrypt refuses more than 72 bytes (an error PocketBase reports its own way)
      if (Buffer.byteLength(plain) > 72) return UNSURE;
      return { plain, hash: plain === '' ? '' : 'x' };
    }
    case 'autodate':
      return current; // a no-op setter: the key is ignored
    default:
      return UNSURE;
  }
}

/** JSONField.PrepareValue: the raw JSON text PocketBase stores ('' for none). */
function jsonRaw(raw: unknown): Maybe<string> {
  if (typeof raw === 'string') {
    if (hasLoneSurrogate(raw)) return UNSURE;
    if (raw === '') return '""';
    if (raw === 'null' || raw === 'true' || raw === 'false') return raw;
    if (/^[-0-9"[{]/.test(raw)) {
      const valid = jsonSyntax(raw);
      if (valid === UNSURE) return UNSURE;
      if (valid) return raw;
    }
    const q = goQuote(raw);
    return q === UNSURE ? UNSURE : q.text;
  }
  if (raw === null || raw === undefined) return '';
  if (isUpload(raw) || (Array.isArray(raw) && raw.some(isUpload))) return UNSURE;
  return goJson(raw);
}

/** Whether a text is one JSON value (is.JSON); UNSURE when it repeats an object key (Go's JSON versions differ there). */
export function jsonSyntax(text: string): Maybe<boolean> {
  try {
    JSON.parse(text);
  } catch {
    return false;
  }
  return hasDuplicateKeys(text) ? UNSURE : true;
}

/** Whether a JSON text holds a number beyond float64 (PocketBase stores such text, then calls it invalid). */
function hasHugeNumber(text: string): Maybe<boolean> {
  let found = false;
  try {
    JSON.parse(text, (_k, v) => {
      if (typeof v === 'number' && !Number.isFinite(v)) found = true;
      return v;
    });
  } catch {
    return UNSURE; // too deep to walk here
  }
  return found;
}

/** Whether a valid JSON text has an object with a repeated member name (after unescaping). */
export function hasDuplicateKeys(text: string): boolean {
  if (!text.includes('{')) return false;
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return true;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] !== null && stack.length > 0;
    }
  }
  return false;
}

/**
 * GeoPoint.Scan: a string is decoded as JSON (members in order, unknown ones ignored, exact-case names,
 * decoding stopping at the first bad member), anything else is encoded and then decoded the same way
 * (a Go map encodes in no particular order, so a bad member there leaves the result uncertain).
 */
function geoPoint(raw: unknown): Maybe<Geo> {
  const p: Geo = { lon: 0, lat: 0 };
  if (raw === null || raw === undefined) return p;
  let obj: unknown = raw;
  let ordered = false;
  if (typeof raw === 'string') {
    if (raw === '') return p;
    if (hasLoneSurrogate(raw)) return UNSURE;
    try {
      obj = JSON.parse(raw);
    } catch {
      return raw.replace(/^[ \t\n\r]*/, '').startsWith('{') ? UNSURE : p;
    }
    if (obj && typeof obj === 'object' && !Array.isArray(obj) && hasDuplicateKeys(raw)) return UNSURE;
    ordered = true;
  }
  if (isUpload(obj)) return UNSURE;
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return p;
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    if (k !== 'lon' && k !== 'lat') continue;
    if (v === null) { p[k] = 0; continue; }
    if (typeof v === 'number' && Number.isFinite(v)) { p[k] = v; continue; }
    if (!ordered) return UNSURE;
    return p; // decoding stops here
  }
  return p;
}

const err = (code: string, message: string, params?: Record<string, unknown>): FieldError => (params ? { code, message, params } : { code, message });

/** What ValidateValue needs beyond the value: the record's files before this write, relation lookups, create or update. */
export interface FieldContext {
  oldFiles: string[];
  isNew: boolean;
  relationExists(f: PbField, ids: string[]): boolean;
}

/** ValidateValue of one field on its stored value. */
export function validateField(f: PbField, v: Stored, ctx: FieldContext): Verdict {
  if (v === UNSURE) return UNSURE;
  const required = f.required === true;
  switch (f.type) {
    case 'text': {
      if (typeof v !== 'string') return UNSURE;
      if (f.primaryKey) return UNSURE; // ids: PocketBase (uniqueness and reserved names come first)
      // an empty value gets its autogenerated one before validation (valid by the field's settings)
      if (v === '' && ctx.isNew && typeof f.autogeneratePattern === 'string' && f.autogeneratePattern !== '') return null;
      if (v === '') return required ? REQUIRED : null;
      const len = runeLength(v);
      const min = num(f, 'min');
      if (min > 0 && len < min) return err('validation_min_text_constraint', `Must be at least ${min} character(s).`, { min });
      const max = num(f, 'max') || 5000;
      if (len > max) return err('validation_max_text_constraint', `Must be no more than ${max} character(s).`, { max });
      if (typeof f.pattern === 'string' && f.pattern) {
        const m = matchPattern(f.pattern, v);
        if (m === UNSURE) return UNSURE;
        if (!m) return err('validation_invalid_format', 'Invalid value format.');
      }
      return null;
    }
    case 'editor': {
      if (typeof v !== 'string') return UNSURE;
      if (required && v === '') return REQUIRED;
      const maxSize = num(f, 'maxSize') || 5 << 20;
      if (Buffer.byteLength(v) > maxSize) return err('validation_content_size_limit', `The maximum allowed content size is ${maxSize} bytes.`, { maxSize });
      return null;
    }
    case 'email': case 'url': {
      if (typeof v !== 'string') return UNSURE;
      if (v === '') return required ? REQUIRED : null;
      return f.type === 'email' ? checkEmail(f, v) : checkUrl(f, v);
    }
    case 'number': {
      if (typeof v !== 'number') return UNSURE;
      if (!Number.isFinite(v)) return err('validation_not_a_number', 'The submitted number is not properly formatted.');
      if (v === 0) return required ? REQUIRED : null;
      if (f.onlyInt) {
        // Go's v != float64(int64(v)): past int64's range the conversion gives a bound (which one depends
        // on the CPU), so only -2^63 survives, and 2^63 is unsure
        if (v === 2 ** 63) return UNSURE;
        if (!Number.isInteger(v) || (Math.abs(v) >= 2 ** 63 && v !== -(2 ** 63))) return err('validation_only_int_constraint', 'Decimal numbers are not allowed.');
      }
      if (typeof f.min === 'number' && v < f.min) return err('validation_min_number_constraint', `Must be greater or equal than ${goFloatV(f.min)}.`, { min: f.min });
      if (typeof f.max === 'number' && v > f.max) return err('validation_max_number_constraint', `Must be less or equal than ${goFloatV(f.max)}.`, { max: f.max });
      return null;
    }
    case 'bool':
      if (typeof v !== 'boolean') return UNSURE;
      return required && !v ? REQUIRED : null;
    case 'select': case 'relation': {
      const list = toUniqueStrings(v);
      if (list === UNSURE) return UNSURE;
      if (list.length === 0) return required ? REQUIRED : null;
      if (f.type === 'relation' && num(f, 'minSelect') > 0 && list.length < num(f, 'minSelect')) {
        return err('validation_not_enough_values', `Select at least ${num(f, 'minSelect')}.`, { minSelect: num(f, 'minSelect') });
      }
      const maxSelect = Math.max(num(f, 'maxSelect'), 1);
      if (list.length > maxSelect) return err('validation_too_many_values', `Select no more than ${maxSelect}.`, { maxSelect });
      if (f.type === 'select') {
        const values = Array.isArray(f.values) ? (f.values as string[]) : [];
        for (const x of list) if (!values.includes(x)) return err('validation_invalid_value', sentenize(`Invalid value ${x}`), { value: x });
        return null;
      }
      // existence is PocketBase's check; answer only when the replica holds every id
      return ctx.relationExists(f, list) ? null : UNSURE;
    }
    case 'json': {
      if (typeof v !== 'string') return UNSURE;
      const maxSize = num(f, 'maxSize') || 1 << 20;
      if (Buffer.byteLength(v) > maxSize) return err('validation_json_size_limit', `The maximum allowed JSON size is ${maxSize} bytes.`, { maxSize });
      if (v !== '') {
        const valid = jsonSyntax(v);
        if (valid === UNSURE) return UNSURE;
        const huge = valid ? hasHugeNumber(v) : false;
        if (huge === UNSURE) return UNSURE;
        if (!valid || huge) return err('validation_invalid_json', 'Must be a valid json value.');
      }
      if (required && ['null', '""', '[]', '{}', ''].includes(v.trim())) return REQUIRED;
      return null;
    }
    case 'date': {
      const d = v as ParsedDate;
      if (d.zero) return required ? REQUIRED : null;
      for (const [bound, code, word] of [['min', 'validation_min_greater_equal_than_required', 'less'], ['max', 'validation_max_less_equal_than_required', 'greater']] as const) {
        const b = f[bound];
        if (typeof b !== 'string' || b === '') continue;
        const parsed = parseDate(b);
        if (parsed === UNSURE) return UNSURE;
        if (parsed.zero) continue;
        const c = compareDates(d, parsed);
        if (bound === 'min' ? c < 0 : c > 0) {
          return err(code, `Must be no ${word} than ${parsed.goString}.`, { threshold: parsed.rfc3339 });
        }
      }
      return null;
    }
    case 'geoPoint': {
      const p = v as Geo;
      if (p.lat === 0 && p.lon === 0) return required ? REQUIRED : null;
      if (p.lat < -90 || p.lat > 90) return err('validation_invalid_latitude', 'Latitude must be between -90 and 90 degrees.');
      if (p.lon < -180 || p.lon > 180) return err('validation_invalid_longitude', 'Longitude must be between -180 and 180 degrees.');
      return null;
    }
    case 'password': {
      const p = v as Password;
      if (required && p.hash === '') return REQUIRED;
      if (p.plain === '') return null;
      const len = runeLength(p.plain);
      const min = num(f, 'min');
      if (len < min) return err('validation_min_text_constraint', `Must be at least ${min} character(s).`);
      const max = num(f, 'max') > 0 ? num(f, 'max') : 71;
      if (len > max) return err('validation_max_text_constraint', `Must be less than ${max} character(s).`);
      if (typeof f.pattern === 'string' && f.pattern) {
        const m = matchPattern(f.pattern, p.plain);
        if (m === UNSURE) return UNSURE;
        if (!m) return err('validation_invalid_format', 'Invalid value format.');
      }
      return null;
    }
    case 'file':
      return validateFiles(f, v, ctx.oldFiles);
    case 'autodate':
      return null;
    default:
      return UNSURE;
  }
}

function validateFiles(f: PbField, v: unknown, oldFiles: string[]): Verdict {
  const files = asList(v);
  if (files === UNSURE) return UNSURE;
  if (files.length === 0) return f.required ? REQUIRED : null;
  const added = files.filter((x): x is string => typeof x === 'string' && !oldFiles.includes(x));
  if (added.length) {
    const invalidFiles = added.map((s) => s.slice(0, 250));
    return err('validation_invalid_file', `Invalid new files: ${goStringSlice(invalidFiles)}.`, { invalidFiles });
  }
  const maxSelect = Math.max(num(f, 'maxSelect'), 1);
  if (files.length > maxSelect) return err('validation_too_many_files', `The maximum allowed files is ${maxSelect}.`, { maxSelect });
  const maxSize = num(f, 'maxSize') > 0 ? num(f, 'maxSize') : 5 << 20;
  for (const u of files) {
    if (typeof u === 'string') continue;
    if (u.size > maxSize) {
      return err('validation_file_size_limit', `Failed to upload ${u.originalName.slice(0, 300)} - the maximum allowed file size is ${maxSize} bytes.`, { file: u.originalName.slice(0, 300), maxSize });
    }
    const types = Array.isArray(f.mimeTypes) ? (f.mimeTypes as string[]) : [];
    if (types.length && u.mimeVerdict(types) === false) {
      return err('validation_invalid_mime_type', `${JSON.stringify(u.name)} mime type must be one of: ${types.join(', ')}.`);
    }
    if (types.length && u.mimeVerdict(types) === UNSURE) return UNSURE;
  }
  return null;
}

/** Go's %v of a []string. */
function goStringSlice(list: string[]): string {
  return `[${list.join(' ')}]`;
}

// --- what rules see --------------------------------------------------------------------------------

/**
 * A Go value as the rule resolver meets it in `@request.body` (record.Get of a field, or a raw body
 * value): JSON-like values, plus the Go types whose string form or traversal differ.
 */
export type GoValue =
  | null | string | number | boolean | GoValue[] | { [k: string]: GoValue }
  | { $strings: string[] } | { $jsonraw: string } | { $date: string } | { $geo: Geo };

/** record.Get(field) after the body was applied, for `@request.body.<field>`; UNSURE when not reproduced. */
export function bodyValue(f: PbField, v: Stored): Maybe<GoValue> {
  if (v === UNSURE) return UNSURE;
  switch (f.type) {
    case 'text': case 'email': case 'url': case 'editor': case 'number': case 'bool':
      return v as string | number | boolean;
    case 'select': case 'relation':
      return Array.isArray(v) ? { $strings: v as string[] } : (v as string);
    case 'json': return { $jsonraw: v as string };
    case 'date': case 'autodate': return { $date: (v as ParsedDate).pb ?? '' };
    case 'geoPoint': return { $geo: v as Geo };
    case 'password': return (v as Password).plain;
    default: return UNSURE; // files: uploads get random names
  }
}

/** The column value of a would-be record (DBExport, as the create rule's dummy row holds it). */
export function dbValue(f: PbField, v: Stored): Maybe<unknown> {
  if (v === UNSURE) return UNSURE;
  switch (f.type) {
    case 'text': case 'email': case 'url': case 'editor': return v;
    case 'number': return typeof v === 'number' && Number.isFinite(v) ? v : UNSURE;
    case 'bool': return v;
    case 'select': case 'relation': {
      if (!isMultiple(f)) return typeof v === 'string' ? v : UNSURE;
      const list = toUniqueStrings(v);
      return list === UNSURE ? UNSURE : goJson(list);
    }
    case 'file': {
      const list = asList(v);
      if (list === UNSURE || list.some(isUpload)) return UNSURE;
      if (isMultiple(f)) return goJson(list);
      return list.length ? list[list.length - 1] : '';
    }
    case 'json': return v === '' ? null : v;
    case 'date': case 'autodate': return (v as ParsedDate).pb ?? UNSURE;
    case 'geoPoint': return geoJson(v as Geo);
    default: return UNSURE; // password: a bcrypt hash
  }
}

/** GeoPoint's JSON (struct order: lon, lat). */
export function geoJson(p: Geo): Maybe<string> {
  const lon = goJson(p.lon);
  const lat = goJson(p.lat);
  return lon === UNSURE || lat === UNSURE ? UNSURE : `{"lon":${lon},"lat":${lat}}`;
}
