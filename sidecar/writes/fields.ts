// One PocketBase field type each: how a submitted value is stored (setters and `field+`/`+field`/
// `field-` modifiers, as core/field_*.go do) and how the stored value is validated, with PocketBase's
// error codes, messages and params. UNSURE means "PocketBase decides": we never guess a rejection.
import type { PbField } from '../../replica/schema.js';
import { goFloatV, goJsonSize, runeLength, toBool, toFloat, toStr, toUniqueStrings, UNSURE, type Maybe } from './cast.js';
import { checkEmail, checkUrl, matchPattern, parseDate, type ParsedDate } from './formats.js';
import type { Upload } from './uploads.js';

export interface FieldError { code: string; message: string; params?: Record<string, unknown> }
export type Verdict = FieldError | null | typeof UNSURE;

export const REQUIRED: FieldError = { code: 'validation_required', message: 'Cannot be blank.' };

export type FileItem = string | Upload;

/** A stored value (Go's record.GetRaw) in our model; UNSURE once a setter could not be reproduced. */
export type Stored = Maybe<unknown>;

const num = (f: PbField, k: string): number => (typeof f[k] === 'number' ? (f[k] as number) : 0);
const multiple = (f: PbField) => num(f, 'maxSelect') > 1;

/** The zero value of a field on a new record. */
export function zeroValue(f: PbField): unknown {
  switch (f.type) {
    case 'number': return 0;
    case 'bool': return false;
    case 'select': case 'relation': return multiple(f) ? [] : '';
    case 'file': return multiple(f) ? [] : '';
    case 'json': return 'null';
    case 'geoPoint': return { lon: 0, lat: 0 };
    case 'password': return { plain: '', hash: '' };
    case 'date': return { zero: true } as ParsedDate;
    default: return '';
  }
}

/** The value the replica holds, in the stored model. */
export function fromReplica(f: PbField, v: unknown): Stored {
  switch (f.type) {
    case 'json': return v === undefined ? UNSURE : JSON.stringify(v ?? null);
    case 'date': return typeof v === 'string' ? parseDate(v) : UNSURE;
    case 'password': return { plain: '', hash: 'x' };
    default: return v === undefined ? UNSURE : v;
  }
}

function asList(v: unknown): Maybe<FileItem[]> {
  if (v === UNSURE) return UNSURE;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || isUpload(x))) return dedupeFiles(v as FileItem[]);
  if (isUpload(v)) return [v];
  const s = toUniqueStrings(v);
  return s === UNSURE ? UNSURE : s;
}
const isUpload = (x: unknown): x is Upload => typeof x === 'object' && x !== null && (x as Upload).kind === 'upload';
const fileName = (x: FileItem) => (typeof x === 'string' ? x : x.name);
function dedupeFiles(list: FileItem[]): FileItem[] {
  const seen = new Set<string>();
  return list.filter((x) => !seen.has(fileName(x)) && (seen.add(fileName(x)), true));
}
function normalizeList<T>(f: PbField, list: T[]): T[] | T | '' {
  if (multiple(f)) return list;
  return list.length ? list[list.length - 1] : '';
}

