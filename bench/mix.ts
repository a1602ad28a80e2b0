// The request mix of the headline benchmark: a deterministic plan of client sessions over the seeded
// reference data, replayed identically against every target. A session is one visitor (signed in or
// anonymous) whose requests run in order, so a like is always followed by its own unlike and a follow by
// its unfollow: every run starts from the same likes and follows. Records a run creates get ids unique to
// the run (`~` + 11 characters in the plan, completed by `bindIds`).
import { rng } from '../test/harness/seed.js';

export type Kind =
  | 'feed_trending' | 'feed_following' | 'feed_latest' | 'search' | 'list_posts' | 'list_comments'
  | 'view_post' | 'view_user' | 'count_likes' | 'auth_refresh'
  | 'like' | 'unlike' | 'follow' | 'unfollow' | 'comment' | 'new_post';

export const WRITE_KINDS: ReadonlySet<Kind> = new Set(['like', 'unlike', 'follow', 'unfollow', 'comment', 'new_post']);

export interface PlannedRequest {
  kind: Kind;
  method: 'GET' | 'POST' | 'DELETE';
  /** The path through the sidecar. */
  path: string;
  /** The path against PocketBase direct, where it differs (feeds: the nearest list query PocketBase can answer). */
  direct?: string;
  body?: Record<string, unknown>;
}

export interface Session {
  /** Index into the seeded users; -1 for an anonymous visitor. */
  user: number;
  /** The visitor's address, sent as X-Forwarded-For (the sidecar trusts loopback proxies in the benchmark). */
  ip: string;
  requests: PlannedRequest[];
}

export interface MixData {
  users: { id: string }[];
  posts: string[];
  likePairs: Set<string>;
  followPairs: Set<string>;
  /** Unpublished posts (others cannot comment on them). */
  drafts: Set<string>;
}

export interface MixOptions {
  requests: number;
  signedIn: number;
  anonymous: number;
  /** Share of requests that are writes (0..1), spread over signed-in sessions. */
  writeShare: number;
  seed: number;
  /** Reads only (warm-up plans). */
  readOnly?: boolean;
}

/** Relative weights of the read kinds (auth_refresh only for signed-in visitors, following too). */
const READS: [Kind, number][] = [
  ['feed_trending', 14], ['feed_following', 8], ['feed_latest', 6], ['search', 6], ['list_posts', 14],
  ['list_comments', 10], ['view_post', 22], ['view_user', 6], ['count_likes', 4], ['auth_refresh', 1],
];
const TAGS = ['news', 'tech', 'fun', 'misc'];
const q = encodeURIComponent;

