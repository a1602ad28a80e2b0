// What the feed profiles need from the replica: the counters and full-text indexes the FeedIndex keeps.
import type { FeedProfile } from '../../config.js';
import type { CounterSpec, FeedIndexSpec } from '../../replica/feed-index.js';

/** The counter of one interaction term: one per (collection, field, time field, half-life). */
export function counterFor(i: NonNullable<FeedProfile['interactions']>[number]): CounterSpec {
  const decay = i.timeField && i.halfLifeHours ? `_${i.timeField}_${String(i.halfLifeHours).replace('.', 'p')}h` : '';
  return { name: `${i.collection}_${i.field}${decay}`, source: i.collection, field: i.field, timeField: decay ? i.timeField : undefined, halfLifeHours: decay ? i.halfLifeHours : undefined };
}

export function feedIndexSpec(profiles: Record<string, FeedProfile>): FeedIndexSpec {
  const counters = new Map<string, CounterSpec>();
  const texts = new Map<string, Set<string>>();
  for (const p of Object.values(profiles)) {
    for (const i of p.interactions ?? []) {
      const c = counterFor(i);
      counters.set(c.name, c);
    }
    if (p.text) {
      const set = texts.get(p.collection) ?? new Set<string>();
      for (const f of p.text.fields) set.add(f);
      texts.set(p.collection, set);
    }
  }
  return {
    counters: [...counters.values()].sort((a, b) => a.name.localeCompare(b.name)),
    texts: [...texts.entries()].map(([collection, fields]) => ({ collection, fields: [...fields].sort() })),
  };
}
