// Streams a multipart body through busboy: text fields become PocketBase's inferred values, files are
// kept in memory only while within their field's size limit (beyond it just counted), the whole body
// is cut off at the hard limit (BodyTooLarge, never buffered whole). Re-encodes a checked request as
// @jsonPayload plus the file parts, which PocketBase reads exactly like the original fields.
import busboy from 'busboy';
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream';
import type { PbCollection } from '../../replica/schema.js';
import { BodyTooLarge, ClientGone } from '../gate/body-limit.js';
import { makeUpload, type Upload } from './uploads.js';

export class MalformedBody extends Error {}

export interface ParsedMultipart {
  fields: Record<string, unknown>;
  uploads: Map<string, Upload[]>;
}

const HEAD = 4100;

/** tools/router inferValue: "true"/"false", minimal numbers, strings otherwise. */
export function inferValue(raw: string): unknown {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (raw !== '' && /^-?[0-9][0-9.eE+-]*$/.test(raw)) {
    const n = Number(raw);
    if (Number.isFinite(n) && String(n) === raw && !/e/i.test(raw)) return n;
  }
  return raw;
}

/** The file field a multipart key targets (name, +name, name+), or null. */
export function fileFieldOf(collection: PbCollection, key: string, prefix = '') {
  if (prefix) {
    if (!key.startsWith(prefix)) return null;
    key = key.slice(prefix.length);
  }
  const name = key.startsWith('+') ? key.slice(1) : key.endsWith('+') ? key.slice(0, -1) : key;
  return collection.fields.find((f) => f.type === 'file' && f.name === name) ?? null;
}

export function parseMultipart(req: IncomingMessage, opts: { limit: number; collection: (key: string) => { maxSize: number } | null }): Promise<ParsedMultipart> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fieldSize: opts.limit, fields: 2000, files: 500, parts: 2500, headerPairs: 100 }, preservePath: false });
    } catch {
      return reject(new MalformedBody('bad multipart header'));
    }
    const text = new Map<string, string[]>();
    const uploads = new Map<string, Upload[]>();
    let seen = 0;
    let done = false;
    const pending: Promise<void>[] = [];
    // Refused or gone: the rest of the body is discarded, the request is not destroyed (a 413 or 400 can
    // still reach the client), and the parser, no longer fed, is left to the garbage collector.
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      req.unpipe(bb);
      req.resume();
      reject(err);
    };
    // Every stream's errors are handled (finished() keeps its listeners after calling back): an aborted
    // request or a cut multipart body ends this request, never the process.
    finished(bb, (err) => {
      if (err) fail(new MalformedBody('malformed multipart body'));
    });
    finished(req, (err) => {
      if (err) fail(new ClientGone(err));
    });
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > opts.limit) fail(new BodyTooLarge());
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated || info.nameTruncated) return fail(new MalformedBody('field too long'));
      const list = text.get(name) ?? [];
      list.push(value);
      text.set(name, list);
    });
    bb.on('file', (name, stream, info) => {
      finished(stream, () => {}); // a part cut short errors its stream
      const target = opts.collection(name);
      if (!target) {
        stream.resume(); // PocketBase ignores files outside its file fields
        return;
      }
      const chunks: Buffer[] | null = [];
      let size = 0;
      let keep = true;
      pending.push(new Promise<void>((res) => {
        stream.on('data', (c: Buffer) => {
          size += c.length;
          if (keep && size > target.maxSize + 1 && size > HEAD) keep = false; // rejected anyway: stop keeping
          if (keep) chunks.push(c);
        });
        stream.on('end', () => {
          const all = Buffer.concat(chunks);
          const upload = makeUpload(name, info.filename ?? 'file', info.mimeType ?? '', all.subarray(0, HEAD), size, keep ? [all] : null);
          const list = uploads.get(name) ?? [];
          list.push(upload);
          uploads.set(name, list);
          res();
        });
        stream.on('error', () => res());
      }));
    });
    bb.on('filesLimit', () => fail(new MalformedBody('too many files')));
    bb.on('fieldsLimit', () => fail(new MalformedBody('too many fields')));
    bb.on('partsLimit', () => fail(new MalformedBody('too many parts')));
    bb.on('close', () => {
      void Promise.all(pending).then(() => {
        if (done) return;
        done = true;
        const fields: Record<string, unknown> = Object.create(null);
        for (const [k, values] of text) {
          if (k === '@jsonPayload') continue;
          fields[k] = values.length === 1 ? inferValue(values[0]) : values.map(inferValue);
        }
        for (const payload of text.get('@jsonPayload') ?? []) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(payload);
          } catch {
            return reject(new MalformedBody('bad @jsonPayload'));
          }
          if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return reject(new MalformedBody('bad @jsonPayload'));
          for (const [k, v] of Object.entries(parsed)) fields[k] = v;
        }
        resolve({ fields, uploads });
      });
    });
    req.pipe(bb);
  });
}

/** A multipart body of @jsonPayload (the fields) and the kept files. */
export function encodeMultipart(fields: Record<string, unknown>, uploads: Map<string, Upload[]>, prefix = ''): { body: Buffer; contentType: string } {
  const boundary = `----hapta${randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  const esc = (s: string) => s.replace(/["\r\n\\]/g, '_');
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${esc(prefix + '@jsonPayload')}"\r\nContent-Type: application/json\r\n\r\n`));
  parts.push(Buffer.from(JSON.stringify(fields)));
  parts.push(Buffer.from('\r\n'));
  for (const [key, files] of uploads) {
    for (const f of files) {
      if (!f.chunks) continue;
      const type = /^[\w.+-]+\/[\w.+-]+$/.test(f.clientType) ? f.clientType : 'application/octet-stream';
      parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${esc(key)}"; filename="${esc(f.originalName)}"\r\nContent-Type: ${type}\r\n\r\n`));
      parts.push(...f.chunks, Buffer.from('\r\n'));
    }
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}
