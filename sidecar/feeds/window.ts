// Runs a RankPlan (feed-sql.ts) and packs the result. With a candidate window it ranks only the newest m
// items (by the date index) plus the K largest values of each counter (plus, with a search, the l best
// matches by bm25, in FTS5's own order), and keeps that ranking when it is provably the full one;
// otherwise it widens the window and tries again, ending with the full ranking.
//
// Why an accepted window is exact: every item outside it has age >= the cut's, each interaction value
// <= its counter's K-th largest and relevance <= the l-th best match's, so its score is at most `bound`
// (score.ts: boundSql, the score formula at those values). The window ranks its candidates with the same
// SQL terms and order as the full ranking (score DESC, fld DESC, rid DESC). If it keeps `cap` items and
// the last one's score is strictly above the bound, every item left out scores strictly below every kept
// item, so the full ranking's first `cap` items are exactly these, in this order, with these terms (ties
// included: a tie with an item left out would need a score equal to the bound). A search whose matches
// are fewer than l is ranked in full: scoring every match is what the window would cost.
import type { FeedProfile } from '../../config.js';
import type { RankPlan } from './feed-sql.js';
import { packTerms, termWidth } from './score.js';

export type Exec = (sql: string, bindings: Record<string, unknown>) => Record<string, unknown>[];

/** How a ranking was obtained (for metrics and the benchmark). */
export interface WindowStats {
  /** Window rankings run (0: the profile has no window). */
  attempts: number;
  /** The last window's size: newest items taken from the date index, top K per counter, best l matches (0: none). */
  m: number;
  k: number;
  l?: number;
  /** 'window': the last window was accepted; 'full': every item was scored. */
  result: 'window' | 'full';
}

/**
 * A ranking packed for the main thread and the snapshots: ids concatenated (id i is ids[ends[i-1]..ends[i]]),
 * rowids, and the score terms, `width` numbers per item (score.ts: packTerms).
 */
export interface Ranked {
  count: number;
  ids: string;
  ends: Uint32Array;
  rids: Float64Array;
  terms: Float64Array;
  width: number;
  stats: WindowStats;
}

export interface WindowOptions {
  /**
   * First window: the newest `m0` items, the top `k0` of each counter, the best `l0` matches. Defaults:
   * 2 * cap and cap; with a search cap, 8 * cap and 2 * cap (the best matches by relevance often tie,
   * so the counters decide and a window of them accepts at once what a narrower one accepts only widened).
   */
  m0?: number;
  k0?: number;
  l0?: number;
  /** Window rankings tried before the full one. Default 6. A window over more than half the items is not tried. */
  maxAttempts?: number;
}

/** Relative margin on the bound: float rounding of pow() in a libm that is not correctly rounded. */
const MARGIN = 1e-12;

/** True when a window ranking is the full ranking's prefix (see the file comment). */
export function accepted(rows: Record<string, unknown>[], cap: number): boolean {
  if (rows.length < cap) return false;
  const last = rows[cap - 1];
  const score = Number(last.score);
  const bound = Number(last.bound);
  return Number.isFinite(score) && Number.isFinite(bound) && score > bound + Math.abs(bound) * MARGIN;
}

