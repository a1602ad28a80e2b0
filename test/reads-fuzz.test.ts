// Hostile input for the read path: 10,000+ fuzzed filters, sorts, fields, expands and paging values.
// Every answer must be PocketBase-shaped (a 2xx/4xx JSON body, errors as {data,message,status}), never a
// 500, never SQL or SQLite text, and quick; the process must survive all of it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rng } from './harness/seed.js';
import { startReadsEnv, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;

before(async () => {
  env = await startReadsEnv({ counts: { users: 6, posts: 60, comments: 80, likes: 40, follows: 10 } });
}, { timeout: 120_000 });

after(async () => { await env?.stop(); });

const FRAGMENTS = [
  "'", '"', '(', ')', '((', '))', '&&', '||', '=', '!=', '?=', '~', '!~', '>=', '<', ':', '.', ',', '-', '+', '@', '#', '//', '\\', '%', '_',
  'title', 'author.name', 'author.email', 'secret', 'tags:each', 'tags:length', 'meta.a.0.b', 'comments_via_post.text', 'coauthors.name:lower',
  '@request.auth.id', '@collection.users.name', '@now', 'null', 'true', '1e999', '-0', '0x10', '"x"', "'y'",
  "'; DROP TABLE posts; --", '" OR 1=1 --', 'UNION SELECT * FROM _superusers', '/* comment */', ') OR (1=1', 'sqlite_master', 'json_extract(',
  'geoDistance(1,2,3,4)', 'strftime("%Y", created)', 'strftime()', 'unknownFn(1)', '\u202e', '😀', 'é', '\u0000', '\t', '\n', '\u2028', 'ß', '\ud800',
];

function fuzzString(rand: () => number, maxParts: number): string {
  const r = rand();
  if (r < 0.03) return '('.repeat(50 + Math.floor(rand() * 500)) + 'title = 1' + ')'.repeat(Math.floor(rand() * 600));
  if (r < 0.05) return 'title = "' + 'x'.repeat(3400 + Math.floor(rand() * 400)) + '"';
  if (r < 0.06) return Array.from({ length: 210 }, (_, i) => `title = "${i}"`).join(' || ');
  if (r < 0.08) return Array.from({ length: 200 + Math.floor(rand() * 2000) }, () => String.fromCharCode(Math.floor(rand() * 0xffff))).join('');
  const n = 1 + Math.floor(rand() * maxParts);
  let s = '';
  for (let i = 0; i < n; i++) s += FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)] + (rand() < 0.5 ? ' ' : '');
  return s;
}

/** encodeURIComponent that also sends lone surrogates (as the invalid UTF-8 a hostile client could send). */
function enc(s: string): string {
  return s.split(/([\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff])/).map((part, i) => (i % 2 ? '%ED%A0%80' : encodeURIComponent(part))).join('');
}

describe('read path under hostile input', () => {
  it('10,400 fuzzed requests: PocketBase-shaped answers, no 500, no SQL, bounded time', { timeout: 200_000 }, async () => {
    const rand = rng(4242);
    const colls = ['posts', 'comments', 'users', 'likes', 'audit_log', 'nope', 'POSTS', 'posts%2F..', '%00', '..'];
    const params = ['filter', 'sort', 'fields', 'expand', 'page', 'perPage', 'skipTotal'];
    const who = [env.identities[0], env.identities[1], env.identities[3]];
    const total = 10_400;
    let done = 0;
    let slowest = 0;
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const worker = async () => {
      while (done < total) {
        const i = done++;
        const qs: string[] = [];
        for (const p of params) if (rand() < 0.45) qs.push(`${p}=${enc(fuzzString(rand, 8))}`);
        if (rand() < 0.05) qs.push('filter=%ED%A0%80', 'sort=%ZZ');
        const coll = colls[Math.floor(rand() * colls.length)];
        const path = `/api/collections/${coll}/records${rand() < 0.2 ? '/' + enc(fuzzString(rand, 2)) : ''}?${qs.join('&')}`;
        const id = who[i % who.length];
        const t0 = performance.now();
        const res = await fetch(env.url + path, { headers: id.key ? { authorization: id.key } : {} });
        const body = await res.text();
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const fail = (why: string) => failures.push(`${why}: ${res.status} ${path.slice(0, 200)} -> ${body.slice(0, 200)}`);
        if (res.status >= 500) fail('5xx');
        if (ms > 3000) fail(`slow ${ms.toFixed(0)}ms`);
        if (/\bSELECT\b|sqlite|SQLITE_|json_each|LEFT JOIN/i.test(body) && res.status !== 200) fail('sql text');
        // Node's HTTP parser refuses URLs over its 16 KB header limit before any route runs.
        if (res.status === 431 && body === '') continue;
        let parsed: unknown;
        try { parsed = JSON.parse(body); } catch { if (res.status !== 404 || body !== '') fail('not json'); continue; }
        if (res.status >= 400) {
          const keys = Object.keys(parsed as object).sort().join(',');
          if (keys !== 'data,message,status' || (parsed as { status: number }).status !== res.status) fail('error shape');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failures; statuses ${JSON.stringify([...statuses])}`);
    assert.ok(slowest < 3000, `slowest ${slowest}ms`);
    // The process is still answering normally.
    const ok = await fetch(env.url + '/api/collections/posts/records?perPage=1');
    assert.equal(ok.status, 200);
  });
});
