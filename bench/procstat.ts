// CPU time and resident memory of processes, read from /proc (Linux), for benchmark reports.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on Linux

/** User + system CPU seconds the process has used so far (NaN when it cannot be read). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return NaN;
  }
}

export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export interface Usage { cpuSeconds: number; cores: number; rssPeakMiB: number; rssEndMiB: number }

/** Watches processes from now until `stop()`: CPU used in between (and as cores busy), peak and final RSS. */
export function watch(pids: Record<string, number>): { stop(): Record<string, Usage> } {
  const t0 = performance.now();
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const peak: Record<string, number> = {};
  const sample = () => { for (const [k, pid] of Object.entries(pids)) peak[k] = Math.max(peak[k] ?? 0, rssMiB(pid) || 0); };
  sample();
  const timer = setInterval(sample, 250);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const wall = (performance.now() - t0) / 1000;
      return Object.fromEntries(Object.entries(pids).map(([k, pid]) => {
        const used = cpuSeconds(pid) - cpu0[k];
        return [k, { cpuSeconds: used, cores: used / wall, rssPeakMiB: peak[k], rssEndMiB: rssMiB(pid) }];
      }));
    },
  };
}

/** CPU time of a process's threads (Linux schedstat, nanoseconds): its main thread and the rest. */
export interface ThreadTimes {
  /** Seconds the main thread (the event loop) ran. */
  mainRun: number;
  /** Seconds the main thread was ready to run but waited for a core. */
  mainWait: number;
  /** Seconds every other thread ran (query threads, V8's and libuv's helpers). */
  otherRun: number;
  /**
   * Seconds the other threads ran, by thread name: the sidecar names its own (`hapta-reads`,
   * `hapta-feeds`, `hapta-search`, `hapta-sync`); the rest (V8's compiler and GC helpers, libuv's pool)
   * keep Node's name.
   */
  otherByName: Record<string, number>;
}

export function threadTimes(pid: number): ThreadTimes {
  const out: ThreadTimes = { mainRun: 0, mainWait: 0, otherRun: 0, otherByName: {} };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { mainRun: NaN, mainWait: NaN, otherRun: NaN, otherByName: {} };
  }
  for (const tid of tids) {
    let run: number, wait: number, name: string;
    try {
      [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ').map((x) => Number(x) / 1e9);
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended
    }
    if (Number(tid) === pid) {
      out.mainRun = run;
      out.mainWait = wait;
    } else {
      out.otherRun += run;
      out.otherByName[name] = (out.otherByName[name] ?? 0) + run;
    }
  }
  return out;
}

/** What `threadTimes` grew by between two readings (threads that ended in between are not counted). */
export function threadDelta(a: ThreadTimes, b: ThreadTimes): ThreadTimes {
  const otherByName: Record<string, number> = {};
  for (const [name, run] of Object.entries(b.otherByName)) otherByName[name] = Math.max(0, run - (a.otherByName[name] ?? 0));
  return { mainRun: b.mainRun - a.mainRun, mainWait: b.mainWait - a.mainWait, otherRun: Math.max(0, b.otherRun - a.otherRun), otherByName };
}
