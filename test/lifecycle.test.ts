// The run/stop lifecycle shared by the background loops (lib/lifecycle.ts): prompt and complete stops,
// failures logged and retried with backoff, restarts, wake() and periodic pacing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, sleep } from '../lib/backoff.js';
import { Loop } from '../lib/lifecycle.js';
import { createLogger, silentLogger } from '../lib/log.js';

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger('debug', {}, (l) => lines.push(JSON.parse(l))) };
}

class CountingBackoff extends Backoff {
  nexts = 0;
  resets = 0;
  override next(): number {
    this.nexts++;
    return super.next();
  }
  override reset(): void {
    this.resets++;
    super.reset();
  }
}

test('stop aborts a sleeping body promptly and resolves once it has returned', async () => {
  let entered = false;
  let returned = false;
  const loop = new Loop(async (signal) => {
    entered = true;
    await sleep(60_000, signal);
    await sleep(30); // clean-up after the abort
    returned = true;
  }, { log: silentLogger, failure: 'failed' });
  loop.start();
  await until(() => entered);
  const t0 = Date.now();
  await loop.stop();
  assert.equal(returned, true, 'stop resolved after the body returned');
  assert.ok(Date.now() - t0 < 1000, `stopped in ${Date.now() - t0} ms`);
});

test('stop aborts the pause between runs', async () => {
  let runs = 0;
  const loop = new Loop(() => { runs++; }, { log: silentLogger, failure: 'failed', intervalMs: 60_000 });
  loop.start();
  await until(() => runs === 1);
  const t0 = Date.now();
  await loop.stop();
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(runs, 1);
});

test('a failing body is logged with its message and retried with a growing backoff, reset by a success', async () => {
  const { lines, log } = capture();
  const backoff = new CountingBackoff(40, 1000);
  const times: number[] = [];
  const loop = new Loop(() => {
    times.push(Date.now());
    if (times.length <= 3) throw new Error(`boom ${times.length}`);
  }, { log, failure: 'work failed', backoff, intervalMs: 60_000 });
  loop.start();
  await until(() => times.length === 4);
  await loop.stop();
  assert.deepEqual(lines.map((l) => [l.level, l.msg, l.error]), [
    ['warn', 'work failed', 'boom 1'],
    ['warn', 'work failed', 'boom 2'],
    ['warn', 'work failed', 'boom 3'],
  ]);
  assert.equal(backoff.nexts, 3);
  assert.equal(backoff.resets, 1, 'the success reset the backoff');
  // Jittered delays of 20-40, 40-80 and 80-160 ms.
  assert.ok(times[1] - times[0] >= 15, `first delay ${times[1] - times[0]} ms`);
  assert.ok(times[3] - times[2] >= 75, `third delay ${times[3] - times[2]} ms`);
});

test('the failure level is configurable, and non-Error throws are logged as text', async () => {
  const { lines, log } = capture();
  let runs = 0;
  const loop = new Loop(() => {
    runs++;
    throw 'plain';
  }, { log, failure: 'stream ended', failureLevel: 'debug', backoff: new Backoff(10, 10) });
  loop.start();
  await until(() => runs >= 2);
  await loop.stop();
  assert.deepEqual(lines[0], { ...lines[0], level: 'debug', msg: 'stream ended', error: 'plain' });
});

test('a failure after stop() is not logged', async () => {
  const { lines, log } = capture();
  let entered = false;
  const loop = new Loop(async (signal) => {
    entered = true;
    await sleep(60_000, signal);
    throw new Error('aborted');
  }, { log, failure: 'failed' });
  loop.start();
  await until(() => entered);
  await loop.stop();
  assert.deepEqual(lines, []);
});

test('stop before start, double stop and concurrent stops are safe', async () => {
  const loop = new Loop(async (signal) => { await sleep(60_000, signal); }, { log: silentLogger, failure: 'failed' });
  await loop.stop();
  loop.start();
  await Promise.all([loop.stop(), loop.stop()]);
  await loop.stop();
});

test('start while running is a no-op; start after stop runs again with a fresh signal, never two bodies at once', async () => {
  let active = 0;
  let maxActive = 0;
  const signals: AbortSignal[] = [];
  const loop = new Loop(async (signal) => {
    active++;
    maxActive = Math.max(maxActive, active);
    signals.push(signal);
    await sleep(60_000, signal);
    await sleep(20);
    active--;
  }, { log: silentLogger, failure: 'failed' });
  loop.start();
  loop.start();
  await until(() => signals.length === 1);
  await loop.stop();
  assert.equal(signals[0].aborted, true);

  loop.start();
  await until(() => signals.length === 2);
  assert.equal(signals[1].aborted, false);
  // Restarted while the stop is still under way: the new run waits for the old body.
  const stopping = loop.stop();
  loop.start();
  await stopping;
  await until(() => signals.length === 3);
  assert.equal(maxActive, 1);
  await loop.stop();
  assert.equal(active, 0);
});

test('wake() ends the pause at once, and a wake during a run skips the next pause', async () => {
  let runs = 0;
  let release = () => {};
  const loop = new Loop(async () => {
    runs++;
    if (runs === 2) await new Promise<void>((r) => (release = r));
  }, { log: silentLogger, failure: 'failed', intervalMs: 60_000 });
  loop.start();
  await until(() => runs === 1);
  await sleep(30);
  assert.equal(runs, 1, 'paused after the first run');
  loop.wake();
  await until(() => runs === 2, 1000);
  loop.wake(); // during the second run
  release();
  await until(() => runs === 3, 1000);
  await sleep(30);
  assert.equal(runs, 3, 'paused again after the third run');
  await loop.stop();
});

test('wake() does not cut a backoff delay short', async () => {
  let runs = 0;
  const loop = new Loop(() => {
    runs++;
    throw new Error('down');
  }, { log: silentLogger, failure: 'failed', backoff: new Backoff(60_000, 60_000) });
  loop.start();
  await until(() => runs === 1);
  loop.wake();
  await sleep(50);
  assert.equal(runs, 1);
  await loop.stop();
});

test('a periodic loop waits the interval before every run, and adds the backoff delay after a failure', async () => {
  const times: number[] = [];
  const t0 = Date.now();
  const loop = new Loop(() => {
    times.push(Date.now());
    if (times.length === 2) throw new Error('once');
  }, { log: silentLogger, failure: 'failed', intervalMs: 80, periodic: true, backoff: new Backoff(200, 200) });
  loop.start();
  await until(() => times.length === 3);
  await loop.stop();
  assert.ok(times[0] - t0 >= 70, `first run after ${times[0] - t0} ms`);
  assert.ok(times[1] - times[0] >= 70, `second run after ${times[1] - times[0]} ms`);
  // Backoff 100-200 ms, then the interval.
  assert.ok(times[2] - times[1] >= 170, `run after the failure ${times[2] - times[1]} ms later`);
});
