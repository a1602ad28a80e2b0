// The sidecar's entry point (the `sidecar` process of the Procfile): loads config.ts and the
// environment, starts the service, and shuts down cleanly on SIGINT/SIGTERM.
import { ConfigError, loadConfig, withUserModule } from '../config.js';
import { createLogger } from '../lib/log.js';
import { createSidecar } from './app.js';

async function main(): Promise<void> {
  let config;
  try {
    config = await withUserModule(loadConfig());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hapta: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const sidecar = await createSidecar(config, { log, defaultMetrics: true });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => process.exit(1), config.health.drainMs + 5000);
    force.unref();
    sidecar.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`hapta: failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
