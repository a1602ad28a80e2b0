// Extra collections for the read-path differential tests: rules that use every construct the read path
// supports (@request.auth relations and back-relations, @request.query/headers/method/context,
// @collection joins with aliases, multi-match, modifiers, macros, strftime, geoDistance, manageRule),
// seeded deterministically next to the reference schema; plus callers of every kind: more users, an
// auth collection the replica holds (members), one it cannot hold (`9staff`: a name it does not
// replicate) and a second superuser, with custom fields on _superusers (nick, level, buddy -> users).
import { api } from './harness/dump.js';
import { SUPERUSER } from './harness/pocketbase.js';
import { batch, makeId, rng, USER_PASSWORD, type Seeded } from './harness/seed.js';
import { authToken, type Identity, type ReadsEnv } from './reads-env.js';

export const STAFF_COLLECTION = '9staff';
export const SUPERUSER2 = { email: 'second-admin@example.com', password: 'second-admin-pass-1' };

const USERS = '_pb_users_auth_';

export async function createExtraCollections(url: string, token: string, seeded: Seeded): Promise<void> {
  const post = (body: unknown) => api(url, '/api/collections', { method: 'POST', token, body });
  await post({ id: 'pbc_tags0000001', name: 'tags', type: 'base', listRule: '', viewRule: '', fields: [
    { name: 'name', type: 'text' }, { name: 'weight', type: 'number' }, { name: 'meta', type: 'json' },
  ], indexes: ['CREATE UNIQUE INDEX idx_tags_name ON tags (name)'] });
  await post({ id: 'pbc_docs0000001', name: 'docs', type: 'base',
    listRule: 'status = "public" || owner = @request.auth.id || editors.id ?= @request.auth.id || (@request.query.preview = "yes" && @request.auth.verified = true)',
    viewRule: 'owner = @request.auth.id',
    fields: [
      { name: 'title', type: 'text' }, { name: 'body', type: 'editor' },
      { name: 'owner', type: 'relation', collectionId: USERS, maxSelect: 1 },
      { name: 'editors', type: 'relation', collectionId: USERS, maxSelect: 5 },
      { name: 'tags', type: 'relation', collectionId: 'pbc_tags0000001', maxSelect: 10 },
      { name: 'status', type: 'select', maxSelect: 1, values: ['draft', 'public', 'secret'] },
      { name: 'labels', type: 'select', maxSelect: 4, values: ['open', 'closed', 'hot', 'cold'] },
      { name: 'score', type: 'number' }, { name: 'data', type: 'json' }, { name: 'note', type: 'text', hidden: true },
      { name: 'due', type: 'date' }, { name: 'loc', type: 'geoPoint' },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
    ] });
  await post({ id: 'pbc_grants000001', name: 'grants', type: 'base', listRule: 'user = @request.auth.id', viewRule: 'user = @request.auth.id', fields: [
    { name: 'user', type: 'relation', collectionId: USERS, maxSelect: 1 },
    { name: 'doc', type: 'relation', collectionId: 'pbc_docs0000001', maxSelect: 1 },
    { name: 'level', type: 'number' },
  ] });
  await api(url, '/api/collections/docs', { method: 'PATCH', token, body: {
    viewRule: '@request.headers.x_doc_key = "k1" || owner = @request.auth.id || (status != "secret" && @collection.grants.user ?= @request.auth.id && @collection.grants.doc ?= id)' } });
  await post({ id: 'pbc_notes0000001', name: 'notes', type: 'base',
    listRule: '(@request.context = "default" || @request.context = "expand") && @request.method = "GET" && @request.query.secret:isset = false && ' +
      '(author = @request.auth.id || @request.auth.follows_via_follower.following ?= author || text:lower ~ "public" || @request.auth.name:lower = "user 1") && created <= @now',
    viewRule: '@request.context = "expand" || author = @request.auth.id || labels:length > 1 || (labels:each ?= "open" && strftime("%Y", created) = strftime("%Y", @now))',
    fields: [
      { name: 'author', type: 'relation', collectionId: USERS, maxSelect: 1 },
      { name: 'doc', type: 'relation', collectionId: 'pbc_docs0000001', maxSelect: 1 },
      { name: 'text', type: 'text' },
      { name: 'labels', type: 'select', maxSelect: 4, values: ['open', 'closed', 'hot', 'cold'] },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
    ] });
  await post({ id: 'pbc_members00001', name: 'members', type: 'auth',
    listRule: '', viewRule: '', manageRule: '@request.auth.collectionName = "users" && @request.auth.name = "User 0"',
    fields: [{ name: 'nick', type: 'text' }, { name: 'buddy', type: 'relation', collectionId: USERS, maxSelect: 1 }],
    passwordAuth: { enabled: true, identityFields: ['email'] } });
  await post({ id: 'pbc_places000001', name: 'places', type: 'base',
    listRule: 'geoDistance(loc.lon, loc.lat, 0, 0) < 3000 || @collection.tags:t.name ?= "alpha" && @collection.tags:t.weight > 50 && @request.auth.id != ""',
    viewRule: '', fields: [{ name: 'name', type: 'text' }, { name: 'loc', type: 'geoPoint' }] });

  const rand = rng(99);
  const pickUser = () => seeded.users[Math.floor(rand() * seeded.users.length)].id;
  const tagNames = ['alpha', 'beta', 'gamma', 'delta', 'eps<&>', 'zeta_%', 'ünï'];
  const tagIds = tagNames.map(() => makeId(rand));
  await batch(url, token, tagNames.map((name, i) => ({ method: 'POST', url: '/api/collections/tags/records',
    body: { id: tagIds[i], name, weight: i * 20 + 0.5, meta: i % 2 ? { k: i, nested: { z: 1, a: [i, 'x'] }, '10': 1, '9': 2 } : [i, 1e21, 'é'] } })));
  const docIds = Array.from({ length: 30 }, () => makeId(rand));
  const statuses = ['draft', 'public', 'secret'];
  await batch(url, token, docIds.map((id, i) => ({ method: 'POST', url: '/api/collections/docs/records', body: {
    id, title: `Doc ${i} ${tagNames[i % 7]}`, body: `<p>Doc <b>${i}</b> body&amp;more</p><p>second para ${'word '.repeat(i % 6)}</p>`,
    owner: i % 5 === 4 ? '' : pickUser(), editors: seeded.users.filter(() => rand() < 0.2).slice(0, 3).map((u) => u.id),
    tags: tagIds.filter(() => rand() < 0.3), status: statuses[i % 3], labels: ['open', 'closed', 'hot', 'cold'].filter(() => rand() < 0.35),
    score: i % 4 === 0 ? 0 : Math.round(rand() * 1000) / 10, data: i % 3 === 0 ? null : { n: i, tags: ['a', 'b'].slice(0, i % 3), s: `v${i % 4}` },
    note: `secret ${i}`, due: i % 2 ? `2026-0${1 + (i % 9)}-1${i % 10} 10:00:00.000Z` : '', loc: { lon: (i * 7) % 180 - 90, lat: (i * 11) % 90 - 45 },
  } })));
  await batch(url, token, Array.from({ length: 25 }, (_, i) => ({ method: 'POST' as const, url: '/api/collections/grants/records',
    body: { user: seeded.users[i % 3].id, doc: docIds[Math.floor(rand() * docIds.length)], level: i % 4 } })));
  await batch(url, token, Array.from({ length: 40 }, (_, i) => ({ method: 'POST' as const, url: '/api/collections/notes/records',
    body: { author: pickUser(), doc: docIds[i % docIds.length], text: i % 4 === 0 ? `PUBLIC note ${i}` : `note ${i}`,
      labels: ['open', 'closed', 'hot', 'cold'].filter(() => rand() < 0.4) } })));
  await batch(url, token, Array.from({ length: 8 }, (_, i) => ({ method: 'POST' as const, url: '/api/collections/members/records',
    body: { email: `m${i}@example.com`, password: 'member-pass-1', passwordConfirm: 'member-pass-1', nick: `nick${i}`,
      emailVisibility: i % 2 === 0, buddy: seeded.users[i % seeded.users.length].id } })), { chunk: 8 });
  await batch(url, token, Array.from({ length: 12 }, (_, i) => ({ method: 'POST' as const, url: '/api/collections/places/records',
    body: { name: `Place ${i}`, loc: { lon: i * 3 - 10, lat: i * 2 - 5 } } })));
  await createCallerCollections(url, token, seeded);
}

