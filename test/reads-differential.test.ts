// Differential suite: the same list/view requests to PocketBase 0.40.4 and to the read path, as eleven
// callers (anonymous, four users, two members of a replicated auth collection, two of an auth collection
// the replica does not hold, two superusers with custom fields), compared byte for byte after
// normalising only what PocketBase leaves undefined (order without a sort or between ties, map key order
// when `fields` is used). Fallbacks to PocketBase are checked exactly: every one must have a reason the
// replica cannot know the answer for, and the count per reason must be what each case predicts. The
// sidecar answers on two read threads (reads-count.test.ts runs its lists on the main thread).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { stringifyGo } from '../sidecar/reads/json.js';
import { api } from './harness/dump.js';
import { rng } from './harness/seed.js';
import { addCallers, createExtraCollections, STAFF_COLLECTION } from './reads-fixtures.js';
import { both, startReadsEnv, type Exchange, type Identity, type ReadsEnv } from './reads-env.js';

let env: ReadsEnv;

/** The only reasons a read of a replicated collection may go to PocketBase: it alone knows the answer. */
const UNAVOIDABLE: Record<string, string> = {
  collection_not_replicated: 'no such collection in the replica (a view, a system collection, or none: only PocketBase knows which)',
  empty_id: "'/records/' is not the record route (PocketBase's static files answer it)",
  field_not_replicated: 'password and tokenKey values never leave PocketBase',
  auth_record_not_replicated: 'a field of a caller whose auth collection the replica does not hold',
};

before(async () => {
  env = await startReadsEnv({
    counts: { users: 12, posts: 120, comments: 200, likes: 150, follows: 40 },
    setup: (url, token, seeded) => createExtraCollections(url, token, seeded),
  });
  await addCallers(env);
}, { timeout: 150_000 });

after(async () => { await env?.stop(); });

interface Case {
  path: string;
  ordered: boolean;
  /** The fallback this case causes for this caller, when it is not the default one (see expectedFallback). */
  expect?: (who: Identity, pb: Exchange) => string | null;
}

type Kind = 'anon' | 'user' | 'staff' | 'superuser';
function kindOf(who: Identity): Kind {
  if (!who.key) return 'anon';
  if (who.name.startsWith('superuser')) return 'superuser';
  return who.name.startsWith('staff') ? 'staff' : 'user';
}

const REPLICATED = new Set(['posts', 'comments', 'likes', 'follows', 'blocks', 'audit_log', 'users', 'tags', 'docs', 'grants', 'notes', 'members',
  'places', 'boards', 'vaults', 'pbc_1125843985']);
/** List rules that read more of the caller than its ids, and the one that reads @request.auth.tokenKey. */
const LIST_READS_CALLER = new Set(['docs', 'notes', 'vaults']);
const LIST_READS_SECRET = new Set(['vaults']);

/**
 * The fallback PocketBase's answer `pb` implies for a case: collections the replica does not hold, the
 * `/records/` path, rules reading a non-replicated caller's fields (or a tokenKey), manage rules run on
 * the members listed; the case's own expectation (secret fields) first.
 */
function expectedFallback(c: Case, who: Identity, pb: Exchange): string | null {
  const m = /^\/api\/collections\/([^/?]+)\/records(\/[^?]*)?/.exec(c.path)!;
  const coll = decodeURIComponent(m[1]).toLowerCase();
  // `/records/` is not routed as a read at all (the route table sends it to PocketBase as it is).
  if (m[2] === '/') return null;
  if (!REPLICATED.has(coll)) return 'collection_not_replicated';
  if (c.expect) {
    const r = c.expect(who, pb);
    if (r !== null) return r;
  }
  const kind = kindOf(who);
  // 403s come before any rule is compiled.
  if (pb.status === 403 || kind === 'anon' || kind === 'superuser') return null;
  if (m[2] === undefined && kind === 'staff' && LIST_READS_CALLER.has(coll)) return 'auth_record_not_replicated';
  // A filter through grants.doc brings docs' list rule along.
  if (m[2] === undefined && kind === 'staff' && coll === 'grants' && /[?&]filter=[^&]*doc\./.test(decodeURIComponent(c.path))) return 'auth_record_not_replicated';
  if (m[2] === undefined && kind === 'user' && LIST_READS_SECRET.has(coll)) return 'field_not_replicated';
  // members' manageRule reads @request.auth.name whenever members are shown.
  if (kind === 'staff' && coll === 'members' && pb.status === 200 && /"collectionName":"members"/.test(pb.body)) return 'auth_record_not_replicated';
  return null;
}

function normalise(body: string, c: Case, status: number): string {
  if (status !== 200) return body;
  const fields = /[?&]fields=/.test(c.path);
  if (c.ordered && !fields) return body;
  const v = JSON.parse(body) as Record<string, unknown>;
  if (!c.ordered && Array.isArray(v.items)) (v.items as Array<Record<string, unknown>>).sort((a, b) => String(a.id).localeCompare(String(b.id)));
  return stringifyGo(v);
}

const mismatches: string[] = [];
const extraRecords: string[] = [];
let compared = 0;
const expected = new Map<string, number>();

