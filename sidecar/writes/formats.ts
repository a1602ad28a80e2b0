// Formats PocketBase checks with Go libraries (RE2 patterns, govalidator's email and URL, cast's date
// layouts). We answer only where the outcome is certain and return UNSURE otherwise, so a value
// PocketBase would accept is never rejected here.
import type { PbField } from '../../replica/schema.js';
import { UNSURE, type Maybe } from './cast.js';

const patternCache = new Map<string, { re: RegExp; unicode: RegExp | null } | null>();

/**
 * RE2 and JS regexps agree on ASCII text for the common syntax. On other text too when the pattern
 * avoids what treats line breaks or Unicode differently (`.`, `\s`, `\b` and their kin), compiled as
 * code points; anything else is PocketBase's call.
 */
export function matchPattern(pattern: string, value: string): Maybe<boolean> {
  let hit = patternCache.get(pattern);
  if (hit === undefined) {
    hit = null;
    if (!/\(\?|\\[pPzAQECXbB]|\[:|\\[0-9]|\\k/.test(pattern)) {
      try {
        const re = new RegExp(pattern);
        let unicode: RegExp | null = null;
        if (!/\.|\\[sSbBpPzZ]/.test(pattern)) {
          try {
            unicode = new RegExp(pattern, 'u');
          } catch {
            unicode = null;
          }
        }
        hit = { re, unicode };
      } catch {
        hit = null;
      }
    }
    if (patternCache.size > 1000) patternCache.clear();
    patternCache.set(pattern, hit);
  }
  if (!hit) return UNSURE;
  if (/^[\x20-\x7e\t\n]*$/.test(value)) return hit.re.test(value);
  if (hit.unicode) return hit.unicode.test(value);
  // a match is no rejection (PocketBase decides); a miss may be a difference of engines
  return hit.re.test(value) ? true : UNSURE;
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
  /** Unix seconds and nanoseconds of the instant (when not zero). */
  sec?: number;
  nsec?: number;
  /** Go's time.Time String() in UTC, as printed in error messages. */
  goString?: string;
  /** Go's JSON of time.Time (RFC 3339 with trimmed nanoseconds). */
  rfc3339?: string;
  /** types.DateTime String(): "2006-01-02 15:04:05.000Z" (what PocketBase stores and rules compare). */
  pb?: string;
}

export const ZERO_DATE: ParsedDate = { zero: true, pb: '' };

/** Go's zero time.Time (0001-01-01 00:00:00 UTC) in Unix seconds. */
const GO_ZERO_SEC = -62135596800;

type Tok = 'Y' | 'M' | 'D' | 'h' | 'm' | 's' | 'f3' | 'f9' | 'tzZc' | 'tzZ' | 'tzc' | 'tz' | 'name' | { lit: string };

const L = (s: string): Tok => ({ lit: s });
const YMD: Tok[] = ['Y', L('-'), 'M', L('-'), 'D'];
const HMS: Tok[] = ['h', L(':'), 'm', L(':'), 's'];
/**
 * The layouts of DateTime.Scan that can match a string starting with "dddd-", in the order they are
 * tried: DefaultDateLayout (time.Parse), then cast.StringToDate's (with UTC as the default location).
 */
const ISO_LAYOUTS: Tok[][] = [
  [...YMD, L(' '), ...HMS, 'f3', L('Z')], // 2006-01-02 15:04:05.000Z
  [...YMD], // 2006-01-02
  [...YMD, L('T'), ...HMS, 'tzZc'], // RFC3339
  [...YMD, L('T'), ...HMS], // 2006-01-02T15:04:05
  [...YMD, L(' '), ...HMS, 'f9', L(' '), 'tz', L(' '), 'name'], // Time.String()
  [...YMD, L('T'), ...HMS, 'tz'], // 2006-01-02T15:04:05-0700
  [...YMD, L(' '), ...HMS, 'tzZ'], // 2006-01-02 15:04:05Z0700
  [...YMD, L(' '), ...HMS], // 2006-01-02 15:04:05
  [...YMD, L(' '), ...HMS, 'tzZc'], // 2006-01-02 15:04:05Z07:00
  [...YMD, L(' '), ...HMS, L(' '), 'tzc'], // 2006-01-02 15:04:05 -07:00
  [...YMD, L(' '), ...HMS, L(' '), 'tz'], // 2006-01-02 15:04:05 -0700
];

const digit = (s: string, i: number) => i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57;

/** time.getnum: one or two digits (exactly two when fixed). */
function getnum(s: string, fixed: boolean): [number, string] | null {
  if (!digit(s, 0)) return null;
  if (!digit(s, 1)) return fixed ? null : [Number(s[0]), s.slice(1)];
  return [Number(s.slice(0, 2)), s.slice(2)];
}

/** time.skip: a layout literal; a space matches any run of spaces (or the end of the value). */
function skip(value: string, prefix: string): string | null {
  while (prefix.length > 0) {
    if (prefix[0] === ' ') {
      if (value.length > 0 && value[0] !== ' ') return null;
      prefix = prefix.replace(/^ +/, '');
      value = value.replace(/^ +/, '');
      continue;
    }
    if (value.length === 0 || value[0] !== prefix[0]) return null;
    prefix = prefix.slice(1);
    value = value.slice(1);
  }
  return value;
}

/** Nanoseconds from a fraction ("." or "," then digits; only the first nine count). */
function nanos(frac: string): number {
  return Number(frac.slice(0, 9).padEnd(9, '0'));
}

type Parse = { y: number; mo: number; d: number; h: number; mi: number; s: number; ns: number; offset: number } | null | typeof UNSURE;

/** time.Parse of one layout (only the elements above); null when Go fails, UNSURE when unsure. */
function parseLayout(layout: Tok[], value: string): Parse {
  let y = 0, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ns = 0, offset = 0;
  for (let i = 0; i < layout.length; i++) {
    const t = layout[i];
    if (typeof t === 'object') {
      const rest = skip(value, t.lit);
      if (rest === null) return null;
      value = rest;
      continue;
    }
    switch (t) {
      case 'Y': {
        if (value.length < 4 || !digit(value, 0)) return null;
        if (!/^\d{4}$/.test(value.slice(0, 4))) return null;
        y = Number(value.slice(0, 4));
        value = value.slice(4);
        break;
      }
      case 'M': case 'D': case 'h': case 'm': case 's': {
        const r = getnum(value, t !== 'h');
        if (!r) return null;
        const [n, rest] = r;
        value = rest;
        if (t === 'M') { if (n <= 0 || n > 12) return null; mo = n; }
        else if (t === 'D') d = n;
        else if (t === 'h') { if (n >= 24) return null; h = n; }
        else if (t === 'm') { if (n >= 60) return null; mi = n; }
        else {
          if (n >= 60) return null;
          sec = n;
          const next = layout[i + 1];
          if (value.length >= 2 && (value[0] === '.' || value[0] === ',') && digit(value, 1) && next !== 'f3' && next !== 'f9') {
            let k = 2;
            while (digit(value, k)) k++;
            ns = nanos(value.slice(1, k));
            value = value.slice(k);
          }
        }
        break;
      }
      case 'f3': {
        if (value.length < 4) return null;
        if (value[0] !== '.' && value[0] !== ',') return null;
        const f = value.slice(1, 4);
        if (!/^\d{3}$/.test(f)) return /^[0-9+-]{3}$/.test(f) ? UNSURE : null;
        ns = nanos(f);
        value = value.slice(4);
        break;
      }
      case 'f9': {
        if (value.length < 2 || (value[0] !== '.' && value[0] !== ',') || !digit(value, 1)) break;
        let k = 1;
        while (digit(value, k)) k++;
        ns = nanos(value.slice(1, k));
        value = value.slice(k);
        break;
      }
      case 'tzZc': case 'tzZ': case 'tzc': case 'tz': {
        if ((t === 'tzZc' || t === 'tzZ') && value[0] === 'Z') {
          value = value.slice(1);
          offset = 0;
          break;
        }
        let sign: string, hh: string, mm: string;
        if (t === 'tzZc' || t === 'tzc') {
          if (value.length < 6 || value[3] !== ':') return null;
          [sign, hh, mm, value] = [value[0], value.slice(1, 3), value.slice(4, 6), value.slice(6)];
        } else {
          if (value.length < 5) return null;
          [sign, hh, mm, value] = [value[0], value.slice(1, 3), value.slice(3, 5), value.slice(5)];
        }
        const a = getnum(hh, true);
        const b = getnum(mm, true);
        if (!a || !b || a[0] > 24 || b[0] > 60) return null;
        if (sign !== '+' && sign !== '-') return null;
        offset = (a[0] * 60 + b[0]) * 60 * (sign === '-' ? -1 : 1);
        break;
      }
      case 'name': {
        // "UTC" makes the time UTC whatever the numeric offset said; other names: PocketBase's call
        if (!value.startsWith('UTC')) return /^[A-Za-z+-]/.test(value) ? UNSURE : null;
        value = value.slice(3);
        offset = 0;
        break;
      }
    }
  }
  if (value.length > 0) return null; // extra text
  const dim = [31, (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  if (d < 1 || d > dim) return null;
  return { y, mo, d, h, mi, s: sec, ns, offset };
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

/** The date an instant (Unix seconds, nanoseconds) is, in PocketBase's forms; UNSURE outside years 1-9999. */
export function dateOf(sec: number, nsec: number): Maybe<ParsedDate> {
  if (sec === GO_ZERO_SEC && nsec === 0) return ZERO_DATE;
  const t = new Date(sec * 1000);
  const y = t.getUTCFullYear();
  if (!Number.isFinite(t.getTime()) || y < 1 || y > 9999) return UNSURE;
  const base = `${pad(y, 4)}-${pad(t.getUTCMonth() + 1, 2)}-${pad(t.getUTCDate(), 2)}`;
  const time = `${pad(t.getUTCHours(), 2)}:${pad(t.getUTCMinutes(), 2)}:${pad(t.getUTCSeconds(), 2)}`;
  const trimmed = nsec ? '.' + pad(nsec, 9).replace(/0+$/, '') : '';
  return {
    zero: false, sec, nsec,
    goString: `${base} ${time}${trimmed} +0000 UTC`,
    rfc3339: `${base}T${time}${trimmed}Z`,
    pb: `${base} ${time}.${pad(Math.floor(nsec / 1e6), 3)}Z`,
  };
}

/** Go's time values compared (-1, 0, 1). */
export function compareDates(a: ParsedDate, b: ParsedDate): number {
  const d = a.sec! - b.sec! || a.nsec! - b.nsec!;
  return d < 0 ? -1 : d > 0 ? 1 : 0;
}

/**
 * types.DateTime.Scan of a string, as PocketBase parses submitted dates (an unparseable one is the zero
 * date, no error). Strings in the ISO family ("dddd-...") are decided here exactly; so are strings no
 * layout can match at all. The rest (month names, clock-only forms) are PocketBase's call.
 */
export function parseDate(s: string): Maybe<ParsedDate> {
  if (s === '') return ZERO_DATE;
  if (/^\d{4}-/.test(s)) {
    for (const layout of ISO_LAYOUTS) {
      const p = parseLayout(layout, s);
      if (p === UNSURE) return UNSURE;
      if (!p) continue;
      const t = new Date(0);
      t.setUTCFullYear(p.y, p.mo - 1, p.d);
      t.setUTCHours(p.h, p.mi, p.s, 0);
      return dateOf(Math.round(t.getTime() / 1000) - p.offset, p.ns);
    }
    return ZERO_DATE;
  }
  // every other layout starts with a digit (RFC 822's "02 Jan", Kitchen's "3:04") or a letter (names)
  if (!/[0-9]/.test(s)) return ZERO_DATE;
  if (/^[0-9]/.test(s)) return /^\d\d |^\d\d?:/.test(s) ? UNSURE : ZERO_DATE;
  return /^[A-Za-z]/.test(s) ? UNSURE : ZERO_DATE;
}
