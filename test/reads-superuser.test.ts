// A superuser's own record behind @request.auth (`_superusers` is not replicated): read from PocketBase
// once per session record, kept exactly as current as the replica (a change to the record or to the
// collection's fields shows in the next read after the replica applies it, cached answers included),
// and a superuser PocketBase no longer accepts is left to PocketBase.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api } from './harness/dump.js';
import { metricSum } from './harness/metrics.js';
import { waitForSync } from './harness/sidecar.js';
import { authToken, both, startReadsEnv, type Identity, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;
let second: Identity;
const SECOND = { email: 'other-admin@example.com', password: 'other-admin-pass-1' };

before(async () => {
  env = await startReadsEnv({
    counts: { users: 4, posts: 30, comments: 10, likes: 5, follows: 2 },
    setup: async (url, token) => {
      const su = await api<{ fields: unknown[] }>(url, '/api/collections/_superusers', { token });
      await api(url, '/api/collections/_superusers', { method: 'PATCH', token, body: { fields: [...su.fields, { name: 'nick', type: 'text' }] } });
      await api(url, '/api/collections/_superusers/records', { method: 'POST', token, body: {
        email: SECOND.email, password: SECOND.password, passwordConfirm: SECOND.password, nick: 'two' } });
    },
  });
  const { token, id } = await authToken(env.pb.url, '_superusers', SECOND.email, SECOND.password);
  const { token: key } = await authToken(env.url, '_superusers', SECOND.email, SECOND.password);
  second = { name: 'second', key, token, id };
}, { timeout: 120_000 });

after(async () => { await env?.stop(); });

const list = (filter: string) => `/api/collections/posts/records?sort=-created,id&perPage=3&fields=id&filter=${encodeURIComponent(filter)}`;
const anonymous: Identity = { name: 'anon', key: '', token: '', id: '' };

/** The sidecar's answer as `who` equals PocketBase's as `as` (the same caller unless told), from the replica. */
async function same(path: string, who: Identity, as: Identity = who, local = true): Promise<string> {
  const fallbacksBefore = await metricSum(env.sidecar.metrics.readFallbacks);
  const sc = await fetch(env.url + path, { headers: who.key ? { authorization: who.key } : {} });
  const pb = await fetch(env.pb.url + path, { headers: as.token ? { authorization: as.token } : {} });
  const [a, b] = [await sc.text(), await pb.text()];
  assert.equal(sc.status, pb.status, path);
  assert.deepEqual(JSON.parse(a), JSON.parse(b), path);
  assert.equal((await metricSum(env.sidecar.metrics.readFallbacks)) - fallbacksBefore, local ? 0 : 1, `${path} answered ${local ? 'from the replica' : 'by PocketBase'}`);
  return a;
}

const authRequests = () => metricSum(env.sidecar.metrics.upstreamRequests, { purpose: 'auth' });

describe("a superuser's record in the read path", () => {
  it('plain fields and custom fields, from one fetch per record', { timeout: 60_000 }, async () => {
    const admin = env.identities[3];
    const t0 = await authRequests();
    for (const f of ['@request.auth.email = "hapta-test@example.com"', '@request.auth.nick = ""', '@request.auth.verified = true',
      '@request.auth.emailVisibility = false', '@request.auth.created != "" && @request.auth.updated <= @now', '@request.auth.collectionName = "_superusers"']) {
      assert.match(await same(list(f), admin), /"totalItems":30/, f);
    }
    assert.match(await same(list('@request.auth.nick = "two" && @request.auth.email ~ "other"'), second), /"totalItems":30/);
    assert.match(await same(list('@request.auth.nick = "one"'), second), /"totalItems":0/);
    // Two superusers: one record and one definition each (plus a refresh of a PocketBase token close to
    // expiry), then nothing more.
    const fetched = (await authRequests()) - t0;
    assert.ok(fetched >= 4 && fetched <= 6, `${fetched} requests`);
    for (let i = 0; i < 10; i++) await same(list(`@request.auth.nick != "${i}"`), i % 2 ? admin : second);
    assert.equal((await authRequests()) - t0, fetched);
  });

  it('changes to the record and to the collection show once the replica has applied them, cached answers too', { timeout: 60_000 }, async () => {
    const path = list('@request.auth.nick = "renamed" && @request.auth.email = "other-admin@example.com"');
    assert.match(await same(path, second), /"totalItems":0/);
    await api(env.pb.url, `/api/collections/_superusers/records/${second.id}`, { method: 'PATCH', token: env.superToken, body: { nick: 'renamed' } });
    await waitForSync(env.sidecar);
    assert.match(await same(path, second), /"totalItems":30/);

    const su = await api<{ fields: unknown[] }>(env.pb.url, '/api/collections/_superusers', { token: env.superToken });
    await api(env.pb.url, '/api/collections/_superusers', { method: 'PATCH', token: env.superToken, body: { fields: [...su.fields, { name: 'rank', type: 'number' }] } });
    await api(env.pb.url, `/api/collections/_superusers/records/${second.id}`, { method: 'PATCH', token: env.superToken, body: { rank: 7 } });
    await waitForSync(env.sidecar);
    assert.match(await same(list('@request.auth.rank = 7 && @request.auth.rank > 6.5'), second), /"totalItems":30/);
    assert.match(await same(list('@request.auth.rank = 7'), env.identities[3]), /"totalItems":0/);
  });

  it('a superuser PocketBase no longer accepts (an email change resets its token key): PocketBase answers, anonymously', { timeout: 60_000 }, async () => {
    await api(env.pb.url, `/api/collections/_superusers/records/${second.id}`, { method: 'PATCH', token: env.superToken, body: { email: 'moved@example.com' } });
    await waitForSync(env.sidecar);
    await same('/api/collections/posts/records?sort=id&perPage=5', second, anonymous, false);
    // The session ended with it: later reads are anonymous ones, from the replica.
    await same('/api/collections/posts/records?sort=id&perPage=5', second, anonymous);
    await same(list('@request.auth.nick = "renamed"'), second, anonymous);
  });
});
