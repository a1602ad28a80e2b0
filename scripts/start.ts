// `npm start`: runs the processes of the Procfile (`HAPTA_PROCFILE`, default the project's Procfile)
// together, output prefixed with each name, and keeps each one running on its own: a process that exits
// without being asked to is restarted after a capped exponential backoff with jitter (up to 0.5 s at
// first, doubling up to 30 s, back to the start once it has stayed up 30 s), each restart announced in
// its prefixed output, so a crashed sidecar never takes PocketBase down with it, nor the other way
// round. Ctrl-C (SIGINT) or SIGTERM cancels pending restarts, stops every process (SIGTERM, then SIGKILL
// after 10 s) and exits 0.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { projectRoot } from './pocketbase-binary.js';
import { Supervised } from './supervise.js';

interface Entry { name: string; command: string }


export function parseProcfile(text: string): Entry[] {
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_-]+):\s*(.+)$/.exec(line.trim());
    if (m && !line.trim().startsWith('#')) out.push({ name: m[1], command: m[2] });
  }
  return out;
}

const procfile = resolve(process.env.HAPTA_PROCFILE ?? join(projectRoot, 'Procfile'));
const entries = parseProcfile(readFileSync(procfile, 'utf8'));
if (entries.length === 0) {
  console.error(`no processes in ${procfile}`);
  process.exit(1);
}
const width = Math.max(...entries.map((e) => e.name.length));
// `exec` so that signals reach the process itself, not a shell around it.
const processes = entries.map((e) => new Supervised(e.name.padEnd(width), { command: `exec ${e.command}`, shell: true }));
for (const p of processes) p.start();

let shuttingDown = false;
function shutdown(): void {
  if (shuttingDown) return;
  shuttingDown = true;
  void Promise.all(processes.map((p) => p.stop())).then(() => process.exit(0));
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
