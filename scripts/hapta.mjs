#!/usr/bin/env node
// The `hapta` command (package.json "bin"):
//   hapta [--pb-url URL] [--port N] [--host ADDR] [--data-dir DIR] [--config MODULE] [--redis-url URL]
//         [--migrations-dir DIR]
//     runs the sidecar against an existing PocketBase; every option is also its environment variable
//     (README's configuration table), and the superuser credentials come from PB_SUPERUSER_EMAIL and
//     PB_SUPERUSER_PASSWORD (never from the command line, where other users of the machine can read them).
//   hapta install-hooks <pb_hooks dir>
//     copies the PocketBase hook files the sidecar needs (the change log) into PocketBase's hooks directory.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FLAGS = {
  '--pb-url': 'PB_URL',
  '--port': 'HAPTA_PORT',
  '--host': 'HAPTA_HOST',
  '--data-dir': 'HAPTA_DATA_DIR',
  '--config': 'HAPTA_CONFIG_MODULE',
  '--redis-url': 'HAPTA_REDIS_URL',
  '--migrations-dir': 'HAPTA_MIGRATIONS_DIR',
  '--log-level': 'HAPTA_LOG_LEVEL',
};

function usage(code) {
  const out = code === 0 ? process.stdout : process.stderr;
  out.write(`usage:
  hapta [options]                       run the sidecar against an existing PocketBase
  hapta install-hooks <pb_hooks dir>    copy the hook files PocketBase needs

options (each is also an environment variable; see the configuration table in README.md):
${Object.entries(FLAGS).map(([f, e]) => `  ${f.padEnd(18)} ${e}`).join('\n')}
The superuser the sidecar signs in as: PB_SUPERUSER_EMAIL and PB_SUPERUSER_PASSWORD in the environment.
`);
  process.exit(code);
}

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

function installHooks(target) {
  if (!target) usage(2);
  const dest = resolve(target);
  const src = join(root, 'pb_hooks');
  mkdirSync(dest, { recursive: true });
  for (const f of files(src)) {
    const to = join(dest, relative(src, f));
    mkdirSync(dirname(to), { recursive: true });
    cpSync(f, to);
    process.stdout.write(`hapta: ${relative(process.cwd(), to) || to}\n`);
  }
  process.stdout.write('hapta: hooks installed; restart PocketBase (or let it reload its hooks) before starting the sidecar\n');
}

function run(args) {
  const env = { ...process.env };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (flag === '--help' || flag === '-h') usage(0);
    const name = FLAGS[flag];
    if (!name) {
      process.stderr.write(`hapta: unknown option ${flag}\n`);
      usage(2);
    }
    const value = inline ?? args[++i];
    if (value === undefined) {
      process.stderr.write(`hapta: ${flag} needs a value\n`);
      usage(2);
    }
    env[name] = name === 'HAPTA_CONFIG_MODULE' || name.endsWith('_DIR') ? resolve(value) : value;
  }
  // The reference migrations only describe the reference schema: an existing PocketBase has its own.
  if (!env.HAPTA_MIGRATIONS_DIR && !existsSync(resolve('migrations'))) env.HAPTA_WATCH_MIGRATIONS ??= 'false';
  // The compiled sidecar when it is built (`npm run build`), its TypeScript source otherwise.
  const built = join(root, 'dist', 'sidecar', 'server.js');
  const entry = existsSync(built) ? [built] : ['--import', import.meta.resolve('tsx'), join(root, 'sidecar', 'server.ts')];
  const child = spawn(process.execPath, entry, { env, stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'install-hooks') installHooks(rest[0]);
else run(command === undefined ? [] : [command, ...rest]);