export function buildPlan(data: MixData, opts: MixOptions): Session[] {
  const rand = rng(opts.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const skewed = (n: number) => Math.floor(n * rand() ** 3); // a few popular posts and authors
  const sessions = opts.signedIn + opts.anonymous;
  const perSession = Math.ceil(opts.requests / sessions);
  // Writes only come from signed-in visitors, so their share of a signed-in session is scaled up.
  const writeP = opts.readOnly ? 0 : Math.min(1, (opts.writeShare * sessions) / Math.max(1, opts.signedIn));
  const likes = new Set(data.likePairs);
  const follows = new Set(data.followPairs);
  let idn = 0;
  const newId = () => `~${(idn++).toString(36).padStart(11, '0')}`;
  const total = READS.reduce((s, [, w]) => s + w, 0);

  const read = (me: string | null): PlannedRequest => {
    let r = rand() * total;
    let kind: Kind = 'view_post';
    for (const [k, w] of READS) { if ((r -= w) < 0) { kind = k; break; } }
    if (me === null && (kind === 'feed_following' || kind === 'auth_refresh')) kind = 'feed_trending';
    const page = rand() < 0.7 ? 1 : 2 + Math.floor(rand() * 3);
    const post = data.posts[skewed(data.posts.length)];
    switch (kind) {
      case 'feed_trending':
        return { kind, method: 'GET', path: `/api/hapta/feeds/trending?page=${page}&perPage=20&expand=author`,
          direct: `/api/collections/posts/records?page=${page}&perPage=20&sort=-created&filter=${q('published = true')}&expand=author` };
      case 'feed_following':
        return { kind, method: 'GET', path: `/api/hapta/feeds/following?page=${page}&perPage=20&expand=author`,
          direct: `/api/collections/posts/records?page=${page}&perPage=20&sort=-created&filter=${q(`author.follows_via_following.follower ?= '${me}'`)}&expand=author` };
      case 'feed_latest':
        return { kind, method: 'GET', path: `/api/hapta/feeds/latest?page=${page}&perPage=20`,
          direct: `/api/collections/posts/records?page=${page}&perPage=20&sort=-created` };
      case 'search': {
        const words = [String(skewed(data.posts.length)), pick(TAGS)];
        const filter = words.map((w) => `(title ~ '${w}' || body ~ '${w}')`).join(' && ');
        return { kind, method: 'GET', path: `/api/hapta/feeds/search?q=${q(words.join(' '))}&perPage=20`,
          direct: `/api/collections/posts/records?perPage=20&sort=-created&filter=${q(filter)}` };
      }
      case 'list_posts': {
        // Category pages, authors' profile pages, tag pages.
        const r = rand();
        const filter = r < 0.5 ? `category = '${pick(['a', 'b', 'c'])}'` : r < 0.8 ? `author = '${data.users[skewed(data.users.length)].id}'` : `tags ~ '${pick(TAGS)}'`;
        return { kind, method: 'GET', path: `/api/collections/posts/records?page=${page}&perPage=20&sort=-created&filter=${q(filter)}&expand=author` };
      }
      case 'list_comments':
        return { kind, method: 'GET', path: `/api/collections/comments/records?perPage=20&sort=-created&filter=${q(`post = '${post}'`)}&expand=author` };
      case 'view_post':
        return { kind, method: 'GET', path: `/api/collections/posts/records/${post}${rand() < 0.5 ? '?expand=author' : ''}` };
      case 'view_user':
        return { kind, method: 'GET', path: `/api/collections/users/records/${data.users[skewed(data.users.length)].id}` };
      case 'count_likes':
        return { kind, method: 'GET', path: `/api/collections/likes/records?perPage=1&filter=${q(`post = '${post}'`)}` };
      default:
        return { kind: 'auth_refresh', method: 'POST', path: '/api/collections/users/auth-refresh' };
    }
  };

  /** A write by `me`, and the write that undoes it later in the same session (likes, follows). */
  const write = (me: string): [PlannedRequest, PlannedRequest | null] => {
    const r = rand();
    if (r < 0.45) {
      for (let guard = 0; guard < 50; guard++) {
        const post = data.posts[skewed(data.posts.length)];
        if (likes.has(post + me)) continue;
        likes.add(post + me);
        const id = newId();
        return [{ kind: 'like', method: 'POST', path: '/api/collections/likes/records', body: { id, post, user: me } },
          { kind: 'unlike', method: 'DELETE', path: `/api/collections/likes/records/${id}` }];
      }
    } else if (r < 0.6) {
      for (let guard = 0; guard < 50; guard++) {
        const target = data.users[skewed(data.users.length)].id;
        if (target === me || follows.has(me + target)) continue;
        follows.add(me + target);
        const id = newId();
        return [{ kind: 'follow', method: 'POST', path: '/api/collections/follows/records', body: { id, follower: me, following: target } },
          { kind: 'unfollow', method: 'DELETE', path: `/api/collections/follows/records/${id}` }];
      }
    } else if (r < 0.9) {
      let post = data.posts[skewed(data.posts.length)];
      while (data.drafts.has(post)) post = data.posts[skewed(data.posts.length)];
      return [{ kind: 'comment', method: 'POST', path: '/api/collections/comments/records?expand=author', body: { id: newId(), post, author: me, text: `A comment on ${post}` } }, null];
    }
    const id = newId();
    return [{ kind: 'new_post', method: 'POST', path: '/api/collections/posts/records',
      body: { id, title: `A new post ${id} about ${pick(TAGS)}`, body: '<p>Fresh words.</p>', author: me, published: true, tags: [pick(TAGS)], category: 'a' } }, null];
  };

  const out: Session[] = [];
  for (let s = 0; s < sessions; s++) {
    const user = s < opts.signedIn ? s % data.users.length : -1;
    const me = user === -1 ? null : data.users[user].id;
    const requests: PlannedRequest[] = [];
    const undo: PlannedRequest[] = [];
    while (requests.length < perSession) {
      if (me !== null && rand() < writeP) {
        // An undo is due before the session ends, and at most a few stay pending.
        if (undo.length > 0 && (rand() < 0.5 || undo.length > 3)) { requests.push(undo.shift()!); continue; }
        const [w, u] = write(me);
        requests.push(w);
        if (u) undo.push(u);
      } else {
        requests.push(read(me));
      }
    }
    requests.push(...undo);
    out.push({ user, ip: `10.${(s >> 16) & 255}.${(s >> 8) & 255}.${s & 255}`, requests });
  }
  // Interleave signed-in and anonymous sessions so both run throughout.
  return shuffle(out, rand);
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** Replaces the plan's id placeholders with ids of this run: `tag` (one character a-z) + `nonce` (three, a-z0-9). */
export function bindIds(text: string, tag: string, nonce: string): string {
  return text.replace(/~([a-z0-9]{11})/g, `${tag}${nonce}$1`);
}
