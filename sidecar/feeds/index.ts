// Public entry of the ranked feeds: `createFeedRoutes` answers GET /api/hapta/feeds/{profile} from the
// replica (rankings shared by requesters and ranked in the worker pool's lanes, PocketBase's rules, list
// shape, stable cursors).
import type Koa from 'koa';
import type { FeedProfile } from '../../config.js';
import type { Replicator } from '../../replica/replicator.js';
import type { Requester } from '../reads/request.js';
import type { QueryPool } from '../query/pool.js';
import { feedRoutes, type FeedRoutesOptions } from './routes.js';

export { QueryPool, QueryError, type Lane } from '../query/pool.js';
export { feedIndexSpec, counterFor } from './profiles.js';
export type { FeedRoutesOptions } from './routes.js';
export type { WindowOptions, WindowStats } from './window.js';

export function createFeedRoutes(opts: {
  replicator: Replicator;
  profiles: Record<string, FeedProfile>;
  identify(ctx: Koa.Context): Promise<Requester>;
  pool: QueryPool;
} & Partial<Pick<FeedRoutesOptions, 'readable' | 'afterRead' | 'maxItems' | 'snapshotTtlMs' | 'maxSnapshots' | 'reuseMs' | 'answerCacheBytes' | 'window' | 'onRanked' | 'onPage' | 'shareRankings' | 'maxSharedDepth' | 'clock'>>): Koa.Middleware {
  return feedRoutes(opts);
}
