// The one definition of a feed item's score, as SQL over per-item term columns (computed by feed-sql.ts
// inside the worker pool) plus the same terms in JSON for `explain`. Change the formula here only.
import type { FeedProfile } from '../../config.js';

/**
 * Score of an item for a profile, at a frozen instant `now` (the snapshot's):
 *
 *   R     = text.weight * -bm25(FTS5 over text.fields, q)      0 without q (bm25 is negative, lower = better)
 *   v_i   = n_i                                               interaction i without decay (exact count)
 *         = d_i * 2^(-(now - epoch_i) / halfLife_i)           with decay: Σ 2^(-(now - t_k)/halfLife) over
 *                                                             its records k (decayFactor of feed-index.ts)
 *   I     = Σ_i weight_i * v_i
 *   B     = following.boost if the requester follows the item's author, else 0
 *   base  = R + I + B
 *   age   = max(0, now - item[freshness.field]) in hours      (no valid date: 1e6 hours)
 *
 *   score = base + fw * 2^(-age / halfLifeHours)              freshness with halfLifeHours
 *         = (base + fw) / (age + 2)^gravity                   freshness with gravity (Hacker News)
 *         = base                                              no freshness term
 *
 * Order: score DESC, then freshness field DESC, then rowid DESC (newer first on ties). Items excluded
 * by `exclude` or, with following.only, not by a followed author, are not in the feed at all.
 */
export interface TermColumns {
  rel: string;
  age: string;
  interactions: string[];
  followed: string;
}

function num(n: number): string {
  if (!Number.isFinite(n)) throw new Error('feed profile: weights must be finite numbers');
  // Always a REAL literal, so integer weights never turn the arithmetic into integer division.
  return Number.isInteger(n) ? `${n}.0` : String(n);
}

export function scoreSql(p: FeedProfile, c: TermColumns): string {
  const parts: string[] = [];
  if (p.text) parts.push(c.rel);
  (p.interactions ?? []).forEach((i, k) => parts.push(`${num(i.weight)} * ${c.interactions[k]}`));
  if (p.following) parts.push(`${num(p.following.boost)} * ${c.followed}`);
  const base = parts.length ? `(${parts.join(' + ')})` : '0.0';
  const f = p.freshness;
  if (!f) return base;
  if (f.gravity !== undefined) return `((${base} + ${num(f.weight)}) / pow(${c.age} + 2.0, ${num(f.gravity)}))`;
  if (f.halfLifeHours !== undefined) return `(${base} + ${num(f.weight)} * pow(2.0, -${c.age} / ${num(f.halfLifeHours)}))`;
  return base;
}

/** The relevance term's SQL from FTS5's bm25 value. */
export function relevanceSql(p: FeedProfile, bm25: string): string {
  return p.text ? `(${num(p.text.weight)} * -(${bm25}))` : '0.0';
}

export interface ScoreTerms {
  score: number;
  relevance: number;
  ageHours: number;
  interactions: Record<string, number>;
  followed: boolean;
}

/** The terms of one ranked row (columns named as rankSql selects them) for `explain`. */
export function termsOf(p: FeedProfile, row: Record<string, unknown>): ScoreTerms {
  const interactions: Record<string, number> = {};
  (p.interactions ?? []).forEach((i, k) => {
    interactions[`${i.collection}.${i.field}`] = Number(row[`i${k}`] ?? 0);
  });
  return {
    score: Number(row.score),
    relevance: Number(row.rel ?? 0),
    ageHours: Number(row.age),
    interactions,
    followed: Number(row.fol ?? 0) === 1,
  };
}

/** True when the score is a strictly decreasing function of age alone (ranking can walk the date index). */
export function ageOnly(p: FeedProfile, hasQuery: boolean): boolean {
  const f = p.freshness;
  if (!f || f.weight <= 0 || (f.gravity === undefined && f.halfLifeHours === undefined)) return false;
  if (f.gravity !== undefined && f.gravity <= 0) return false;
  if (f.halfLifeHours !== undefined && f.gravity === undefined && f.halfLifeHours <= 0) return false;
  if ((p.interactions ?? []).some((i) => i.weight !== 0)) return false;
  if (p.text && hasQuery && p.text.weight !== 0) return false;
  // A boost that every item gets (following.only) or none can get is a constant.
  if (p.following && p.following.boost !== 0 && !p.following.only) return false;
  return true;
}
