// The body of POST /api/realtime as PocketBase binds and validates it (apis/realtime.go
// realtimeSubscribeForm): JSON (the first value; names matched case-insensitively, a duplicate name or a
// wrong type is a bind error), urlencoded or multipart form fields; then clientId required, 1..255
// characters, at most 1000 subscriptions of at most 2500 characters each, with PocketBase's error bodies.
import busboy from 'busboy';
import type { Context } from 'koa';
import { ApiError } from '../errors.js';
import { parseGoQuery } from '../reads/request.js';

export interface SubscribeForm {
  clientId: string;
  subscriptions: string[];
}

export interface FormLimits {
  maxSubscriptions: number;
  maxTopicLength: number;
}

const GENERIC = 'Something went wrong while processing your request.';
const DEFAULT_BODY_LIMIT = 32 << 20;

function bindError(): ApiError {
  return new ApiError(400, GENERIC);
}

/** Reads, binds and validates the subscription form; throws PocketBase's 400 (or the body limit's 413). */
export async function readSubscribeForm(ctx: Context, limits: FormLimits): Promise<SubscribeForm> {
  const type = (ctx.get('content-type') || '').toLowerCase();
  const limit = typeof ctx.state.bodyLimit === 'number' ? (ctx.state.bodyLimit as number) : DEFAULT_BODY_LIMIT;
  let form: SubscribeForm;
  if (type.startsWith('application/json')) form = bindJson(await readBody(ctx, limit));
  else if (type.startsWith('application/x-www-form-urlencoded')) form = bindUrlencoded((await readBody(ctx, limit)).toString('latin1'));
  else if (type.startsWith('multipart/form-data')) form = await bindMultipart(ctx, limit);
  else {
    drain(ctx);
    throw bindError();
  }
  validate(form, limits);
  return form;
}

function drain(ctx: Context): void {
  ctx.req.resume();
}

async function readBody(ctx: Context, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        ctx.set('Connection', 'close');
        throw new ApiError(413, 'Request entity too large');
      }
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, GENERIC);
  }
  return Buffer.concat(chunks);
}

/** json.Decoder.Decode of the first value into the form. */
export function bindJson(body: Buffer): SubscribeForm {
  const text = body.toString('utf8');
  const form: SubscribeForm = { clientId: '', subscriptions: [] };
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  ws();
  if (i >= text.length) return form; // io.EOF: nothing bound
  // The first JSON value: find where it ends, then let JSON.parse check it.
  const end = valueEnd(text, i);
  if (end < 0) throw bindError();
  let value: unknown;
  try {
    value = JSON.parse(text.slice(i, end));
  } catch {
    throw bindError();
  }
  if (value === null) return form;
  if (typeof value !== 'object' || Array.isArray(value)) throw bindError();
  const seen = new Set<string>();
  for (const name of memberNames(text.slice(i, end))) {
    const lower = name.toLowerCase();
    if (seen.has(lower)) throw bindError();
    seen.add(lower);
  }
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    const lower = name.toLowerCase();
    if (lower === 'clientid') {
      if (v === null) form.clientId = '';
      else if (typeof v === 'string') form.clientId = v;
      else throw bindError();
    } else if (lower === 'subscriptions') {
      if (v === null) form.subscriptions = [];
      else if (Array.isArray(v)) {
        form.subscriptions = v.map((s) => {
          if (s === null) return '';
          if (typeof s !== 'string') throw bindError();
          return s;
        });
      } else throw bindError();
    }
  }
  return form;
}

/** The index just past the JSON value starting at `start`, or -1 when it does not end. */
function valueEnd(s: string, start: number): number {
  const c = s[start];
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let i = start; i < s.length; i++) {
      const ch = s[i];
      if (ch === '"') {
        i++;
        while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
        continue;
      }
      if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return -1;
  }
  if (c === '"') {
    for (let i = start + 1; i < s.length; i++) {
      if (s[i] === '\\') { i++; continue; }
      if (s[i] === '"') return i + 1;
    }
    return -1;
  }
  const m = /^(true|false|null|-?[0-9][0-9.eE+-]*)/.exec(s.slice(start, start + 400));
  return m ? start + m[0].length : -1;
}

/** The member names of the top-level object (already known to be valid JSON). */
function memberNames(json: string): string[] {
  const names: string[] = [];
  let depth = 0;
  let expectName = false;
  for (let i = 0; i < json.length; i++) {
    const ch = json[i];
    if (ch === '"') {
      const startStr = i;
      i++;
      while (i < json.length && json[i] !== '"') i += json[i] === '\\' ? 2 : 1;
      if (depth === 1 && expectName) {
        names.push(JSON.parse(json.slice(startStr, i + 1)) as string);
        expectName = false;
      }
      continue;
    }
    if (ch === '{' || ch === '[') {
      depth++;
      if (depth === 1 && ch === '{') expectName = true;
    } else if (ch === '}' || ch === ']') depth--;
    else if (ch === ',' && depth === 1) expectName = true;
  }
  return names;
}

function bindUrlencoded(body: string): SubscribeForm {
  let q: Map<string, string[]>;
  try {
    q = parseGoQuery(body);
  } catch {
    throw bindError();
  }
  return { clientId: q.get('clientId')?.[0] ?? '', subscriptions: q.get('subscriptions') ?? [] };
}

function bindMultipart(ctx: Context, limit: number): Promise<SubscribeForm> {
  return new Promise((resolve, reject) => {
    const form: SubscribeForm = { clientId: '', subscriptions: [] };
    let seenClientId = false;
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: ctx.req.headers, limits: { fieldSize: limit, fileSize: limit } });
    } catch {
      drain(ctx);
      return reject(bindError());
    }
    let size = 0;
    bb.on('field', (name, value) => {
      size += value.length;
      if (name === 'clientId' && !seenClientId) { form.clientId = value; seenClientId = true; }
      else if (name === 'subscriptions') form.subscriptions.push(value);
    });
    bb.on('file', (_name, stream) => stream.resume());
    bb.on('error', () => { drain(ctx); reject(bindError()); });
    bb.on('close', () => (size > limit ? reject(new ApiError(413, 'Request entity too large')) : resolve(form)));
    ctx.req.on('error', () => reject(bindError()));
    ctx.req.pipe(bb);
  });
}

function runeLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** ozzo-validation of the form, with PocketBase's codes, messages and params. */
export function validate(form: SubscribeForm, limits: FormLimits): void {
  const data: Record<string, unknown> = {};
  const idLength = runeLength(form.clientId);
  if (idLength === 0) data.clientId = { code: 'validation_required', message: 'Cannot be blank.' };
  else if (idLength > 255) data.clientId = { code: 'validation_length_out_of_range', message: 'The length must be between 1 and 255.', params: { max: 255, min: 1 } };
  if (form.subscriptions.length > limits.maxSubscriptions) {
    data.subscriptions = {
      code: 'validation_length_too_long', message: `The length must be no more than ${limits.maxSubscriptions}.`,
      params: { max: limits.maxSubscriptions, min: 0 },
    };
  } else {
    const each: Record<string, unknown> = {};
    form.subscriptions.forEach((s, i) => {
      if (runeLength(s) > limits.maxTopicLength) {
        each[String(i)] = {
          code: 'validation_length_too_long', message: `The length must be no more than ${limits.maxTopicLength}.`,
          params: { max: limits.maxTopicLength, min: 0 },
        };
      }
    });
    if (Object.keys(each).length > 0) data.subscriptions = each;
  }
  if (Object.keys(data).length > 0) throw new ApiError(400, GENERIC, data);
}
