// Seeds the reference schema through PocketBase's batch API as a superuser, with client-chosen ids
// so relations can be wired without reading responses. Deterministic for a given seed.
import { api } from './dump.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

export function makeId(rand: () => number): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '';
  for (let i = 0; i < 15; i++) id += chars[Math.floor(rand() * chars.length)];
  return id;
}

export interface BatchRequest {
  method: 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  url: string;
  body?: Record<string, unknown>;
}

/** Sends requests through /api/batch in chunks, `parallel` batches at a time. */
export async function batch(url: string, token: string, requests: BatchRequest[], opts: { chunk?: number; parallel?: number; onProgress?: (done: number) => void } = {}): Promise<void> {
  const chunk = opts.chunk ?? 100;
  const chunks: BatchRequest[][] = [];
  for (let i = 0; i < requests.length; i += chunk) chunks.push(requests.slice(i, i + chunk));
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < chunks.length) {
      const c = chunks[next++];
      await api(url, '/api/batch', { method: 'POST', token, body: { requests: c } });
      done += c.length;
      opts.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: opts.parallel ?? 2 }, worker));
}

export interface SeedCounts {
  users: number;
  posts: number;
  comments: number;
  likes: number;
  follows: number;
}

export interface Seeded {
  users: { id: string; email: string; password: string }[];
  posts: string[];
  /** `post + user` of every like and `follower + following` of every follow created. */
  likePairs: Set<string>;
  followPairs: Set<string>;
  /** Posts created unpublished. */
  drafts: Set<string>;
}

export const USER_PASSWORD = 'seed-password-1';

/** Seeds users, posts, comments, likes and follows with a skew towards a few popular authors and posts. */
export async function seedReference(url: string, token: string, counts: SeedCounts, seed = 1, onProgress?: (what: string, done: number) => void): Promise<Seeded> {
  const rand = rng(seed);
  const skewed = (n: number) => Math.floor(n * rand() ** 3); // low indexes are popular
  const users = Array.from({ length: counts.users }, (_, i) => ({ id: makeId(rand), email: `user${i}.${seed}@example.com`, password: USER_PASSWORD }));
  await batch(url, token, users.map((u, i) => ({
    method: 'POST', url: '/api/collections/users/records',
    body: { id: u.id, email: u.email, password: u.password, passwordConfirm: u.password, name: `User ${i}`, emailVisibility: i % 3 === 0, verified: true },
  })), { chunk: 20, onProgress: (d) => onProgress?.('users', d) });
  const tags = ['news', 'tech', 'fun', 'misc'];
  const posts = Array.from({ length: counts.posts }, () => makeId(rand));
  const drafts = new Set<string>();
  await batch(url, token, posts.map((id, i) => ({
    method: 'POST', url: '/api/collections/posts/records',
    body: {
      id, title: `Post ${i} about ${tags[i % 4]}`, body: `<p>Body of post ${i}. ${'lorem ipsum '.repeat(1 + (i % 5))}</p>`,
      author: users[skewed(users.length)].id, published: rand() < 0.8 ? true : (drafts.add(id), false), tags: tags.filter(() => rand() < 0.3).slice(0, 3),
      category: ['a', 'b', 'c'][i % 3], likes: 0, meta: { n: i, flag: i % 2 === 0 }, secret: `s${i}`,
      published_at: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(),
    },
  })), { onProgress: (d) => onProgress?.('posts', d) });
  await batch(url, token, Array.from({ length: counts.comments }, (_, i) => ({
    method: 'POST' as const, url: '/api/collections/comments/records',
    body: { post: posts[skewed(posts.length)], author: users[Math.floor(rand() * users.length)].id, text: `Comment ${i}` },
  })), { onProgress: (d) => onProgress?.('comments', d) });
  const likePairs = new Set<string>();
  const likes: BatchRequest[] = [];
  for (let guard = 0; likes.length < counts.likes && guard < counts.likes * 20; guard++) {
    const p = posts[skewed(posts.length)];
    const u = users[Math.floor(rand() * users.length)].id;
    if (likePairs.has(p + u)) continue;
    likePairs.add(p + u);
    likes.push({ method: 'POST', url: '/api/collections/likes/records', body: { post: p, user: u } });
  }
  await batch(url, token, likes, { onProgress: (d) => onProgress?.('likes', d) });
  const followPairs = new Set<string>();
  const follows: BatchRequest[] = [];
  for (let guard = 0; follows.length < counts.follows && guard < counts.follows * 20; guard++) {
    const a = users[Math.floor(rand() * users.length)].id;
    const b = users[skewed(users.length)].id;
    if (a === b || followPairs.has(a + b)) continue;
    followPairs.add(a + b);
    follows.push({ method: 'POST', url: '/api/collections/follows/records', body: { follower: a, following: b } });
  }
  await batch(url, token, follows, { onProgress: (d) => onProgress?.('follows', d) });
  return { users, posts, likePairs, followPairs, drafts };
}
