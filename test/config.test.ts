// The typed configuration: defaults, environment overrides, refusal of local credentials in production,
// and README listing every option.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError, DEFAULT_SUPERUSER_PASSWORD, loadConfig, OPTIONS } from '../config.js';

test('defaults match the documented interface', () => {
  const c = loadConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.pbUrl, 'http://127.0.0.1:8090');
  assert.equal(c.pbDataDir, './pb_data');
  assert.equal(c.dataDir, './hapta_data');
  assert.equal(c.production, false);
});

test('environment variables override defaults and are parsed by type', () => {
  const c = loadConfig({ HAPTA_PORT: '9000', PB_URL: 'http://10.0.0.1:8090/', HAPTA_WATCH_MIGRATIONS: 'false', HAPTA_REPLICA_BATCH: '99999' });
  assert.equal(c.port, 9000);
  assert.equal(c.pbUrl, 'http://10.0.0.1:8090');
  assert.equal(c.replica.watchMigrations, false);
  assert.equal(c.replica.batchSize, 5000, 'clamped to the log route maximum');
  assert.throws(() => loadConfig({ HAPTA_PORT: 'eighty' }), ConfigError);
  assert.throws(() => loadConfig({ HAPTA_WATCH_MIGRATIONS: 'maybe' }), ConfigError);
  assert.throws(() => loadConfig({ HAPTA_LOG_LEVEL: 'loud' }), ConfigError);
});

test('feed ranking sharing: on by default, off by HAPTA_FEED_SHARE_RANKINGS, depth at least the cap', () => {
  const d = loadConfig({});
  assert.equal(d.feedEngine.shareRankings, true);
  assert.equal(d.feedEngine.maxSharedDepth, 4 * d.feedEngine.maxItems);
  const c = loadConfig({ HAPTA_FEED_SHARE_RANKINGS: 'false', HAPTA_FEED_MAX_SHARED_DEPTH: '10', HAPTA_FEED_MAX_ITEMS: '50' });
  assert.equal(c.feedEngine.shareRankings, false);
  assert.equal(c.feedEngine.maxSharedDepth, 50, 'raised to the depth cap');
  assert.equal(loadConfig({ HAPTA_FEED_MAX_SHARED_DEPTH: '2500.7' }).feedEngine.maxSharedDepth, 2500);
  assert.throws(() => loadConfig({ HAPTA_FEED_MAX_SHARED_DEPTH: '0' }), ConfigError);
  assert.throws(() => loadConfig({ HAPTA_FEED_SHARE_RANKINGS: 'sometimes' }), ConfigError);
});

test('production refuses the local default superuser credentials', () => {
  assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /PB_SUPERUSER_EMAIL/);
  assert.throws(() => loadConfig({ NODE_ENV: 'production', PB_SUPERUSER_EMAIL: 'ops@example.com' }), ConfigError);
  const ok = loadConfig({ NODE_ENV: 'production', PB_SUPERUSER_EMAIL: 'ops@example.com', PB_SUPERUSER_PASSWORD: 'a-real-secret-1' });
  assert.equal(ok.production, true);
  assert.notEqual(ok.superuserPassword, DEFAULT_SUPERUSER_PASSWORD);
});

test('README documents every option', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const o of OPTIONS) assert.ok(readme.includes(`\`${o.env}\``), `README lacks ${o.env}`);
});