async function check(c: Case, who: Identity): Promise<void> {
  const r = await both(env, c.path, who);
  compared++;
  const reason = expectedFallback(c, who, r.pb);
  if (reason) expected.set(reason, (expected.get(reason) ?? 0) + 1);
  const a = normalise(r.pb.body, c, r.pb.status);
  const b = normalise(r.sc.body, c, r.sc.status);
  if (r.pb.status !== r.sc.status || a !== b) {
    mismatches.push(`${who.name} ${c.path}\n  PB ${r.pb.status} ${a.slice(0, 400)}\n  SC ${r.sc.status} ${b.slice(0, 400)}`);
  }
  // Never a record PocketBase did not return.
  if (r.sc.status === 200 && r.pb.status === 200) {
    const ids = (s: string) => new Set(((JSON.parse(s).items ?? [JSON.parse(s)]) as Array<{ id?: string }>).map((x) => x.id));
    const pbIds = ids(r.pb.body);
    for (const id of ids(r.sc.body)) if (!pbIds.has(id)) extraRecords.push(`sidecar returned ${id} that PocketBase did not: ${who.name} ${c.path}`);
  }
}

async function runJobs(jobs: Array<() => Promise<void>>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 6 }, async () => { while (next < jobs.length) await jobs[next++](); }));
}

async function runAll(cases: Case[], identities: Identity[]): Promise<void> {
  await runJobs(cases.flatMap((c) => identities.map((who) => () => check(c, who))));
}

/** Starts a measured batch: mismatches, exchanges and expected fallbacks from zero. */
async function startBatch(): Promise<void> {
  await env.resetFallbacks();
  mismatches.length = 0;
  extraRecords.length = 0;
  compared = 0;
  expected.clear();
}

