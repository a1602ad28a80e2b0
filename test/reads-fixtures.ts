// Extra collections for the read-path differential tests: rules that use every construct the read path
// supports (@request.auth relations and back-relations, @request.query/headers/method/context,
// @collection joins with aliases, multi-match, modifiers, macros, strftime, geoDistance, manageRule),
// seeded deterministically next to the reference schema.
import { api } from './harness/dump.js';
import { batch, makeId, rng, type Seeded } from './harness/seed.js';

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
}
