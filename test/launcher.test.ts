// The launcher (`npm start`, scripts/start.ts): a process of the Procfile that crashes is restarted with
// backoff while the others keep running, and SIGTERM stops every process and exits 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';

const root = new URL('..', import.meta.url).pathname;

function pids(file: string): number[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number) : [];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

test('a crashing process is restarted with backoff, the others keep running, SIGTERM stops all', { timeout: 25_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hapta-launcher-'));
  const steadyPids = join(dir, 'steady.pids');
  const crashyPids = join(dir, 'crashy.pids');
  // Each process appends its pid on every start, so the files count starts and name every child.
  writeFileSync(join(dir, 'steady.mjs'), `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(steadyPids)}, process.pid + '\\n');
console.log('steady up');
setInterval(() => {}, 1000);
`);
  writeFileSync(join(dir, 'crashy.mjs'), `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(crashyPids)}, process.pid + '\\n');
console.log('crashy up');
setTimeout(() => process.exit(1), 100);
`);
  writeFileSync(join(dir, 'Procfile'), [
    '# two small processes',
    `steady: node ${JSON.stringify(join(dir, 'steady.mjs'))}`,
    `crashy: node ${JSON.stringify(join(dir, 'crashy.mjs'))}`,
    '',
  ].join('\n'));

  const launcher = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: root,
    env: { ...process.env, HAPTA_PROCFILE: join(dir, 'Procfile') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  launcher.stdout.on('data', (d) => (output += d));
  launcher.stderr.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    launcher.on('exit', (code, signal) => done({ code, signal })));

  try {
    await until('the steady process', () => pids(steadyPids).length === 1, 10_000);
    const [steady] = pids(steadyPids);
    await until('three starts of the crashy process', () => pids(crashyPids).length >= 3, 15_000);
    await until('the restart line', () => /crashy \| exited \(code 1\); restarting in \d+\.\d s \(restart 2\)/.test(output), 5_000);

    assert.match(output, /steady \| steady up/);
    assert.match(output, /crashy \| crashy up/);
    assert.deepEqual(pids(steadyPids), [steady], `the steady process was never restarted:\n${output}`);
    assert.ok(alive(steady), 'the steady process survives the crashes');

    const beforeStop = output.length;
    launcher.kill('SIGTERM');
    const result = await Promise.race([exited, delay(12_000, null, { ref: false })]);
    assert.deepEqual(result, { code: 0, signal: null }, `the launcher exits 0 on SIGTERM:\n${output}`);
    for (const pid of [...pids(steadyPids), ...pids(crashyPids)]) assert.ok(!alive(pid), `child ${pid} is gone`);
    const afterStop = output.slice(beforeStop);
    assert.match(afterStop, /steady \| exited \(signal SIGTERM\)/);
    assert.doesNotMatch(afterStop, /restarting/, 'no restart is scheduled during shutdown');
  } finally {
    if (launcher.exitCode === null && launcher.signalCode === null) launcher.kill('SIGKILL');
    for (const pid of [...pids(steadyPids), ...pids(crashyPids)]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
