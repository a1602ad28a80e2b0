// npm run fuzz -- --requests 100000 [--seed N] [--kinds aborted,expect] [--verbose]
// The long run of the hostile-client suite (test/hostile.test.ts): the shipped sidecar in its own process
// in front of a real PocketBase, a seeded stream of hostile raw HTTP requests. Prints the answers by
// class, the 5xx, and the sidecar's RSS before and after; exits non-zero on any crash, 500 or error line.
import { spawn } from 'node:child_process';
import { projectRoot } from './pocketbase-binary.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

const env: NodeJS.ProcessEnv = { ...process.env, HOSTILE_REQUESTS: option('requests') ?? '100000' };
if (option('seed')) env.HOSTILE_SEED = option('seed');
if (option('kinds')) env.HOSTILE_KINDS = option('kinds');
if (process.argv.includes('--verbose')) env.HOSTILE_VERBOSE = '1';

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', 'test/hostile.test.ts'], {
  cwd: projectRoot, env, stdio: 'inherit',
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