/** Ends a batch: no mismatch, and exactly the fallbacks the cases predict, each for an unavoidable reason. */
async function endBatch(t: { diagnostic(s: string): void }, what: string): Promise<void> {
  const seen = await env.fallbacks();
  t.diagnostic(`${what}: ${compared} exchanges compared, ${mismatches.length} mismatches (${extraRecords.length} with records PocketBase did not return), fallbacks ${JSON.stringify(seen)}`);
  assert.deepEqual(extraRecords.slice(0, 10), [], 'records PocketBase did not return');
  assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} mismatches of ${compared}`);
  for (const [reason] of seen) assert.ok(reason in UNAVOIDABLE, `fallback for a reason the replica could answer: ${reason}`);
  assert.deepEqual(Object.fromEntries(seen), Object.fromEntries(expected), 'fallbacks by reason');
}

const enc = encodeURIComponent;

function handCases(): Case[] {
  const u0 = env.seeded.users[0].id;
  const p0 = env.seeded.posts[0];
  const L = (coll: string, qs: string, ordered = true): Case => ({ path: `/api/collections/${coll}/records${qs ? '?' + qs : ''}`, ordered });
  const F = (coll: string, filter: string, extra = 'perPage=500'): Case => L(coll, `filter=${enc(filter)}&${extra}`, extra.includes('sort='));
  return [
    L('posts', ''), L('posts', 'perPage=20&sort=-created'), L('posts', 'page=3&perPage=7&sort=title,id'), L('posts', 'sort=@rowid&perPage=5'),
    L('posts', 'sort=-@rowid&perPage=5&page=2'), L('posts', 'skipTotal=1&perPage=4&sort=-likes,id'), L('posts', 'perPage=0&page=0&sort=id'),
    L('posts', 'perPage=5000&sort=id'), L('posts', 'perPage=-3&page=-1&sort=id'), L('posts', 'page=999&sort=id'), L('posts', 'skipTotal=t&sort=id'),
    L('posts', 'page=abc'), L('posts', 'perPage=1.5'), L('posts', 'skipTotal=yes'), L('posts', 'sort=nope'), L('posts', 'sort=secret'),
    L('posts', 'sort=author.name,id&perPage=50'), L('posts', 'sort=-coauthors.name,id&perPage=500', false), L('posts', 'sort=meta.n,id'),
    L('posts', 'sort=@random&perPage=500', false), L('posts', 'sort=' + enc('@request.auth.id')), L('posts', 'filter=' + enc('@collection.users.name = "x"')),
    F('posts', 'title ~ "Post 1"'), F('posts', 'published = true && likes >= 0'), F('posts', 'author.name = "User 0"'), F('posts', `author = "${u0}"`),
    F('posts', 'author.email ~ "example"'), F('posts', 'coauthors.name ?= "User 1"'), F('posts', 'tags ?= "news"'), F('posts', 'tags:each ?= "news"'),
    F('posts', 'tags:each = "news"'), F('posts', 'tags:length > 1'), F('posts', 'tags ~ "tec"'), F('posts', 'meta.n > 50'), F('posts', 'meta.flag = true'),
    F('posts', 'meta.arr ?= 2'), F('posts', 'meta = null'), F('posts', 'secret = "s1"'), F('posts', 'title:lower ~ "post 2"'), F('posts', 'created <= @now'),
    F('posts', 'created >= @todayStart && created <= @todayEnd'), F('posts', 'published_at > "2026-01-01 01:00:00.000Z"'), F('posts', 'comments_via_post.text ?= "Comment 5"'),
    F('posts', 'comments_via_post.text = "Comment 5"'), F('posts', 'comments_via_post:length > 1'), F('posts', 'likes_via_post.user ?= "' + u0 + '"'),
    F('posts', `author.follows_via_following.follower ?= "${u0}"`), F('posts', 'title = null || body != ""'), F('posts', '(title ~ "1" || title ~ "2") && published = false'),
    F('posts', 'title ~ "%ost 1%"'), F('posts', 'title ~ "Post\\_1"'), F('posts', 'title !~ "about"'), F('posts', 'category = "a" && category != "b"'),
    F('posts', 'likes = 0 && likes != 1.5'), F('posts', 'TRUE = true'), F('posts', 'id = "' + p0 + '"'), F('posts', 'coauthors:length = 0'),
    F('posts', 'author.posts_via_author.title ?~ "Post 3"'), F('posts', 'strftime("%Y", created) = "2026"'), F('posts', 'author.internal_notes = ""'),
    F('posts', '@request.auth.id != ""'), F('posts', 'bogus = 1'), F('posts', 'title:foo = 1'), F('posts', 'title = "unterminated'),
    L('posts', 'perPage=3&sort=-created,id&expand=author,coauthors,comments_via_post,likes_via_post.user'), L('posts', 'perPage=3&sort=id&expand=' + enc(' author.posts_via_author.author , author ')),
    L('posts', 'perPage=3&sort=id&expand=nope,author.nope'), L('posts', 'perPage=4&sort=id&fields=' + enc('id,title,expand.author.name,body:excerpt(12,true)') + '&expand=author'),
    L('posts', 'perPage=4&sort=id&fields=' + enc('*,expand.author.email') + '&expand=author'), L('posts', 'perPage=2&sort=id&fields=' + enc('meta.n,id')),
    L('comments', 'perPage=10&sort=-created,id&expand=post.author,author'), F('comments', 'post.published = false'), F('comments', 'post.author.name ~ "User"'),
    L('comments', 'perPage=5&sort=id&expand=post.comments_via_post.author'),
    L('users', 'sort=name'), L('users', 'sort=-email,id'), F('users', 'email ~ "user1"'), F('users', 'emailVisibility = false'), F('users', 'internal_notes = ""'),
    F('users', 'follows_via_follower.following.name ?= "User 0"'), L('users', 'sort=id&expand=posts_via_author'),
    L('likes', 'sort=id&perPage=40&expand=post,user'), L('follows', 'sort=id&expand=follower,following'), L('blocks', ''), L('audit_log', ''),
    L('nope', ''), L('POSTS', 'sort=id&perPage=3'), L('pbc_1125843985', 'sort=id&perPage=3'),
    L('docs', 'sort=id'), L('docs', 'sort=id&preview=yes'), L('docs', 'sort=id&expand=owner,editors,tags,grants_via_doc,notes_via_doc'),
    F('docs', 'labels:each ?= "hot"'), F('docs', 'editors.name ?= "User 2"'), F('docs', 'tags.weight > 30'), F('docs', 'data.n > 3'), F('docs', 'data.tags:length > 0'),
    F('docs', 'loc.lon > 0'), F('docs', 'geoDistance(loc.lon, loc.lat, 10, 10) < 5000'), F('docs', 'note ~ "secret"'), F('docs', 'score = 0'), F('docs', 'due > @yesterday'),
    F('docs', 'grants_via_doc.level ?> 1'), F('docs', 'tags.name ?~ "%"'), F('docs', 'tags.name ?~ "_"'), F('docs', 'tags.name ?= "eps<&>"'),
    L('docs', 'sort=id&fields=' + enc('id,body:excerpt(15),title:excerpt(3,1)')), L('docs', 'sort=-score,id&perPage=7&page=2'),
    L('grants', 'sort=id&expand=doc.owner'), L('notes', 'sort=id'), L('notes', 'sort=id&secret=1'), L('notes', 'sort=id&expand=doc,author'),
    L('members', 'sort=id'), L('members', 'sort=id&expand=buddy'), F('members', 'email ~ "m1"'), L('places', 'sort=id'), L('tags', 'sort=id'),
    L('tags', 'sort=id&filter=' + enc('meta.k > 0 || meta.nested.a.0 = 1')),
    L('boards', 'sort=-rank,id'), L('boards', 'sort=created,-id&expand=owner&perPage=5&page=2'), F('boards', `owner = "${u0}" || public = false`),
    L('vaults', 'sort=label'), L('vaults', 'sort=-label&filter=' + enc('owner.name ~ "User"')), L(STAFF_COLLECTION, 'sort=id'),
    L('members', 'sort=-nick&filter=' + enc('buddy.name ~ "User"')),
  ];
}

function viewCases(): Case[] {
  const ids = [env.seeded.posts[0], env.seeded.posts[1], env.seeded.posts[5], 'missing', ''];
  const V = (coll: string, id: string, qs = ''): Case => ({ path: `/api/collections/${coll}/records/${id}${qs ? '?' + qs : ''}`, ordered: true });
  return [
    ...ids.flatMap((id) => [V('posts', id), V('posts', id, 'expand=author,comments_via_post&fields=' + enc('id,expand.comments_via_post.text'))]),
    V('users', env.seeded.users[0].id), V('users', env.seeded.users[3].id, 'expand=posts_via_author'), V('audit_log', 'missing'),
    V('comments', 'missing'), V('nope', 'x'),
  ];
}

describe('read path vs PocketBase', () => {
  it('hand-written cases (reference schema and extra collections), every caller', { timeout: 240_000 }, async (t) => {
    await startBatch();
    const cases = [...handCases(), ...viewCases()];
    await runAll(cases, env.identities);
    // Docs/notes/boards views need their own ids.
    const idsOf = async (coll: string) => (JSON.parse((await both(env, `/api/collections/${coll}/records?perPage=500&sort=id`, env.identities[3])).pb.body).items as Array<{ id: string }>).map((d) => d.id);
    const [docIds, noteIds, boardIds, memberIds] = [await idsOf('docs'), await idsOf('notes'), await idsOf('boards'), await idsOf('members')];
    await runAll([...docIds.slice(0, 12), 'nope'].map((id) => ({ path: `/api/collections/docs/records/${id}?expand=owner`, ordered: true })), env.identities);
    await runAll(noteIds.slice(0, 12).map((id) => ({ path: `/api/collections/notes/records/${id}`, ordered: true })), env.identities);
    await runAll(boardIds.slice(0, 12).map((id) => ({ path: `/api/collections/boards/records/${id}?expand=owner`, ordered: true })), env.identities);
    await runAll(memberIds.slice(0, 3).map((id) => ({ path: `/api/collections/members/records/${id}?expand=buddy`, ordered: true })), env.identities);
    await endBatch(t, 'hand-written');
  });

  it('superusers filtering and sorting on password and tokenKey: PocketBase answers, counted', { timeout: 120_000 }, async (t) => {
    await startBatch();
    await runAll(secretCases(), env.identities);
    await endBatch(t, 'secret fields');
  });

  it("a superuser's own record in filters (@request.auth.*: plain fields, custom fields, relations)", { timeout: 180_000 }, async (t) => {
    await startBatch();
    const cases = await superuserAuthCases(500, 4711);
    const supers = env.identities.filter((w) => kindOf(w) === 'superuser');
    const others = env.identities.filter((w) => kindOf(w) !== 'superuser');
    await runJobs(cases.flatMap((c, i) => [...supers, others[i % others.length]].map((who) => () => check(c, who))));
    await endBatch(t, 'superuser @request.auth');
  });

  it('`fields` the picker rejects get its 400 from the replica; every excerpt length as cast.ToInt reads it', { timeout: 120_000 }, async (t) => {
    await startBatch();
    await runAll(fieldsCases(), env.identities);
    await endBatch(t, 'fields');
  });

  it('pages without a sort and with ties where the replica runs PocketBase\'s plan: byte for byte, in its order', { timeout: 120_000 }, async (t) => {
    await startBatch();
    await runAll(planCases(), env.identities.filter((w) => ['anon', 'user1', 'user3', 'superuser', 'superuser2'].includes(w.name)));
    await endBatch(t, 'plan order (mirrored plans)');
  });

  it('pages without a sort and with ties, generated (joins first, OR splits, partial sorts): PocketBase\'s order and pages', { timeout: 200_000 }, async (t) => {
    // ORDER_CASES / ORDER_SEED run other sizes and seeds; ORDER_DUMP=file writes the differences found.
    await startBatch();
    const cases = orderCases(Number(process.env.ORDER_CASES ?? 700), Number(process.env.ORDER_SEED ?? 99));
    await runJobs(cases.map((c, i) => () => check(c, env.identities[i % env.identities.length])));
    if (process.env.ORDER_DUMP) writeFileSync(process.env.ORDER_DUMP, mismatches.join('\n'));
    await endBatch(t, 'plan order (generated)');
  });

  it('1,500 filters/sorts/expands generated from the grammar, round robin over every caller', { timeout: 200_000 }, async (t) => {
    await startBatch();
    const cases = generate(1500, 20260);
    await runJobs(cases.map((c, i) => () => check(c, env.identities[i % env.identities.length])));
    await endBatch(t, 'generated');
  });
});

// ---------------------------------------------------------------------------------------------------
// Secret fields, a superuser's record, `fields`.

const SECRET_FILTERS: Array<[string, string]> = [
  ['users', 'password != ""'], ['users', 'tokenKey != ""'], ['users', 'password ~ "$2a$"'], ['users', 'tokenKey:lower ~ "a" || name = "User 1"'],
  ['users', 'tokenKey:length > 0'], ['users', 'tokenKey:isset = true'], ['members', 'tokenKey > "m"'], ['members', 'password = "x" || nick ~ "1"'],
  ['posts', 'author.password != ""'], ['posts', 'author.tokenKey ~ "1" && published = true'], ['posts', 'coauthors.tokenKey ?!= ""'],
  ['comments', 'post.author.password != ""'], ['posts', 'comments_via_post.author.tokenKey ?= "x"'], ['posts', '@collection.users.tokenKey ?= author.tokenKey'],
  ['posts', '@collection.members.password != "" && title ~ "1"'], ['likes', 'user.tokenKey != ""'], ['users', 'posts_via_author.author.password ?!= ""'],
  ['posts', '@request.auth.tokenKey != ""'], ['posts', '@request.auth.password != ""'], ['boards', 'owner.tokenKey != "" || rank > 1'],
  ['posts', '@request.auth.buddy.tokenKey != ""'], ['docs', 'editors.tokenKey ?~ "a"'],
];
const SECRET_SORTS: Array<[string, string]> = [
  ['users', 'password'], ['users', '-tokenKey'], ['posts', 'author.tokenKey'], ['posts', '-author.password'], ['members', 'tokenKey'],
  ['comments', '-post.author.tokenKey'], ['users', '-password,id'], ['boards', 'owner.password,-rank'],
];

/** Superusers get PocketBase's answer (counted); everyone else the replica's 400/403. */
const secretFallback = (who: Identity, pb: Exchange) => (kindOf(who) === 'superuser' && pb.status === 200 ? 'field_not_replicated' : null);

function secretCases(): Case[] {
  const L = (coll: string, qs: string): Case => ({ path: `/api/collections/${coll}/records?${qs}`, ordered: true, expect: secretFallback });
  const out: Case[] = [];
  for (const [coll, f] of SECRET_FILTERS) {
    out.push(L(coll, `filter=${enc(f)}&sort=-id&perPage=7`), L(coll, `filter=${enc(f)}&sort=id&perPage=50&skipTotal=1`));
  }
  for (const [coll, s] of SECRET_SORTS) out.push(L(coll, `sort=${enc(s)}&perPage=5`), L(coll, `sort=${enc(s)}&perPage=5&page=2&filter=${enc('id != ""')}`));
  // Views: the filter does not apply; a sort or filter parameter on a view is ignored.
  out.push({ path: `/api/collections/users/records/${env.seeded.users[0].id}?filter=${enc('password != ""')}&sort=tokenKey`, ordered: true });
  return out;
}

interface SuperuserRecord { id: string; email: string; emailVisibility: boolean; verified: boolean; created: string; updated: string; nick: string; level: number; buddy: string; notes: string }

async function superuserAuthCases(n: number, seed: number): Promise<Case[]> {
  const su = (await api<{ items: SuperuserRecord[] }>(env.pb.url, '/api/collections/_superusers/records?sort=created', { token: env.superToken })).items;
  const rand = rng(seed);
  const pickOf = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
  const s = () => pickOf(su);
  const str = (v: unknown) => JSON.stringify(String(v));
  const AUTH: Array<[string, () => string]> = [
    ['id', () => str(s().id)], ['email', () => str(s().email)], ['email:lower', () => str(s().email.toLowerCase())], ['emailVisibility', () => pickOf(['true', 'false'])],
    ['verified', () => pickOf(['true', 'false', '1'])], ['collectionId', () => pickOf(['"pbc_3142635823"', '"_pb_users_auth_"'])],
    ['collectionName', () => pickOf(['"_superusers"', '"users"'])], ['created', () => pickOf([str(s().created), '""', '@now', '"2020-01-01"'])],
    ['updated', () => pickOf([str(s().updated), '@yesterday'])], ['nick', () => pickOf([str(s().nick), '"boss"', '""', '"sec"'])],
    ['nick:lower', () => pickOf(['"boss"', '"second"'])], ['level', () => pickOf(['0', '3', '1.5', '"3"', 'null'])], ['level:isset', () => 'true'],
    ['buddy', () => str(s().buddy)], ['buddy.name', () => pickOf(['"User 0"', '"User 1"', '""'])], ['buddy.email', () => pickOf(['"user0.7@example.com"', '""'])],
    ['buddy.posts_via_author.title', () => pickOf(['"Post 1"', '""'])], ['notes', () => pickOf(['"first"', '""'])], ['bogus', () => pickOf(['null', '""', '"x"'])],
    ['posts_via_author.title', () => '""'], ['buddy.follows_via_follower.following', () => str(env.seeded.users[1].id)],
  ];
  const OPS = ['=', '!=', '~', '!~', '>', '<', '>=', '?=', '?!='];
  const COLLS: Record<string, { filters: string[]; sorts: string[] }> = {
    posts: { filters: ['published = true', 'likes > 3', 'title ~ "1"', 'author.name ~ "User"', 'author = @request.auth.buddy'], sorts: ['created', 'title', 'likes', 'author.name'] },
    users: { filters: ['name ~ "1"', 'verified = true', 'id = @request.auth.buddy', 'emailVisibility = @request.auth.emailVisibility'], sorts: ['name', 'created', 'email'] },
    comments: { filters: ['text ~ "5"', 'post.published = false', 'author = @request.auth.buddy'], sorts: ['created', 'text'] },
    boards: { filters: ['rank >= @request.auth.level', 'public = true', 'owner = @request.auth.buddy'], sorts: ['rank', 'title', 'created'] },
    docs: { filters: ['status = "public"', 'owner.email = @request.auth.buddy.email', 'score > @request.auth.level'], sorts: ['score', 'title'] },
  };
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const coll = pickOf(Object.keys(COLLS));
    const [field, value] = pickOf(AUTH);
    let cond = rand() < 0.85 ? `@request.auth.${field} ${pickOf(OPS)} ${value()}` : `${value()} ${pickOf(OPS)} @request.auth.${field}`;
    if (rand() < 0.5) cond = `(${cond}) ${pickOf(['&&', '||'])} ${pickOf(COLLS[coll].filters)}`;
    if (rand() < 0.2) { const [f2, v2] = pickOf(AUTH); cond += ` && @request.auth.${f2} != ${v2()}`; }
    const dir = rand() < 0.5 ? '-' : '';
    const qs = [`filter=${enc(cond)}`, `sort=${enc(`${dir}${pickOf(COLLS[coll].sorts)},${rand() < 0.5 ? '-' : ''}id`)}`, `perPage=${pickOf([3, 10, 40])}`, `page=${pickOf([1, 1, 2])}`];
    if (rand() < 0.15) qs.push('skipTotal=1');
    if (coll === 'posts' && rand() < 0.2) qs.push('expand=author');
    out.push({ path: `/api/collections/${coll}/records?${qs.join('&')}`, ordered: true });
  }
  // A superuser sorting on its own record's fields (a constant per request) and on its relation.
  for (const f of ['@request.auth.nick', '-@request.auth.level', '@request.auth.buddy.name']) {
    out.push({ path: `/api/collections/posts/records?sort=${enc(f + ',-id')}&perPage=4`, ordered: true });
  }
  return out;
}

const FIELDS_OK = ['id:excerpt(1_0)', 'title:excerpt(010,1)', 'title:excerpt(1.5)', 'title:excerpt(0x_1F,t)', 'title:excerpt(9223372036854775806)',
  'title:excerpt(9223372036854775807,true)', 'title:excerpt(9223372036854775805,1)', 'title:excerpt(+5,0)', 'title:excerpt(0b11)', 'title:excerpt(1.)',
  'title:excerpt(0O17,T)', 'title:excerpt(0_10)', 'title:excerpt(4611686018427387904,1)', '*:excerpt(4,true)', 'id,title:excerpt(-.0e0)', 'id, title:excerpt( 3 , 1 )'];
const FIELDS_BAD = ['id:excerpt(', 'id:foo(1)', 'id:excerpt()', 'id:excerpt(0)', 'id:excerpt(1,2,3)', 'id,"title', 'title:excerpt(9223372036854775808)',
  'title:excerpt(_1)', 'title:excerpt(1__0)', 'title:excerpt(-0)', 'title:excerpt(.5)', 'title:excerpt(1.5e3)', 'title:excerpt(0x)', 'title:excerpt(08)',
  'title:excerpt(-1.5)', "id,'x", 'id,(a', 'title:excerpt(\uff15)', 'title:excerpt(1_)', 'title:excerpt(0x_)', 'title:excerpt(-9223372036854775808)', 'id:excerpt'];

function fieldsCases(): Case[] {
  const out: Case[] = [];
  const post = env.seeded.posts[0];
  for (const f of [...FIELDS_OK, ...FIELDS_BAD]) {
    out.push({ path: `/api/collections/posts/records?sort=-created,id&perPage=4&fields=${enc(f)}`, ordered: true });
    out.push({ path: `/api/collections/posts/records/${post}?fields=${enc(f)}`, ordered: true });
    out.push({ path: `/api/collections/boards/records?sort=title,-id&filter=${enc('title ~ "zz"')}&fields=${enc(f)}`, ordered: true });
  }
  for (const f of FIELDS_BAD.slice(0, 4)) {
    out.push({ path: `/api/collections/posts/records/missing?fields=${enc(f)}`, ordered: true });
    out.push({ path: `/api/collections/audit_log/records?fields=${enc(f)}`, ordered: true });
    out.push({ path: `/api/collections/posts/records?sort=nope&fields=${enc(f)}`, ordered: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Order left to the plan: lists without a sort (joins through rules and filters, filters an index
// serves) and sorts with ties, paged small so that page membership depends on the order too.

const ORDER_FILTERS: Record<string, string[]> = {
  posts: ['', 'author.name ~ "User"', 'comments_via_post.text ?~ "5"', 'tags:each ?= "news"', 'category = "a"', 'category = "b" && published = true',
    'created > "2020-01-01"', 'likes > 2', 'published = true || author.name = "User 3"', 'coauthors.name ?~ "User"', 'likes_via_post.id != ""',
    'likes_via_post.user.name ?= "User 1"', 'comments_via_post.author.name ?= "User 2"', 'author.follows_via_following.follower.name ?= "User 4"'],
  comments: ['', 'text ~ "1"', 'post.published = true', 'post.author.name ~ "User 1"', 'author.name ~ "User"', 'post.category = "a"',
    'post.category = "b" && post.published = true', 'post.author = "" || post.category = "c"'],
  users: ['', 'posts_via_author.title ~ "1"', 'name ~ "User"'],
  likes: ['', 'post.title ~ "Post"', 'user.name ~ "User"', 'post.category = "a"', 'user.name = "User 3"'],
  follows: ['', 'follower.name ~ "User"'],
  docs: ['', 'tags.name ?= "alpha"', 'status = "public"', 'editors.name ?~ "User"', 'tags.weight ?> 30', 'tags.name ?= "beta" || status = "draft"',
    'grants_via_doc.level ?> 1'],
  notes: ['', 'doc.title ~ "Doc"', 'labels:each ?= "open"', 'doc.status = "public"', 'doc.tags.name ?= "alpha"'],
  boards: ['', 'owner.name ~ "User"', 'rank > 1', 'public = true'],
  grants: ['', 'doc.status != "secret"', 'doc.tags.name ?= "alpha"', 'doc.owner.name ~ "User"'],
};
const TIE_SORTS: Record<string, string[]> = {
  posts: ['published', '-published', 'category', '-category', 'likes', '-likes', 'author', '-author', 'author.name', '-published,category', 'category,-likes'],
  comments: ['post', '-post', 'author', '-author', 'post.published', '-post.author'],
  users: ['verified', '-emailVisibility'], likes: ['post', '-user'], follows: ['follower', '-following'],
  docs: ['status', '-status', 'owner'], notes: ['author', '-doc'], boards: ['rank', '-rank', 'public,-rank', 'owner'], grants: ['level', '-user'],
};

/**
 * Plans the replica's SQLite makes as PocketBase's does on this data: DISTINCT scans of the id index (rules
 * and filters through relations, back-relations, `:each`) or of a unique index, OR rules split across
 * indexes, index walks for a filter or a sort (ties in
 * the walk's order, forwards and backwards), table scans (rowid order, the stable sorter keeping it).
 */
function planCases(): Case[] {
  const L = (coll: string, qs: string): Case => ({ path: `/api/collections/${coll}/records?${qs}`, ordered: true });
  const out: Case[] = [];
  const pages = ['perPage=5&page=1', 'perPage=5&page=3', 'perPage=7&page=2&skipTotal=1'];
  for (const pg of pages) {
    out.push(L('comments', pg), L('comments', `${pg}&filter=${enc('text ~ "1"')}`), L('posts', `${pg}&filter=${enc('comments_via_post.text ?~ "5"')}`),
      L('posts', `${pg}&filter=${enc('tags:each ?= "news"')}`), L('docs', pg), L('posts', pg),
      // Unique indexes (held as plain ones): an OR rule split across them, DISTINCT scans they answer.
      L('follows', pg), L('likes', pg), L('likes', `${pg}&sort=post`), L('likes', `${pg}&filter=${enc('user.name ~ "User"')}`),
      L('likes', `${pg}&filter=${enc('post.title ~ "Post"')}`),
      // Plans the replica's own planner makes differently (its statistics, plain indexes): the order is
      // written from PocketBase's plan.
      L('follows', `${pg}&filter=${enc('follower.name ~ "User"')}`), L('posts', `${pg}&filter=${enc('created > "2020-01-01"')}`),
      // OR splits PocketBase's planner makes and the replica's does not: rules with `||` over indexed fields.
      L('follows', `${pg}&sort=-following`), L('posts', `${pg}&filter=${enc('category = "a"')}`));
    for (const sort of ['author', '-author', 'category', '-category', 'published', '-published', 'likes', '-likes']) out.push(L('posts', `${pg}&sort=${sort}`));
    for (const sort of ['post', '-post']) out.push(L('comments', `${pg}&sort=${sort}`));
  }
  return out;
}

function orderCases(n: number, seed: number): Case[] {
  const rand = rng(seed);
  const pickOf = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const coll = pickOf(Object.keys(ORDER_FILTERS));
    const filter = pickOf(ORDER_FILTERS[coll]);
    const qs = [`perPage=${pickOf([3, 5, 10, 30])}`, `page=${pickOf([1, 1, 2, 3])}`];
    if (filter) qs.push(`filter=${enc(filter)}`);
    if (rand() < 0.5) qs.push(`sort=${enc(pickOf(TIE_SORTS[coll]))}`);
    if (rand() < 0.15) qs.push('skipTotal=1');
    out.push({ path: `/api/collections/${coll}/records?${qs.join('&')}`, ordered: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Grammar-driven generator.

const PATHS: Record<string, string[]> = {
  posts: ['title', 'body', 'author', 'author.name', 'author.email', 'author.bio', 'coauthors', 'coauthors.name', 'coauthors.id', 'tags', 'tags:each', 'tags:length',
    'category', 'published', 'likes', 'meta', 'meta.n', 'meta.flag', 'secret', 'created', 'updated', 'published_at', 'id', 'title:lower', 'author.name:lower',
    'comments_via_post.text', 'comments_via_post.author.name', 'likes_via_post.user', 'author.follows_via_following.follower', 'coauthors:length', 'attachment'],
  comments: ['text', 'post', 'post.title', 'post.published', 'post.author.name', 'author', 'author.name', 'created', 'post.tags:each', 'id'],
  users: ['name', 'email', 'emailVisibility', 'verified', 'bio', 'internal_notes', 'posts_via_author.title', 'follows_via_follower.following.name', 'id', 'created'],
  docs: ['title', 'status', 'labels', 'labels:each', 'labels:length', 'score', 'data', 'data.n', 'data.s', 'editors.name', 'editors:length', 'tags.name', 'tags.weight',
    'owner.name', 'note', 'due', 'loc.lon', 'grants_via_doc.level', 'notes_via_doc.text', 'id', 'body'],
  notes: ['text', 'text:lower', 'labels', 'labels:each', 'author.name', 'doc.title', 'doc.status', 'created', 'id'],
  likes: ['post', 'user', 'post.title', 'user.name', 'created'],
  follows: ['follower', 'following', 'follower.name', 'created'],
  boards: ['title', 'owner', 'owner.name', 'public', 'rank', 'created', 'id', 'owner.posts_via_author.title'],
};
const SORTS: Record<string, string[]> = {
  posts: ['title', '-created', 'likes', '-published', 'author.name', 'meta.n', 'category', '@rowid', '-@rowid'],
  comments: ['-created', 'text', 'post.title'], users: ['name', '-created', 'verified'], docs: ['-score', 'title', 'status', 'data.n'],
  notes: ['text', '-created'], likes: ['-created'], follows: ['created'], boards: ['-rank', 'title', 'created', 'owner.name'],
};
const EXPANDS: Record<string, string[]> = {
  posts: ['author', 'coauthors', 'comments_via_post', 'comments_via_post.author', 'likes_via_post', 'author.posts_via_author'],
  comments: ['post', 'author', 'post.author'], users: ['posts_via_author', 'follows_via_follower.following'], docs: ['owner', 'editors', 'tags', 'grants_via_doc'],
  notes: ['author', 'doc', 'doc.owner'], likes: ['post', 'user'], follows: ['follower', 'following'], boards: ['owner', 'owner.posts_via_author'],
};
const OPS = ['=', '!=', '>', '>=', '<', '<=', '~', '!~', '?=', '?!=', '?>', '?>=', '?<', '?<=', '?~', '?!~'];

function generate(n: number, seed: number): Case[] {
  const rand = rng(seed);
  const pickOf = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
  const values = () => {
    const r = rand();
    if (r < 0.25) return JSON.stringify(pickOf(['Post 1', 'User 0', '', 'nice', '%', '_', 'Doc', 'PUBLIC', 'é', 'User', 'news', 'open', 'a', 'public', 'v1', 'Comment 1']));
    if (r < 0.4) return String(pickOf([0, 1, 5, 20.5, -1, 100, 1e21, 0.001]));
    if (r < 0.5) return pickOf(['true', 'false', 'null', 'NULL', 'True']);
    if (r < 0.6) return pickOf(['@now', '@todayStart', '@yesterday', '@year', '@monthEnd']);
    if (r < 0.75) return JSON.stringify(pickOf([...env.seeded.users.slice(0, 4).map((u) => u.id), ...env.seeded.posts.slice(0, 4)]));
    if (r < 0.8) return `'${pickOf(['2026', '2026-01-01', 'x"y'])}'`;
    return '';
  };
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const coll = pickOf(Object.keys(PATHS));
    const paths = PATHS[coll];
    const cmp = () => {
      const left = rand() < 0.1 ? pickOf(['@request.auth.id', '@request.auth.name', '@request.auth.email', '@request.auth.nick', '@request.auth.collectionName', '@collection.users.name', '@request.query.x']) : pickOf(paths);
      const v = values();
      const right = v === '' || rand() < 0.1 ? pickOf(paths) : v;
      return rand() < 0.1 ? `${right} ${pickOf(OPS)} ${left}` : `${left} ${pickOf(OPS)} ${right}`;
    };
    const expr = (depth: number): string => {
      const k = 1 + Math.floor(rand() * 3);
      const parts = Array.from({ length: k }, () => (depth < 2 && rand() < 0.25 ? `(${expr(depth + 1)})` : cmp()));
      return parts.reduce((acc, p) => `${acc} ${rand() < 0.6 ? '&&' : '||'} ${p}`);
    };
    const qs: string[] = [];
    if (rand() < 0.85) qs.push('filter=' + enc(expr(0)));
    const sorted = rand() < 0.6;
    if (sorted) {
      const s = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => pickOf(SORTS[coll]));
      qs.push('sort=' + enc([...s, 'id'].join(',')));
      qs.push(`perPage=${pickOf([5, 10, 30])}`, `page=${pickOf([1, 1, 2])}`);
    } else {
      qs.push('perPage=500');
    }
    if (rand() < 0.2) qs.push('skipTotal=1');
    if (rand() < 0.25) qs.push('expand=' + enc(pickOf(EXPANDS[coll]) + (rand() < 0.3 ? ',' + pickOf(EXPANDS[coll]) : '')));
    if (rand() < 0.1) qs.push('fields=' + enc(pickOf(['id', 'id,created', '*,expand.*', 'id,expand'])));
    out.push({ path: `/api/collections/${coll}/records?${qs.join('&')}`, ordered: sorted });
  }
  return out;
}
