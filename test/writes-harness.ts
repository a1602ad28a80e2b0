// Shared set-up of the write-path suites: PocketBase with the reference schema plus an "every" collection
// (each field type and option) and an auth collection with password options, and the shipped sidecar
// seen through its metrics (requests it forwarded, reads that waited for the replica).
import { api } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import type { TestSidecar } from './harness/sidecar.js';

export const EVERY = {
  name: 'every', type: 'base',
  listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
  fields: [
    { name: 'title', type: 'text', min: 3, max: 10, pattern: '^[a-z ]+$' },
    { name: 'req', type: 'text', required: true },
    { name: 'mail', type: 'email', onlyDomains: ['ok.test', 'example.com'] },
    { name: 'mail2', type: 'email', exceptDomains: ['bad.test'] },
    { name: 'site', type: 'url' },
    { name: 'site2', type: 'url', onlyDomains: ['example.com'] },
    { name: 'n', type: 'number', min: 1, max: 10 },
    { name: 'i', type: 'number', onlyInt: true, min: -5, max: 1000000 },
    { name: 'flag', type: 'bool' },
    { name: 'day', type: 'date', min: '2020-01-01 00:00:00.000Z', max: '2030-01-01 00:00:00.000Z' },
    { name: 'one', type: 'select', maxSelect: 1, values: ['a', 'b', 'c'] },
    { name: 'many', type: 'select', maxSelect: 2, values: ['x', 'y', 'z'] },
    { name: 'rel', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    { name: 'rels', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 2 },
    { name: 'doc', type: 'file', maxSelect: 1, maxSize: 2000, mimeTypes: ['text/plain'] },
    { name: 'pics', type: 'file', maxSelect: 2, maxSize: 100000, mimeTypes: ['image/png', 'image/jpeg'] },
    { name: 'data', type: 'json', maxSize: 100 },
    { name: 'where', type: 'geoPoint' },
    { name: 'html', type: 'editor', maxSize: 50 },
    { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
  ],
};

export const MEMBERS = {
  name: 'members', type: 'auth',
  listRule: '', viewRule: '', createRule: '', updateRule: 'id = @request.auth.id', deleteRule: null,
  passwordAuth: { enabled: true, identityFields: ['email'] },
  fields: [
    { name: 'password', type: 'password', required: true, hidden: true, system: true, min: 10, max: 20, pattern: '^[a-z0-9]+$' },
    { name: 'nick', type: 'text', max: 5 },
  ],
};

export async function createTestCollections(pbUrl: string, token: string): Promise<void> {
  for (const c of [EVERY, MEMBERS]) await api(pbUrl, '/api/collections', { method: 'POST', token, body: c });
}

/** The shipped sidecar seen as the write path's test subject. */
export interface WriteApp {
  url: string;
  /** Requests the sidecar has forwarded to PocketBase on callers' behalf (sync traffic excluded). */
  upstreamCount(): Promise<number>;
  /** Reads that waited for the replica to reach a watermark: how many, and their total in ms. */
  waits(): Promise<{ count: number; sumMs: number }>;
}

export function writeApp(sidecar: TestSidecar): WriteApp {
  return {
    url: sidecar.url,
    upstreamCount: () => metricSum(sidecar.metrics.upstreamRequests, { purpose: 'proxy' }),
    async waits() {
      const { values } = await sidecar.metrics.readWait.get();
      const pick = (name: string) => values.find((v) => v.metricName === name)?.value ?? 0;
      return { count: pick('hapta_read_wait_ms_count'), sumMs: pick('hapta_read_wait_ms_sum') };
    },
  };
}

/** Signs in through the sidecar (a session key) and straight at PocketBase (its token). */
export async function signIn(sidecarUrl: string, pbUrl: string, collection: string, identityValue: string, password: string) {
  const body = JSON.stringify({ identity: identityValue, password });
  const post = async (base: string) => {
    const res = await fetch(`${base}/api/collections/${collection}/auth-with-password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (!res.ok) throw new Error(`sign-in failed ${res.status}`);
    return (await res.json()) as { token: string; record: { id: string } };
  };
  const [viaSidecar, direct] = [await post(sidecarUrl), await post(pbUrl)];
  return { key: viaSidecar.token, pbToken: direct.token, id: direct.record.id };
}

export interface Answer { status: number; body: any; text: string }

export async function send(base: string, method: string, path: string, token: string | null, body?: unknown, form?: FormData): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = token;
  let payload: string | FormData | undefined;
  if (form) payload = form;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(base + path, { method, headers, body: payload });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch { /* not JSON */ }
  return { status: res.status, body: parsed, text };
}

/** Random parts of PocketBase answers (stored file name suffixes) made comparable. */
export function normalize(v: unknown): unknown {
  if (typeof v === 'string') return v.replace(/_[a-z0-9]{10}(\.[a-z0-9]+)?\b/g, '_RANDOM$1');
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}
