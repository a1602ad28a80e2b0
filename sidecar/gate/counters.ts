// Fixed-window counters and remembered sets for the login guard: in memory for one sidecar, in Redis
// when several share state. Memory entries are swept when their window ends.
import type { Redis } from 'ioredis';

export interface CounterStore {
  /** Adds one and returns the count in the current window. */
  incr(key: string, windowMs: number): Promise<number>;
  get(key: string): Promise<number>;
  reset(key: string): Promise<void>;
  remember(key: string, member: string, ttlMs: number): Promise<void>;
  isMember(key: string, member: string): Promise<boolean>;
  close(): void;
}

export class MemoryCounters implements CounterStore {
  private counts = new Map<string, { n: number; until: number }>();
  private sets = new Map<string, Map<string, number>>();
  private sweeper: NodeJS.Timeout;

  constructor() {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  async incr(key: string, windowMs: number): Promise<number> {
    const now = Date.now();
    const e = this.counts.get(key);
    if (!e || e.until <= now) {
      this.counts.set(key, { n: 1, until: now + windowMs });
      return 1;
    }
    return ++e.n;
  }

  async get(key: string): Promise<number> {
    const e = this.counts.get(key);
    return e && e.until > Date.now() ? e.n : 0;
  }

  async reset(key: string): Promise<void> {
    this.counts.delete(key);
  }

  async remember(key: string, member: string, ttlMs: number): Promise<void> {
    let s = this.sets.get(key);
    if (!s) this.sets.set(key, (s = new Map()));
    s.set(member, Date.now() + ttlMs);
  }

  async isMember(key: string, member: string): Promise<boolean> {
    const until = this.sets.get(key)?.get(member);
    return until !== undefined && until > Date.now();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, e] of this.counts) if (e.until <= now) this.counts.delete(k);
    for (const [k, s] of this.sets) {
      for (const [m, until] of s) if (until <= now) s.delete(m);
      if (s.size === 0) this.sets.delete(k);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}

export class RedisCounters implements CounterStore {
  constructor(private readonly redis: Redis, private readonly prefix = 'hapta:') {}

  async incr(key: string, windowMs: number): Promise<number> {
    const k = `${this.prefix}count:${key}`;
    const [[, n]] = (await this.redis.multi().incr(k).pexpire(k, windowMs, 'NX').exec()) as [[unknown, number]];
    return n;
  }

  async get(key: string): Promise<number> {
    return Number((await this.redis.get(`${this.prefix}count:${key}`)) ?? 0);
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(`${this.prefix}count:${key}`);
  }

  async remember(key: string, member: string, ttlMs: number): Promise<void> {
    const k = `${this.prefix}set:${key}`;
    await this.redis.multi().zadd(k, Date.now() + ttlMs, member).pexpire(k, ttlMs).exec();
  }

  async isMember(key: string, member: string): Promise<boolean> {
    const score = await this.redis.zscore(`${this.prefix}set:${key}`, member);
    return score !== null && Number(score) > Date.now();
  }

  close(): void {}
}
