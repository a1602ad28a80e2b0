// Runs a RankPlan (feed-sql.ts) and packs the result. With a candidate window it ranks only the newest m
// items (by the date index) plus the K largest values of each counter, and keeps that ranking when it is
// provably the full one; otherwise it widens the window and tries again, ending with the full ranking.
//
// Why an accepted window is exact: every item outside it has age >= the cut's and each interaction value
// <= its counter's K-th largest, so its score is at most `bound` (score.ts: boundSql, the score formula at
// those values). The window ranks its candidates with the same SQL terms and order as the full ranking
// (score DESC, fld DESC, rid DESC). If it keeps `cap` items and the last one's score is strictly above the
// bound, every item left out scores strictly below every kept item, so the full ranking's first `cap`
// items are exactly these, in this order, with these terms.
import type { FeedProfile } from '../../config.js';
import type { RankPlan } from './feed-sql.js';
import { packTerms, termWidth } from './score.js';

export type Exec = (sql: string, bindings: Record<string, unknown>) => Record<string, unknown>[];

/** How a ranking was obtained (for metrics and the benchmark). */
export interface WindowStats {
  /** Window rankings run (0: the profile has no window). */
  attempts: number;
  /** The last window's size: newest items taken from the date index, and top K per counter. */
  m: number;
  k: number;
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
  /** First window: the newest `m0` items and the top `k0` of each counter. Defaults: 2 * cap and cap. */
  m0?: number;
  k0?: number;
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
  let m = Math.max(1, opts.m0 ?? 2 * cap);
  let k = Math.max(1, opts.k0 ?? cap);
  const maxAttempts = opts.maxAttempts ?? 6;
  let attempts = 0;
  const size = Number(exec(w.size.sql, w.size.bindings)[0]?.n ?? 0);
  while (attempts < maxAttempts && 2 * m <= size) {
    const cut = exec(w.cut.sql, { ...w.cut.bindings, o: m - 1 })[0];
    // Fewer than m items: a window would hold about all of them.
    if (!cut || cut.v === null || cut.v === undefined) break;
    attempts++;
    const rows = exec(w.rank.sql, { ...w.rank.bindings, [w.cutParam]: cut.v, [w.kParam]: k });
    if (accepted(rows, cap)) return { rows, stats: { attempts, m, k, result: 'window' } };
    // Too few visible candidates: grow m to where about 2 * cap would be visible at the rate seen.
    m = rows.length >= cap ? 4 * m : Math.max(4 * m, Math.ceil((2 * cap * m) / Math.max(1, rows.length)));
    k *= 4;
  }
  return { rows: exec(plan.full.sql, plan.full.bindings), stats: { attempts, m, k, result: 'full' } };
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
