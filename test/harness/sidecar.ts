// Starts a sidecar in this process against a test PocketBase, with its own temp data dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type DeepPartial, type HaptaConfig } from '../../config.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { createSidecar, type Sidecar } from '../../sidecar/app.js';
import { SUPERUSER, type PocketBase } from './pocketbase.js';

export interface TestSidecar extends Sidecar {
  dataDir: string;
  config: HaptaConfig;
  /** Stops and deletes the data dir. */
  destroy(): Promise<void>;
}

export async function startSidecar(pb: PocketBase | { url: string; migrationsDir: string }, overrides: DeepPartial<HaptaConfig> = {}): Promise<TestSidecar> {
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), 'hapta-sc-'));
  const config = loadConfig({}, {
    port: 0,
    pbUrl: pb.url,
    dataDir,
    superuserEmail: SUPERUSER.email,
    superuserPassword: SUPERUSER.password,
    logLevel: 'warn',
    ...overrides,
    replica: { migrationsDir: pb.migrationsDir, pollIntervalMs: 500, ...overrides.replica },
  });
  const log = process.env.HAPTA_TEST_LOG ? createLogger('debug') : silentLogger;
  const sidecar = await createSidecar(config, { log });
  return {
    ...sidecar,
    dataDir,
    config,
    async destroy() {
      await sidecar.stop();
      if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Waits until the sidecar's health says ready and its seq has reached PocketBase's log head. */
export async function waitForSync(sidecar: Sidecar, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await Promise.race([
    sidecar.replicator.whenReady(),
    new Promise((_, rej) => setTimeout(() => rej(new Error('replica not ready in time')), timeoutMs).unref()),
  ]);
  const remaining = Math.max(1, deadline - Date.now());
  await Promise.race([
    sidecar.replicator.syncAfterNow(),
    new Promise((_, rej) => setTimeout(() => rej(new Error('replica did not catch up in time')), remaining).unref()),
  ]);
}
