// The body of a password login read the way PocketBase binds it (router.Event.BindBody into
// authWithPasswordForm), so the login guard judges the identity PocketBase will check. The login is then
// forwarded as this canonical JSON, whatever the client sent: what PocketBase executes is what was judged.
// - `application/json…` (case-sensitive prefix, as PocketBase tests it): the first JSON value (Go's
//   json.Decoder ignores what follows), keys matched case-insensitively (Go's encoding/json folding);
// - `multipart/form-data…` and `application/x-www-form-urlencoded…`: the form (body values first, then the
//   query string's, as Go's Request.Form holds them);
// - XML bodies are refused; any other type binds nothing.
import busboy from 'busboy';
import { Readable } from 'node:stream';
import { ApiError } from './errors.js';
import { foldName } from './http/target.js';
import { parseQuery, readForm } from './writes/form.js';

export interface PasswordLogin { identity: string; password: string; identityField: string }

const LOAD_FAILED = 'An error occurred while loading the submitted data.';
const FIELDS: Record<string, keyof PasswordLogin> = { identity: 'identity', password: 'password', identityfield: 'identityField' };

/** The end of the first JSON value in `s` from `i` (after whitespace), or -1 when there is none. */
function firstValueEnd(s: string, i: number): number {
  let depth = 0;
  let inString = false;
  for (; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return i + 1;
      }
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
      if (depth < 0) return -1;
    } else if (depth === 0 && /[\s,:]/.test(c)) return i;
  }
  return depth === 0 && !inString ? s.length : -1;
}

function fromJson(text: string): PasswordLogin {
  const login: PasswordLogin = { identity: '', password: '', identityField: '' };
  const start = text.search(/\S/);
  const end = start < 0 ? -1 : firstValueEnd(text, start);
  let value: unknown;
  try {
    if (end < 0) throw new Error('no value');
    value = JSON.parse(text.slice(start, end));
  } catch {
    throw new ApiError(400, LOAD_FAILED);
  }
  if (value === null) return login;
  if (typeof value !== 'object' || Array.isArray(value)) throw new ApiError(400, LOAD_FAILED);
  let typeError = false;
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const field = FIELDS[foldName(key)];
    if (!field || v === null) continue;
    if (typeof v !== 'string') typeError = true;
    else login[field] = v;
  }
  if (typeError) throw new ApiError(400, LOAD_FAILED);
  return login;
}

function fromForm(values: Map<string, string[]>): PasswordLogin {
  const first = (k: string) => values.get(k)?.[0] ?? '';
  return { identity: first('identity'), password: first('password'), identityField: first('identityField') };
}

function addAll(into: Map<string, string[]>, params: Iterable<[string, string]>): void {
  for (const [k, v] of params) into.set(k, [...(into.get(k) ?? []), v]);
}

async function multipartFields(raw: Buffer, contentType: string): Promise<Map<string, string[]>> {
  const fields = new Map<string, string[]>();
  await new Promise<void>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: 64 << 10, fields: 100 } });
    } catch (e) {
      return reject(e);
    }
    bb.on('field', (name, value) => addAll(fields, [[name, value]]));
    bb.on('file', (_name, stream) => stream.on('error', () => {}).resume());
    bb.on('error', reject);
    bb.on('close', resolve);
    Readable.from([raw]).pipe(bb);
  }).catch(() => {
    throw new ApiError(400, LOAD_FAILED);
  });
  return fields;
}

/** The login PocketBase would bind from this request (`query`: the raw URL query). */
export async function passwordLogin(raw: Buffer, contentType: string, query: string): Promise<PasswordLogin> {
  const empty = { identity: '', password: '', identityField: '' };
  if (raw.length === 0) return empty;
  if (contentType.startsWith('application/json')) return fromJson(raw.toString('utf8'));
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    const form = readForm({ contentType, body: raw, rawQuery: query, empty: false });
    if (!form.ok) throw new ApiError(400, LOAD_FAILED);
    return fromForm(form.values);
  }
  if (contentType.startsWith('multipart/form-data')) {
    const values = await multipartFields(raw, contentType);
    const q = parseQuery(Buffer.from(query, 'latin1'));
    if (q.error !== null) throw new ApiError(400, LOAD_FAILED);
    addAll(values, [...q.values].flatMap(([k, vs]) => vs.map((v) => [k, v] as [string, string])));
    return fromForm(values);
  }
  if (contentType.startsWith('text/xml') || contentType.startsWith('application/xml')) throw new ApiError(400, LOAD_FAILED);
  return empty;
}
