// Runs the sidecar as its own process (benchmarks, so the load generator does not share its event loop;
// crash tests, which SIGKILL it), configured through the environment exactly as in production.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moduleArgs } from '../../lib/runtime.js';
import { projectRoot } from '../../scripts/pocketbase-binary.js';
import { freePort } from './net.js';
import { SUPERUSER, type PocketBase } from './pocketbase.js';

export interface SidecarProcess {
  url: string;
  pid: number;
  dataDir: string;
  /** Kills the process (SIGKILL: no shutdown at all) and keeps the data dir. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSidecarProcess(pb: PocketBase, env: Record<string, string> = {}, opts: { dataDir?: string; port?: number; nodeArgs?: string[] } = {}): Promise<SidecarProcess> {
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'hapta-sidecar-'));
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...moduleArgs('sidecar/server')], {
    cwd: projectRoot,
    env: {
      ...process.env, HAPTA_PORT: String(port), PB_URL: pb.url, HAPTA_DATA_DIR: dataDir, PB_SUPERUSER_EMAIL: SUPERUSER.email,
      PB_SUPERUSER_PASSWORD: SUPERUSER.password, HAPTA_MIGRATIONS_DIR: pb.migrationsDir, HAPTA_LOG_LEVEL: 'warn', ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/api/hapta/health`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) throw new Error('sidecar did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    pid: child.pid!,
    dataDir,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
