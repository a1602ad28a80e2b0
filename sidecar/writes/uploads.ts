// An uploaded file as the validator sees it: bytes kept in memory (bounded by the field's limits),
// the name PocketBase would store, and the content type decided from the bytes (magic numbers), never
// from the client's claim. The table covers types whose signature PocketBase's detector also needs.
import { randomBytes } from 'node:crypto';
import { UNSURE, type Maybe } from './cast.js';

export interface Upload {
  kind: 'upload';
  field: string;
  originalName: string;
  /** The normalized stored name, as filesystem.NewFileFromBytes builds it (random suffix). */
  name: string;
  size: number;
  /** The first bytes (for type detection) and, while within limits, the whole content. */
  head: Buffer;
  chunks: Buffer[] | null;
  clientType: string;
  mimeVerdict(allowed: string[]): Maybe<boolean>;
}

interface Signature { mime: string; family: string[]; test(b: Buffer): boolean }

const SIGNATURES: Signature[] = [
  { mime: 'image/png', family: ['image/png', 'image/apng', 'image/vnd.mozilla.apng'], test: (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) },
  { mime: 'image/jpeg', family: ['image/jpeg', 'image/jpg', 'image/pjpeg'], test: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff },
  { mime: 'image/gif', family: ['image/gif'], test: (b) => /^GIF8[79]a/.test(b.subarray(0, 6).toString('latin1')) },
  { mime: 'image/webp', family: ['image/webp'], test: (b) => b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP' },
  { mime: 'application/pdf', family: ['application/pdf', 'application/x-pdf'], test: (b) => b.subarray(0, 5).toString('latin1') === '%PDF-' },
  { mime: 'image/bmp', family: ['image/bmp', 'image/x-bmp', 'image/x-ms-bmp'], test: (b) => b[0] === 0x42 && b[1] === 0x4d },
];

/** Types identified only by their signature: bytes without it cannot be detected as one of them. */
const SIGNATURE_ONLY = new Set(SIGNATURES.flatMap((s) => s.family));

export function detect(head: Buffer): Signature | null {
  return SIGNATURES.find((s) => s.test(head)) ?? null;
}

/** true: PocketBase's detector accepts it; false: certainly refuses; UNSURE: its call. */
export function mimeVerdict(head: Buffer, allowed: string[]): Maybe<boolean> {
  const sig = detect(head);
  const lower = allowed.map((t) => t.toLowerCase());
  if (lower.includes('application/octet-stream')) return UNSURE;
  if (sig) {
    if (sig.family.some((t) => lower.includes(t))) return sig.mime === 'image/bmp' ? UNSURE : lower.includes(sig.mime) ? true : UNSURE;
    // a zip or script could still be read as something else, but these signatures are unambiguous
    return false;
  }
  if (lower.every((t) => SIGNATURE_ONLY.has(t))) {
    // a PDF may start after a few junk bytes for some readers; keep that case for PocketBase
    return head.includes('%PDF-') ? UNSURE : false;
  }
  return UNSURE;
}

/** filesystem.NewFileFromMultipart's name: snake-cased base, a random suffix, the original extension. */
export function storedName(original: string): string {
  const dot = original.lastIndexOf('.');
  const ext = dot > 0 ? original.slice(dot).replace(/[^\w.*\-+=#]+/g, '').toLowerCase() : '';
  let base = (dot > 0 ? original.slice(0, dot) : original).replace(/[^\w]+/g, '_').replace(/^_+|_+$/g, '').toLowerCase();
  if (base.length < 3) base = base ? base + '_' + randomToken(3) : randomToken(10);
  return `${base.slice(0, 100)}_${randomToken(10)}${ext.slice(0, 20)}`;
}

function randomToken(n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(n);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

/** A safe client-visible file name: path parts, control characters and quotes removed. */
export function sanitizeFilename(name: string): string {
  const last = name.split(/[\\/]/).pop() ?? '';
  const clean = last.replace(/[\x00-\x1f\x7f"]/g, '').trim().slice(0, 255);
  return clean || 'file';
}

export function makeUpload(field: string, originalName: string, clientType: string, head: Buffer, size: number, chunks: Buffer[] | null): Upload {
  const safe = sanitizeFilename(originalName);
  return {
    kind: 'upload', field, originalName: safe, name: storedName(safe), size, head, chunks, clientType,
    mimeVerdict: (allowed) => mimeVerdict(head, allowed),
  };
}
