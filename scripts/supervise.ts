// One supervised child process, shared by the launcher (`npm start`) and the cluster runner: its output
// prefixed with a label, restarted with capped backoff whenever it exits on its own (each restart
// announced), stopped with SIGTERM and then SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Backoff } from '../lib/backoff.js';
import { projectRoot } from './pocketbase-binary.js';

const STOP_GRACE_MS = 15_000; // SIGTERM, then SIGKILL after this long (the sidecar drains for up to 8 s)
const STABLE_MS = 30_000; // a process up this long starts its backoff over when it next exits

export interface Command {
  command: string;
  args?: string[];
  /** Run through a shell (a Procfile line); the command should `exec` so signals reach it. */
  shell?: boolean;
  env?: NodeJS.ProcessEnv;
}

export class Supervised {
  private child: ChildProcess | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly backoff = new Backoff(500, 30_000); // first delay 0.25-0.5 s, then doubling
  private startedAt = 0;
  private restarts = 0;
  private stopping = false;

  constructor(private readonly label: string, private readonly cmd: Command) {}

  start(): void {
    this.restartTimer = null;
    this.startedAt = Date.now();
    const child = spawn(this.cmd.command, this.cmd.args ?? [], {
      shell: this.cmd.shell ?? false, cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], env: this.cmd.env ?? process.env,
    });
    this.child = child;
    this.prefix(child.stdout!, process.stdout);
    this.prefix(child.stderr!, process.stderr);
    child.on('exit', (code, signal) => this.exited(signal ? `signal ${signal}` : `code ${code}`));
    child.on('error', (err) => {
      this.log(`error: ${err.message}`);
      if (child.pid === undefined) this.exited('not started'); // no 'exit' follows a failed spawn
    });
  }

  /** Cancels a pending restart and ends the running process, if any. */
  stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return Promise.resolve();
    return new Promise((done) => {
      const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(force);
        done();
      });
      child.kill('SIGTERM');
    });
  }

  log(line: string): void {
    process.stdout.write(`${this.label} | ${line}\n`);
  }

  private exited(how: string): void {
    this.child = null;
    if (this.stopping) return this.log(`exited (${how})`);
    if (Date.now() - this.startedAt >= STABLE_MS) this.backoff.reset();
    const delay = this.backoff.next();
    this.restarts++;
    this.log(`exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s (restart ${this.restarts})`);
    this.restartTimer = setTimeout(() => this.start(), delay);
  }

  private prefix(stream: NodeJS.ReadableStream, out: NodeJS.WriteStream): void {
    createInterface({ input: stream }).on('line', (line) => out.write(`${this.label} | ${line}\n`));
  }
}
