// `npm start`: runs the processes of the Procfile together, output prefixed with each name, and stops
// them all on Ctrl-C (SIGINT/SIGTERM) or as soon as one of them exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from './pocketbase-binary.js';

interface Entry { name: string; command: string }

export function parseProcfile(text: string): Entry[] {
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_-]+):\s*(.+)$/.exec(line.trim());
    if (m && !line.trim().startsWith('#')) out.push({ name: m[1], command: m[2] });
  }
  return out;
}

const entries = parseProcfile(readFileSync(join(projectRoot, 'Procfile'), 'utf8'));
const width = Math.max(...entries.map((e) => e.name.length));
const children = new Map<string, ChildProcess>();
let stopping = false;
let exitCode = 0;

function prefix(name: string, stream: NodeJS.ReadableStream, out: NodeJS.WriteStream): void {
  const rl = createInterface({ input: stream });
  rl.on('line', (line) => out.write(`${name.padEnd(width)} | ${line}\n`));
}

function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  exitCode = code;
  for (const child of children.values()) if (child.exitCode === null) child.kill('SIGTERM');
  setTimeout(() => {
    for (const child of children.values()) if (child.exitCode === null) child.kill('SIGKILL');
  }, 10_000).unref();
}

for (const { name, command } of entries) {
  // `exec` so that the signal reaches the process itself, not a shell around it.
  const child = spawn(`exec ${command}`, { shell: true, cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  children.set(name, child);
  prefix(name, child.stdout!, process.stdout);
  prefix(name, child.stderr!, process.stderr);
  child.on('exit', (code, signal) => {
    process.stdout.write(`${name.padEnd(width)} | exited (${signal ?? code})\n`);
    if (!stopping) stopAll(code === 0 ? 0 : 1);
    if ([...children.values()].every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
  });
}

process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
