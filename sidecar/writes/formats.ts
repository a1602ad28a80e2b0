// Formats PocketBase checks with Go libraries (RE2 patterns, govalidator's email and URL, cast's date
// layouts). We answer only where the outcome is certain and return UNSURE otherwise, so a value
// PocketBase would accept is never rejected here.
import type { PbField } from '../../replica/schema.js';
import { UNSURE, type Maybe } from './cast.js';

const patternCache = new Map<string, RegExp | null>();

/** RE2 and JS regexps agree on ASCII text for the common syntax; anything else is PocketBase's call. */
export function matchPattern(pattern: string, value: string): Maybe<boolean> {
  let re = patternCache.get(pattern);
  if (re === undefined) {
    re = null;
    if (!/\(\?|\\[pPzAQECXbB]|\[:|\\[0-9]|\\k/.test(pattern)) {
      try {
        re = new RegExp(pattern);
      } catch {
        re = null;
      }
    }
    if (patternCache.size > 1000) patternCache.clear();
    patternCache.set(pattern, re);
  }
  if (!re) return UNSURE;
  if (re.test(value)) return true;
  // `.`, `\s` and `$` differ on line breaks and Unicode spaces: only plain ASCII is certain.
  return /^[\x20-\x7e\t\n]*$/.test(value) ? false : UNSURE;
}

const list = (f: PbField, k: string): string[] => (Array.isArray(f[k]) ? (f[k] as string[]) : []);

const EMAIL_OK = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z])?$/;

export function checkEmail(f: PbField, v: string) {
  let valid: boolean | null = null;
  if (EMAIL_OK.test(v)) valid = true;
  else if (!v.includes('@')) valid = false;
  else if (!v.includes('"')) {
    const domain = v.slice(v.lastIndexOf('@') + 1);
    if (!domain.includes('.') || /\s/.test(v) || v.startsWith('@')) valid = false;
  }
  if (valid === null) return UNSURE;
  if (!valid) return { code: 'validation_is_email', message: 'Must be a valid email address.' };
  const domain = v.slice(v.lastIndexOf('@') + 1);
  const only = list(f, 'onlyDomains');
  const except = list(f, 'exceptDomains');
  if ((only.length && !only.includes(domain)) || (except.length && except.includes(domain))) {
    return { code: 'validation_email_domain_not_allowed', message: 'Email domain is not allowed.' };
  }
  return null;
}

const URL_OK = /^https?:\/\/((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,})(:\d{1,5})?(\/[A-Za-z0-9._~\-/%]*)?(\?[A-Za-z0-9._~\-=&%]*)?$/;

export function checkUrl(f: PbField, v: string) {
  const invalid = { code: 'validation_invalid_url', message: 'Must be a valid url.' };
  // govalidator.IsURL: too short, leading dot, too long, or no host at all
  if (v.length <= 3 || v.startsWith('.') || [...v].length >= 2083) return invalid;
  if (!v.includes(':') && !v.includes('.')) return invalid;
  const m = URL_OK.exec(v);
  if (!m) return UNSURE;
  const host = m[1] + (m[2] ?? '');
  const only = list(f, 'onlyDomains');
  const except = list(f, 'exceptDomains');
  if ((only.length && !only.includes(host)) || (except.length && except.includes(host))) {
    return { code: 'validation_url_domain_not_allowed', message: 'Url domain is not allowed.' };
  }
  return null;
}

export interface ParsedDate {
  zero: boolean;
  ms?: number;
  /** Go's time.Time String() in UTC, as printed in error messages. */
  goString?: string;
  /** Go's JSON of time.Time (RFC 3339 with trimmed nanoseconds). */
  rfc3339?: string;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?)?$/;

/** Dates in the layouts PocketBase and cast parse the same way; other strings are PocketBase's call. */
export function parseDate(s: string): Maybe<ParsedDate> {
  if (s === '') return { zero: true };
  const m = DATE.exec(s);
  if (!m) return UNSURE;
  const [, y, mo, d, h = '00', mi = '00', se = '00', frac = '', zone] = m;
  if (h !== '00' || mi !== '00' || se !== '00' || frac) {
    if (zone === undefined) return UNSURE; // cast's zone-less layouts: leave to PocketBase
  }
  const iso = `${y}-${mo}-${d}T${h}:${mi}:${se}${frac ? '.' + frac.slice(0, 3).padEnd(3, '0') : ''}${zone ?? 'Z'}`;
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return UNSURE;
  const t = new Date(ms);
  if (t.getUTCFullYear() !== Number(y) && !zone) return UNSURE;
  const nanos = frac ? frac.padEnd(9, '0').replace(/0+$/, '') : '';
  if (zone && zone !== 'Z' && frac) return UNSURE;
  const base = t.toISOString().slice(0, 19);
  return {
    zero: false,
    ms,
    goString: `${base.replace('T', ' ')}${nanos ? '.' + nanos : ''} +0000 UTC`,
    rfc3339: `${base}${nanos ? '.' + nanos : ''}Z`,
  };
}
