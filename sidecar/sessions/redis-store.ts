// Sessions in Redis, shared by several sidecars: a key accepted by one is accepted by all, and a
// revocation is seen by all at once (every request reads the session). Rotation is a Lua script, so
// two sidecars refreshing the same key cannot both win.
import type { Redis } from 'ioredis';
import { RETIRED_KEPT, type Rotation, type SessionStore, type StoredSession } from './store.js';

const ROTATE = `
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local s = cjson.decode(raw)
if s.revokedAt ~= cjson.null and s.revokedAt ~= nil then return nil end
if s.currentKid ~= ARGV[1] then return nil end
local retired = { { s.currentKid, tonumber(ARGV[6]) } }
for i = 1, math.min(#s.retired, tonumber(ARGV[7]) - 1) do retired[#retired + 1] = s.retired[i] end
s.retired = retired
s.currentKid = ARGV[2]
s.keyExp = tonumber(ARGV[3])
s.pbToken = ARGV[4]
s.pbTokenExp = tonumber(ARGV[5])
local out = cjson.encode(s)
redis.call('SET', KEYS[1], out, 'KEEPTTL')
return out
`;

// KEYS[1]: the key; ARGV[1]: "seq@instance"; ARGV[2]: ttl ms. Compares seqs as numbers (15 digits at most).
const RAISE_POSITION = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local cs, ci = string.match(cur, '^(%d+)@(.*)$')
  local ns, ni = string.match(ARGV[1], '^(%d+)@(.*)$')
  if cs and ns and ci == ni and tonumber(cs) >= tonumber(ns) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

export class RedisSessionStore implements SessionStore {
  constructor(private readonly redis: Redis, private readonly prefix = 'hapta:') {}

  private key(sid: string): string {
    return `${this.prefix}session:${sid}`;
  }

  private recordKey(collectionId: string, recordId: string): string {
    return `${this.prefix}record-sessions:${collectionId}:${recordId}`;
  }

  private ttlMs(s: StoredSession): number {
    // Kept a week past the key's expiry, so a replayed old key still finds (and burns) its session.
    return Math.max(60_000, s.keyExp - Date.now() + 7 * 86400_000);
  }

  async create(s: StoredSession): Promise<void> {
    const ttl = this.ttlMs(s);
    await this.redis.multi()
      .set(this.key(s.sid), JSON.stringify(s), 'PX', ttl)
      .sadd(this.recordKey(s.collectionId, s.recordId), s.sid)
      .pexpire(this.recordKey(s.collectionId, s.recordId), ttl)
      .zadd(`${this.prefix}live`, s.keyExp, s.sid)
      .exec();
  }

  async get(sid: string): Promise<StoredSession | null> {
    const raw = await this.redis.get(this.key(sid));
    return raw ? normalise(JSON.parse(raw)) : null;
  }

  async rotate(r: Rotation): Promise<StoredSession | null> {
    const out = await this.redis.eval(ROTATE, 1, this.key(r.sid), r.expectedKid, r.newKid, String(r.keyExp), r.pbToken, String(r.pbTokenExp), String(r.now), String(RETIRED_KEPT)) as string | null;
    if (!out) return null;
    await this.redis.zadd(`${this.prefix}live`, r.keyExp, r.sid);
    return normalise(JSON.parse(out));
  }

  async setPbToken(sid: string, pbToken: string, pbTokenExp: number): Promise<void> {
    const s = await this.get(sid);
    if (!s) return;
    await this.redis.set(this.key(sid), JSON.stringify({ ...s, pbToken, pbTokenExp }), 'KEEPTTL');
  }

  async revoke(sid: string, now: number): Promise<boolean> {
    const s = await this.get(sid);
    if (!s || s.revokedAt !== null) return false;
    await this.redis.multi().set(this.key(sid), JSON.stringify({ ...s, revokedAt: now }), 'KEEPTTL').zrem(`${this.prefix}live`, sid).exec();
    return true;
  }

  async revokeRecord(collectionId: string, recordId: string, now: number): Promise<number> {
    const sids = await this.redis.smembers(this.recordKey(collectionId, recordId));
    let n = 0;
    for (const sid of sids) if (await this.revoke(sid, now)) n++;
    return n;
  }

  async listLive(now: number, limit: number): Promise<StoredSession[]> {
    await this.redis.zremrangebyscore(`${this.prefix}live`, 0, now);
    const sids = await this.redis.zrange(`${this.prefix}live`, "0", String(limit - 1));
    const out: StoredSession[] = [];
    for (const sid of sids) {
      const s = await this.get(sid);
      if (s && s.revokedAt === null && s.keyExp > now) out.push(s);
    }
    return out;
  }

  async listForRecord(collectionId: string, recordId: string, now: number): Promise<StoredSession[]> {
    const sids = await this.redis.smembers(this.recordKey(collectionId, recordId));
    const out: StoredSession[] = [];
    for (const sid of sids) {
      const s = await this.get(sid);
      if (s && s.revokedAt === null && s.keyExp > now) out.push(s);
    }
    return out;
  }

  async putTemp(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(`${this.prefix}temp:${key}`, value, 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async getTemp(key: string): Promise<string | null> {
    return this.redis.get(`${this.prefix}temp:${key}`);
  }

  /**
   * Atomically raises a `seq@instance` position kept under `key` to `value` (never lowers it within one
   * instance; another instance's position is replaced). True when it was raised.
   */
  async raisePosition(key: string, value: string, ttlMs: number): Promise<boolean> {
    const raised = await this.redis.eval(RAISE_POSITION, 1, `${this.prefix}temp:${key}`, value, String(Math.max(1, Math.round(ttlMs))));
    return raised === 1;
  }

  async close(): Promise<void> {
    /* the Redis connection is owned by the caller */
  }
}

/** cjson turns empty arrays into objects and null into cjson.null: restore the shape. */
function normalise(s: StoredSession): StoredSession {
  const retired = Array.isArray(s.retired) ? s.retired : [];
  return { ...s, retired, revokedAt: typeof s.revokedAt === 'number' ? s.revokedAt : null };
}
