// Rate limits per route class (koa-ratelimit; the class comes from the route table, routes.ts), each keyed by client IP or by signed-in user as
// configured, in memory or in Redis (shared by several sidecars). A limited request gets 429 in
// PocketBase's error shape with Retry-After and X-RateLimit-* headers.
import type { Context, Middleware, Next } from 'koa';
import ratelimit from 'koa-ratelimit';
import type { Redis } from 'ioredis';
import type { RateLimitRule, RouteClass } from '../../config.js';
import { routeInfo } from '../routes.js';

/**
 * koa-ratelimit's memory driver never forgets a key it does not see again; this Map drops entries whose
 * window has ended, so many distinct clients (IPv6 addresses, say) cannot grow memory without bound.
 */
export class ExpiringMap<K, V extends { reset: number }> extends Map<K, V> {
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 60_000) {
    super();
    this.timer = setInterval(() => this.sweep(), intervalMs);
    this.timer.unref();
  }

  sweep(now = Date.now()): void {
    for (const [k, v] of this) if (v.reset * 1000 < now) this.delete(k);
  }

  dispose(): void {
    clearInterval(this.timer);
  }
}

export interface RateLimitOptions {
  rules: Record<RouteClass, RateLimitRule>;
  redis: Redis | null;
  prefix?: string;
}

export function rateLimits(opts: RateLimitOptions): Middleware {
  const classes = Object.keys(opts.rules) as RouteClass[];
  const limiters = new Map<RouteClass, Middleware>();
  for (const cls of classes) {
    const rule = opts.rules[cls];
    limiters.set(cls, ratelimit({
      driver: opts.redis ? 'redis' : 'memory',
      db: opts.redis ?? new ExpiringMap(),
      namespace: `${opts.prefix ?? 'hapta:'}rl:${cls}`,
      duration: rule.duration,
      max: rule.max,
      id: (ctx: Context) => bucket(ctx, rule),
      errorMessage: { data: {}, message: rule.message, status: 429 } as unknown as string,
    } as Parameters<typeof ratelimit>[0]) as Middleware);
  }
  return async function limitRate(ctx: Context, next: Next): Promise<void> {
    const cls = routeInfo(ctx).limit;
    const limiter = cls ? limiters.get(cls) : undefined;
    if (!limiter) return next();
    await limiter(ctx, next);
    if (ctx.status === 429 && ctx.state.rateLimit) ctx.set('Content-Type', 'application/json');
  };
}

function bucket(ctx: Context, rule: RateLimitRule): string {
  const session = ctx.state.session as { collectionId: string; recordId: string } | undefined;
  if (!rule.ip && session) return `user:${session.collectionId}:${session.recordId}`;
  return `ip:${ctx.state.clientIp as string}`;
}
