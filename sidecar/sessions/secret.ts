// The key that signs session tokens: from config, or generated once and kept in HAPTA_DATA_DIR (file
// mode 0600), or in Redis when several sidecars share sessions (the first one to start sets it).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

export async function loadSessionSecret(opts: { configured: string; dataDir: string; redis: Redis | null; prefix?: string }): Promise<Buffer> {
  if (opts.configured) return Buffer.from(opts.configured, 'utf8');
  const fresh = randomBytes(48).toString('base64url');
  if (opts.redis) {
    const key = `${opts.prefix ?? 'hapta:'}session-secret`;
    await opts.redis.set(key, fresh, 'NX');
    const value = await opts.redis.get(key);
    if (!value) throw new Error('could not read the session secret from Redis');
    return Buffer.from(value, 'utf8');
  }
  const file = join(opts.dataDir, 'session-secret');
  if (!existsSync(file)) writeFileSync(file, fresh, { mode: 0o600, flag: 'wx' });
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
}
