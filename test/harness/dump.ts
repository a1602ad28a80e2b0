// Full dumps of every replicated collection, from PocketBase's API (as superuser) and from the replica,
// for record-for-record comparison.
import type { ReplicaStore } from '../../replica/store.js';
import { decodeRow, isReplicable, quoteIdent, ROWID_COLUMN, tableSpec, type PbCollection } from '../../replica/schema.js';
import { SUPERUSER } from './pocketbase.js';

export type Dump = Record<string, Record<string, unknown>[]>;

export async function superuserToken(url: string): Promise<string> {
  const res = await fetch(`${url}/api/collections/_superusers/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identity: SUPERUSER.email, password: SUPERUSER.password }),
  });
  if (!res.ok) throw new Error(`superuser login failed: ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

export async function api<T = any>(url: string, path: string, init: { method?: string; token?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(url + path, {
    method: init.method ?? 'GET',
    headers: { ...(init.token ? { authorization: init.token } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw Object.assign(new Error(`${init.method ?? 'GET'} ${path} -> ${res.status} ${text.slice(0, 300)}`), { status: res.status });
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Every record of every replicated collection, in PocketBase's own order (rowid), via its API. */
export async function dumpPocketBase(url: string, token: string): Promise<Dump> {
  const cols = (await api<{ items: PbCollection[] }>(url, '/api/collections?perPage=500', { token })).items.filter((c) => isReplicable(c, false));
  const out: Dump = {};
  for (const c of cols) {
    const items: Record<string, unknown>[] = [];
    for (let page = 1; ; page++) {
      const res = await api<{ items: Record<string, unknown>[] }>(url, `/api/collections/${c.id}/records?page=${page}&perPage=1000&skipTotal=1&sort=@rowid`, { token });
      items.push(...res.items);
      if (res.items.length < 1000) break;
    }
    out[c.name] = items;
  }
  return out;
}

export function dumpReplica(store: ReplicaStore): Dump {
  const out: Dump = {};
  for (const c of store.collections()) {
    const spec = tableSpec(c);
    const rows = store.db.prepare(`SELECT * FROM ${quoteIdent(spec.table)} ORDER BY ${quoteIdent(ROWID_COLUMN)}`).all() as Record<string, unknown>[];
    out[c.name] = rows.map((r) => decodeRow(spec, r));
  }
  return out;
}

/** A readable description of the first differences between two dumps (empty when equal). */
export function diffDumps(a: Dump, b: Dump, max = 5): string[] {
  const diffs: string[] = [];
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const n of names) {
    const x = a[n];
    const y = b[n];
    if (!x || !y) { diffs.push(`collection ${n}: only in ${x ? 'first' : 'second'}`); continue; }
    if (x.length !== y.length) diffs.push(`collection ${n}: ${x.length} vs ${y.length} records`);
    const byId = new Map(y.map((r) => [r.id, r]));
    for (let i = 0; i < x.length && diffs.length < max; i++) {
      const other = byId.get(x[i].id);
      if (!other) { diffs.push(`${n}/${x[i].id}: missing in second`); continue; }
      const s1 = JSON.stringify(x[i]);
      const s2 = JSON.stringify(other);
      if (s1 !== s2) diffs.push(`${n}/${x[i].id}: ${s1.slice(0, 300)} != ${s2.slice(0, 300)}`);
      else if (y[i]?.id !== x[i].id) diffs.push(`${n}: order differs at ${i} (${x[i].id} vs ${y[i]?.id})`);
    }
    if (diffs.length >= max) break;
  }
  return diffs;
}
