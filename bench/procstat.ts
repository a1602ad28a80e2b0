// CPU time and resident memory of processes, read from /proc (Linux), for benchmark reports.
import { readFileSync } from 'node:fs';

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
