// How this code runs: compiled to JavaScript (`npm run build`, dist/) or as TypeScript source through
// tsx. Processes the project starts (the sidecar, PocketBase's launcher, benchmark roles, feed query
// threads) run the same way as the code that starts them.
import { existsSync } from 'node:fs';
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