/** Applies one body key (plain or modifier) to the current stored value; null: not this field's key. */
export function applyKey(f: PbField, key: string, current: Stored, raw: unknown): Stored | null {
  const n = f.name;
  const kind = key === n ? 'set' : key === `${n}+` ? 'append' : key === `+${n}` ? 'prepend' : key === `${n}-` ? 'subtract' : null;
  if (!kind) return null;
  switch (f.type) {
    case 'text': case 'email': case 'url': case 'editor':
      // text's "name:autogenerate" is left to PocketBase (handled by the caller as unknown key)
      return kind === 'set' ? toStr(raw) : null;
    case 'bool':
      return kind === 'set' ? toBool(raw) : null;
    case 'number': {
      if (kind === 'prepend') return null;
      const v = toFloat(raw);
      if (v === UNSURE) return UNSURE;
      if (kind === 'set') return v;
      if (current === UNSURE || typeof current !== 'number') return UNSURE;
      return kind === 'append' ? current + v : kind === 'subtract' ? current - v : null;
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
      return kind === 'set' ? jsonRaw(raw) : null;
    case 'date':
      if (kind !== 'set') return null;
      if (raw === null || raw === undefined || raw === '') return { zero: true };
      return typeof raw === 'string' ? parseDate(raw) : UNSURE;
    case 'geoPoint':
      if (kind !== 'set') return null;
      if (raw && typeof raw === 'object' && !Array.isArray(raw) && Object.keys(raw).every((k) => k === 'lon' || k === 'lat')) {
        const { lon = 0, lat = 0 } = raw as { lon?: unknown; lat?: unknown };
        return typeof lon === 'number' && typeof lat === 'number' ? { lon, lat } : UNSURE;
      }
      return UNSURE;
    case 'password': {
      if (kind !== 'set') return null;
      const plain = toStr(raw);
      return plain === UNSURE ? UNSURE : { plain, hash: plain === '' ? '' : 'x' };
    }
    case 'autodate':
      return kind === 'set' ? current : null; // not settable: PocketBase ignores the key
    default:
      return UNSURE;
  }
}

/** JSONField.PrepareValue: the raw JSON text PocketBase stores. */
function jsonRaw(raw: unknown): Maybe<string> {
  if (typeof raw === 'string') {
    if (raw === '') return '""';
    if (raw === 'null' || raw === 'true' || raw === 'false') return raw;
    if (/^[-0-9"[{]/.test(raw)) {
      try {
        JSON.parse(raw);
        return raw;
      } catch { /* quoted below */ }
    }
    // strconv.Quote equals JSON for printable ASCII without HTML characters
    return /^[\x20-\x7e]*$/.test(raw) && !/[<>&]/.test(raw) ? JSON.stringify(raw) : UNSURE;
  }
  const size = goJsonSize(raw);
  if (size === UNSURE) return UNSURE;
  return JSON.stringify(raw) + ' '.repeat(Math.max(0, size - Buffer.byteLength(JSON.stringify(raw))));
}

const err = (code: string, message: string, params?: Record<string, unknown>): FieldError => (params ? { code, message, params } : { code, message });

/** ValidateValue of one field on its stored value. `oldFiles`: the record's files before this write. */
export function validateField(f: PbField, v: Stored, ctx: { oldFiles: string[]; relationExists(f: PbField, ids: string[]): boolean }): Verdict {
  if (v === UNSURE) return UNSURE;
  const required = f.required === true;
  switch (f.type) {
    case 'text': {
      if (typeof v !== 'string') return UNSURE;
      if (f.primaryKey) return UNSURE; // ids: PocketBase (uniqueness and reserved names come first)
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
      if (typeof v !== 'number' || !Number.isFinite(v)) return UNSURE;
      if (v === 0) return required ? REQUIRED : null;
      if (f.onlyInt && !Number.isInteger(v)) return err('validation_only_int_constraint', 'Decimal numbers are not allowed.');
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
        for (const x of list) if (!values.includes(x)) return err('validation_invalid_value', `Invalid value ${x}.`, { value: x });
        return null;
      }
      // existence is PocketBase's check; answer only when the replica holds every id
      return ctx.relationExists(f, list) ? null : UNSURE;
    }
    case 'json': {
      if (typeof v !== 'string') return UNSURE;
      const maxSize = num(f, 'maxSize') || 1 << 20;
      if (Buffer.byteLength(v) > maxSize) return err('validation_json_size_limit', `The maximum allowed JSON size is ${maxSize} bytes.`, { maxSize });
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
        if (parsed === UNSURE || parsed.zero) return UNSURE;
        if (bound === 'min' ? d.ms! < parsed.ms! : d.ms! > parsed.ms!) {
          return err(code, `Must be no ${word} than ${parsed.goString}.`, { threshold: parsed.rfc3339 });
        }
      }
      return null;
    }
    case 'geoPoint': {
      const p = v as { lon: number; lat: number };
      if (p.lat === 0 && p.lon === 0) return required ? REQUIRED : null;
      if (p.lat < -90 || p.lat > 90) return err('validation_invalid_latitude', 'Latitude must be between -90 and 90 degrees.');
      if (p.lon < -180 || p.lon > 180) return err('validation_invalid_longitude', 'Longitude must be between -180 and 180 degrees.');
      return null;
    }
    case 'password': {
      const p = v as { plain: string; hash: string };
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