/** The rows of the ranking (best first, at most plan.cap) and how they were obtained. */
export function rankRows(plan: RankPlan, exec: Exec, opts: WindowOptions = {}): { rows: Record<string, unknown>[]; stats: WindowStats } {
  const w = plan.window;
  const cap = plan.cap;
  if (!w) return { rows: exec(plan.full.sql, plan.full.bindings), stats: { attempts: 0, m: 0, k: 0, result: 'full' } };
  let m = Math.max(1, opts.m0 ?? (w.top ? cap : 2 * cap));
  let k = Math.max(1, opts.k0 ?? (w.top ? 8 * cap : cap));
  let l = w.top ? Math.max(1, opts.l0 ?? 2 * cap) : 0;
  const maxAttempts = opts.maxAttempts ?? 6;
  let attempts = 0;
  const size = Number(exec(w.size.sql, w.size.bindings)[0]?.n ?? 0);
  const stats = (result: WindowStats['result']): WindowStats => ({ attempts, m, k, ...(w.top ? { l } : {}), result });
  // The best matches by relevance cost one bm25 per match whatever their number: read once for the next
  // windows too (4 l), again only when a window needs more.
  let top: Record<string, unknown>[] = [];
  let fetched = 0;
  while (attempts < maxAttempts && 2 * m <= size) {
    const cut = exec(w.cut.sql, { ...w.cut.bindings, o: m - 1 })[0];
    // Fewer than m items: a window would hold about all of them.
    if (!cut || cut.v === null || cut.v === undefined) break;
    const bindings: Record<string, unknown> = { ...w.rank.bindings, [w.cutParam]: cut.v, [w.kParam]: k };
    if (w.top) {
      if (l > fetched && top.length === fetched) top = exec(w.top.sql, { ...w.top.bindings, l: (fetched = 4 * l) });
      // Fewer than l matches: every match would be a candidate.
      if (top.length < l) break;
      bindings[w.topParam] = JSON.stringify(top.slice(0, l).map((r) => Number(r.rid)));
      bindings[w.bmParam] = Number(top[l - 1].bm);
    }
    attempts++;
    const rows = exec(w.rank.sql, bindings);
    if (accepted(rows, cap)) return { rows, stats: stats('window') };
    // Too few visible candidates: grow m (and l) to where about 2 * cap would be visible at the rate seen.
    const grow = (x: number) => (rows.length >= cap ? 4 * x : Math.max(4 * x, Math.ceil((2 * cap * x) / Math.max(1, rows.length))));
    m = grow(m);
    if (w.top) l = grow(l);
    k *= 4;
  }
  return { rows: exec(plan.full.sql, plan.full.bindings), stats: stats('full') };
}

export function pack(p: FeedProfile, rows: Record<string, unknown>[], stats: WindowStats): Ranked {
  const width = termWidth(p);
  const ends = new Uint32Array(rows.length);
  const rids = new Float64Array(rows.length);
  const terms = new Float64Array(rows.length * width);
  let ids = '';
  for (let i = 0; i < rows.length; i++) {
    ids += String(rows[i].id);
    ends[i] = ids.length;
    rids[i] = Number(rows[i].rid);
    packTerms(p, rows[i], terms, i * width);
  }
  return { count: rows.length, ids, ends, rids, terms, width, stats };
}

export function rank(p: FeedProfile, plan: RankPlan, exec: Exec, opts?: WindowOptions): Ranked {
  const { rows, stats } = rankRows(plan, exec, opts);
  return pack(p, rows, stats);
}

/** The items of `r` at `positions` (ascending), at most `max` of them, with their rowids and terms. */
export function itemsAt(r: Ranked, positions: ArrayLike<number>, max: number): Ranked {
  const n = Math.min(positions.length, max);
  const ends = new Uint32Array(n);
  const rids = new Float64Array(n);
  const terms = new Float64Array(n * r.width);
  let ids = '';
  for (let j = 0; j < n; j++) {
    const i = positions[j];
    ids += idAt(r, i);
    ends[j] = ids.length;
    rids[j] = r.rids[i];
    terms.set(r.terms.subarray(i * r.width, (i + 1) * r.width), j * r.width);
  }
  return { count: n, ids, ends, rids, terms, width: r.width, stats: r.stats };
}

/** `a` followed by the items of `b` that `a` does not hold, in `b`'s order, at most `max` in all. */
export function extend(a: Ranked, b: Ranked, max: number): Ranked {
  const have = new Set<number>(a.rids);
  const add: number[] = [];
  for (let i = 0; i < b.count && a.count + add.length < max; i++) if (!have.has(b.rids[i])) add.push(i);
  if (add.length === 0) return a;
  const tail = itemsAt(b, add, add.length);
  const ends = new Uint32Array(a.count + tail.count);
  ends.set(a.ends);
  for (let j = 0; j < tail.count; j++) ends[a.count + j] = a.ids.length + tail.ends[j];
  const rids = new Float64Array(a.count + tail.count);
  rids.set(a.rids);
  rids.set(tail.rids, a.count);
  const terms = new Float64Array(rids.length * a.width);
  terms.set(a.terms);
  terms.set(tail.terms, a.count * a.width);
  return { count: rids.length, ids: a.ids + tail.ids, ends, rids, terms, width: a.width, stats: b.stats };
}

/** Id of item i. */
export function idAt(r: Ranked, i: number): string {
  return r.ids.slice(i === 0 ? 0 : r.ends[i - 1], r.ends[i]);
}

/** Ids of items [from, to). */
export function idsBetween(r: Ranked, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = Math.max(0, from); i < Math.min(r.count, to); i++) out.push(idAt(r, i));
  return out;
}
