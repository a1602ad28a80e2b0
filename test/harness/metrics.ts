// Reads a prom-client metric of a sidecar in tests: the sum of its values whose labels match.
import type { Counter } from 'prom-client';

export async function metricSum(metric: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x))
    .reduce((sum, v) => sum + v.value, 0);
}
