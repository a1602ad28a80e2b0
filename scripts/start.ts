// `npm start`: runs the processes of the Procfile (`HAPTA_PROCFILE`, default the project's Procfile)
// together, output prefixed with each name, and keeps each one running on its own: a process that exits
// without being asked to is restarted after a capped exponential backoff with jitter (up to 0.5 s at
// first, doubling up to 30 s, back to the start once it has stayed up 30 s), each restart announced in
// its prefixed output, so a crashed sidecar never takes PocketBase down with it, nor the other way
// round. Ctrl-C (SIGINT) or SIGTERM cancels pending restarts, stops every process (SIGTERM, then SIGKILL
// after 10 s) and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Backoff } from '../lib/backoff.js';
import { projectRoot } from './pocketbase-binary.js';

interface Entry { name: string; command: string }

const STOP_GRACE_MS = 10_000; // SIGTERM, then SIGKILL after this long
const STABLE_MS = 30_000; // a process up this long starts its backoff over when it next exits

export function parseProcfile(text: string): Entry[] {
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_-]+):\s*(.+)$/.exec(line.trim());
    if (m && !line.trim().startsWith('#')) out.push({ name: m[1], command: m[2] });
  }
  return out;
}

/** One Procfile process, restarted whenever it exits until stop(). */
class Supervised {
  private child: ChildProcess | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly backoff = new Backoff(500, 30_000); // first delay 0.25-0.5 s, then doubling
  private startedAt = 0;
  private restarts = 0;
  private stopping = false;

  constructor(private readonly name: string, private readonly command: string, private readonly label: string) {}

  start(): void {
    this.restartTimer = null;
    this.startedAt = Date.now();
    // `exec` so that signals reach the process itself, not a shell around it.
    const child = spawn(`exec ${this.command}`, { shell: true, cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
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

  private exited(how: string): void {
    this.child = null;
    if (this.stopping) return this.log(`exited (${how})`);
    if (Date.now() - this.startedAt >= STABLE_MS) this.backoff.reset();
    const delay = this.backoff.next();
    this.restarts++;
    this.log(`exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s (restart ${this.restarts})`);
    this.restartTimer = setTimeout(() => this.start(), delay);
  }

  private log(line: string): void {
    process.stdout.write(`${this.label} | ${line}\n`);
  }

  private prefix(stream: NodeJS.ReadableStream, out: NodeJS.WriteStream): void {
    createInterface({ input: stream }).on('line', (line) => out.write(`${this.label} | ${line}\n`));
  }
}

const procfile = resolve(process.env.HAPTA_PROCFILE ?? join(projectRoot, 'Procfile'));
const entries = parseProcfile(readFileSync(procfile, 'utf8'));
if (entries.length === 0) {
  console.error(`no processes in ${procfile}`);
  process.exit(1);
}
const width = Math.max(...entries.map((e) => e.name.length));
const processes = entries.map((e) => new Supervised(e.name, e.command, e.name.padEnd(width)));
for (const p of processes) p.start();

let shuttingDown = false;
function shutdown(): void {
  if (shuttingDown) return;
  shuttingDown = true;
  void Promise.all(processes.map((p) => p.stop())).then(() => process.exit(0));
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
