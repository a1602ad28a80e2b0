// How this code runs: compiled to JavaScript (`npm run build`, dist/) or as TypeScript source through
// tsx. Processes the project starts (the sidecar, PocketBase's launcher, benchmark roles, feed query
// threads) run the same way as the code that starts them.
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** True when this module is the compiled one. */
export const compiled = import.meta.url.endsWith('.js');

/** Node arguments that load TypeScript source (none for compiled code). */
export const tsLoader: string[] = compiled ? [] : ['--import', 'tsx'];

/** The root of the code: the project itself, or dist/ when compiled. */
export const codeRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The project root (package.json, migrations/, pb_hooks/), whichever way the code runs. */
export const projectRoot = (() => {
  for (let dir = codeRoot; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return codeRoot;
  }
})();

/** A module of the project by its path without extension (`sidecar/server`), as this code runs it. */
function modulePath(path: string): string {
  return join(codeRoot, `${path}.${compiled ? 'js' : 'ts'}`);
}

/** Node arguments that run a module of the project (`sidecar/server`). */
export function moduleArgs(path: string): string[] {
  return [...tsLoader, modulePath(path)];
}

/**
 * Names the calling thread (Linux: what `top -H`, `ps -L` and /proc/PID/task/TID/comm show; at most 15
 * bytes). Best effort: elsewhere, or where /proc is not writable, the thread keeps its name.
 */
export function nameThisThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch { /* not Linux, or no /proc: the name is only for people and tools */ }
}

/** The calling thread's id (Linux), or null where it cannot be known. */
export function thisThreadId(): number | null {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return null;
  }
}
