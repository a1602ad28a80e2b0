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

/**
 * Numbers kept per ranked item (packed in a Float64Array, `termWidth` per item): score, relevance, age,
 * followed, then one per interaction, from the columns the ranking selects (score, rel, age, fol, i0..).
 */
export function termWidth(p: FeedProfile): number {
  return 4 + (p.interactions?.length ?? 0);
}

export function packTerms(p: FeedProfile, row: Record<string, unknown>, out: Float64Array, at: number): void {
  out[at] = Number(row.score);
  out[at + 1] = Number(row.rel ?? 0);
  out[at + 2] = Number(row.age);
  out[at + 3] = Number(row.fol ?? 0);
  const n = p.interactions?.length ?? 0;
  for (let k = 0; k < n; k++) out[at + 4 + k] = Number(row[`i${k}`] ?? 0);
}

/** The terms of the item packed at `at` (packTerms), for `explain`. */
export function termsAt(p: FeedProfile, packed: Float64Array, at: number): ScoreTerms {
  const interactions: Record<string, number> = {};
  (p.interactions ?? []).forEach((i, k) => {
    interactions[`${i.collection}.${i.field}`] = packed[at + 4 + k];
  });
  return { score: packed[at], relevance: packed[at + 1], ageHours: packed[at + 2], interactions, followed: packed[at + 3] === 1 };
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

/**
 * True when the score of an item left out of a candidate window can be bounded from above (boundSql).
 * A window holds the items whose freshness field is at or after a cut, plus the K largest values of each
 * interaction's counter, plus, with a search, the l matches best by relevance (bm25); any other item has
 * age >= A (the cut's age), each interaction value v_i <= V_i (the counter's K-th largest value, or 0
 * when the counter has fewer than K rows, since then every item with a row is a candidate) and relevance
 * R <= R_l (the l-th best match's; fewer than l matches: every match is a candidate). The score is
 * non-increasing in age and non-decreasing in v_i, R and B when:
 *   - freshness has gravity > 0, or no gravity and halfLifeHours > 0, with weight >= 0;
 *   - every interaction weight is >= 0;
 *   - with a query, text.weight is >= 0.
 * With gravity, base + fw is negative only when a stored sum is (float rounding of a sum of positive
 * terms) or the relevance is: bm25 is negative, so R >= 0 for a weight >= 0, and a bound from R_l >= 0 and
 * non-negative terms over a positive number is >= 0 too.
 */
export function windowable(p: FeedProfile, hasQuery: boolean): boolean {
  const f = p.freshness;
  if (!f || !(f.weight >= 0) || !Number.isFinite(f.weight)) return false;
  if (f.gravity !== undefined ? !(f.gravity > 0) : !(f.halfLifeHours !== undefined && f.halfLifeHours > 0)) return false;
  if ((p.interactions ?? []).some((i) => !(i.weight >= 0) || !Number.isFinite(i.weight))) return false;
  if (p.text && hasQuery && (!(p.text.weight >= 0) || !Number.isFinite(p.text.weight))) return false;
  if (p.following && !Number.isFinite(p.following.boost)) return false;
  return true;
}

/**
 * The upper bound on the score of any item outside a candidate window: the score formula itself (scoreSql)
 * at age = A and v_i = V_i (SQL given), R = R_l (`rel`, SQL given; 0 without relevance) and B = the
 * largest boost an item can get (`followable`: whether any item can count as followed, false for an
 * anonymous requester). Every operation of the formula is monotone in IEEE arithmetic, so the bound holds
 * for the computed scores, not only for the real numbers, as long as A, V_i and R_l are computed like
 * the items' age, values and relevance (see feed-sql.ts).
 */
export function boundSql(p: FeedProfile, b: { rel?: string; age: string; interactions: string[]; followable: boolean }): string {
  const followed = p.following && (p.following.only || (b.followable && p.following.boost > 0)) ? '1' : '0';
  return scoreSql(p, { rel: b.rel ?? '0.0', age: b.age, interactions: b.interactions, followed });
}

/**
 * True when every requester's ranking is the shared ranking's order restricted to the items they may
 * see: the score does not depend on who asks (no following boost, or following.only, whose boost every
 * kept item gets alike).
 */
export function requesterFree(p: FeedProfile): boolean {
  return !p.following || p.following.only === true;
}