/**
 * `9staff` (auth, never replicated: its name starts with a digit), `boards` (rules on the caller's
 * collection and ids only: answerable for every caller), `vaults` (a rule on @request.auth.tokenKey:
 * only PocketBase can evaluate it), custom _superusers fields and a second superuser.
 */
async function createCallerCollections(url: string, token: string, seeded: Seeded): Promise<void> {
  const post = (body: unknown) => api(url, '/api/collections', { method: 'POST', token, body });
  await post({ id: 'pbc_staff0000001', name: STAFF_COLLECTION, type: 'auth', listRule: '', viewRule: 'id = @request.auth.id',
    fields: [{ name: 'nick', type: 'text' }, { name: 'pet', type: 'relation', collectionId: USERS, maxSelect: 1 }],
    passwordAuth: { enabled: true, identityFields: ['email'] } });
  await batch(url, token, Array.from({ length: 3 }, (_, i) => ({ method: 'POST' as const, url: `/api/collections/${STAFF_COLLECTION}/records`,
    body: { email: `staff${i}@example.com`, password: 'staff-pass-1', passwordConfirm: 'staff-pass-1', nick: `staff ${i}`,
      emailVisibility: i === 0, verified: i !== 2, pet: seeded.users[i].id } })), { chunk: 3 });
  await post({ id: 'pbc_boards000001', name: 'boards', type: 'base',
    listRule: `owner = @request.auth.id || @request.auth.collectionName = "${STAFF_COLLECTION}" || (public = true && @request.auth.collectionId != "")`,
    viewRule: `@request.auth.collectionId = "pbc_staff0000001" || owner = @request.auth.id || public = true`,
    fields: [{ name: 'title', type: 'text' }, { name: 'owner', type: 'relation', collectionId: USERS, maxSelect: 1 },
      { name: 'public', type: 'bool' }, { name: 'rank', type: 'number' }, { name: 'created', type: 'autodate', onCreate: true, onUpdate: false }] });
  await post({ id: 'pbc_vaults000001', name: 'vaults', type: 'base', listRule: '@request.auth.id != "" && @request.auth.tokenKey != ""',
    viewRule: 'owner = @request.auth.id', fields: [{ name: 'label', type: 'text' }, { name: 'owner', type: 'relation', collectionId: USERS, maxSelect: 1 }] });
  const rand = rng(123);
  await batch(url, token, Array.from({ length: 24 }, (_, i) => ({ method: 'POST' as const, url: '/api/collections/boards/records',
    body: { title: `Board ${i % 7}`, owner: i % 6 === 5 ? '' : seeded.users[Math.floor(rand() * 4)].id, public: i % 3 === 0, rank: i % 4 } })));
  await batch(url, token, Array.from({ length: 6 }, (_, i) => ({ method: 'POST' as const, url: '/api/collections/vaults/records',
    body: { label: `Vault ${i}`, owner: seeded.users[i % 3].id } })));

  // Custom fields on _superusers, the second superuser, and values for both.
  const su = await api<{ fields: unknown[] }>(url, '/api/collections/_superusers', { token });
  await api(url, '/api/collections/_superusers', { method: 'PATCH', token, body: { fields: [...su.fields,
    { name: 'nick', type: 'text' }, { name: 'level', type: 'number' }, { name: 'buddy', type: 'relation', collectionId: USERS, maxSelect: 1 },
    { name: 'notes', type: 'text', hidden: true }] } });
  const me = await api<{ items: Array<{ id: string }> }>(url, `/api/collections/_superusers/records?filter=${encodeURIComponent(`email = "${SUPERUSER.email}"`)}`, { token });
  await api(url, `/api/collections/_superusers/records/${me.items[0].id}`, { method: 'PATCH', token,
    body: { nick: 'boss', level: 3, buddy: seeded.users[0].id, notes: 'first' } });
  await api(url, '/api/collections/_superusers/records', { method: 'POST', token, body: {
    email: SUPERUSER2.email, password: SUPERUSER2.password, passwordConfirm: SUPERUSER2.password, emailVisibility: true,
    nick: 'Second', level: 0, buddy: seeded.users[1].id, notes: '' } });
}

/** Signs in the extra callers (through the sidecar and at PocketBase) and adds them to env.identities. */
export async function addCallers(env: ReadsEnv): Promise<Identity[]> {
  const both = async (name: string, collection: string, email: string, password: string): Promise<Identity> => {
    const { token, id } = await authToken(env.pb.url, collection, email, password);
    const { token: key } = await authToken(env.url, collection, email, password);
    return { name, key, token, id };
  };
  const added = [
    await both('user2', 'users', env.seeded.users[2].email, USER_PASSWORD),
    await both('user3', 'users', env.seeded.users[3].email, USER_PASSWORD),
    await both('member0', 'members', 'm0@example.com', 'member-pass-1'),
    await both('member1', 'members', 'm1@example.com', 'member-pass-1'),
    await both('staff0', STAFF_COLLECTION, 'staff0@example.com', 'staff-pass-1'),
    await both('staff2', STAFF_COLLECTION, 'staff2@example.com', 'staff-pass-1'),
    await both('superuser2', '_superusers', SUPERUSER2.email, SUPERUSER2.password),
  ];
  env.identities.push(...added);
  return added;
}
