// Where a records list runs: on the main thread when lists of its shape have been measured cheaper than
// the trip to a read thread (handing the task over and taking the answer back costs the main thread
// about as much as a small list), else on a read thread. A shape is the collection and the query with
// its values blanked, so one post's comments and another's share a cost. Every run, wherever it ran,
// counts towards its shape's cost; a shape goes to a thread until a few of its runs are measured.
// Placement only: the answer is the same wherever it is computed.
import { Lru } from '../lru.js';

/** The query parameters that decide a list's cost, with filter and sort values blanked. */
const COST_PARAMS = ['filter', 'sort', 'expand', 'fields', 'perPage', 'page', 'skipTotal'] as const;

/**
 * A filter or sort with its string and number literals blanked, in one pass (the text is the client's,
 * not yet parsed). Placement only, never a guard: a text it reads wrongly only lands on the other side.
 */
export function blanked(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) j += text[j] === '\\' ? 2 : 1;
      out += '?';
      i = j;
    } else if (ch >= '0' && ch <= '9' && !/[A-Za-z0-9_.@]/.test(text[i - 1] ?? ' ')) {
      let j = i;
      while (j + 1 < text.length && /[0-9.]/.test(text[j + 1])) j++;
      out += '?';
      i = j;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Longer shapes are not kept (memory a client could fill): such lists always go to a thread. */
const MAX_SHAPE = 512;

/** The shape of a list, or null when it is too long to keep (a thread answers it). */
export function shapeOf(collection: string, query: Record<string, string>): string | null {
  let s = collection;
  for (const p of COST_PARAMS) {
    const v = query[p];
    if (v === undefined) continue;
    // perPage and page stay as given: a list of 500 costs more than a list of 1.
    s += `\u0000${p}=${p === 'filter' || p === 'sort' ? blanked(v) : v}`;
    if (s.length > MAX_SHAPE) return null;
  }
  return s;
}

/** The last runs of a shape (a ring) and where it runs now. */
interface Cost { runs: number[]; next: number; here: boolean }

const RUNS_KEPT = 16;

/**
 * A shape's cost: the lower quartile of its last runs. Wall time on two busy cores includes the time a
 * thread waited for a core, which says nothing of what the read itself costs; the lower quartile is
 * close to that, and still moves when the read itself gets dearer.
 */
function costOf(c: Cost): number {
  const sorted = c.runs.slice().sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 4)];
}

export class ReadPlacement {
  private readonly costs = new Lru<string, Cost>(5_000);

  /**
   * `hereBelowMs`: a shape whose cost is under this runs on the main thread; it goes back to the threads
   * once its cost passes twice that (so a shape near the bound does not alternate). 0: always threads.
   * `onPlaced` is told each decision (metrics).
   */
  constructor(private readonly hereBelowMs: number, private readonly onPlaced?: (here: boolean) => void) {}

  /** Whether shapes are measured at all (a bound of 0: every list on the threads). */
  get enabled(): boolean {
    return this.hereBelowMs > 0;
  }

  /** Whether a list of this shape runs on the main thread (null: a shape too long to keep, no). */
  here(shape: string | null): boolean {
    const c = this.hereBelowMs > 0 && shape !== null ? this.costs.get(shape) : undefined;
    const here = c !== undefined && c.here;
    this.onPlaced?.(here);
    return here;
  }

  /** A run of `shape` took `ms` (on either side). */
  record(shape: string, ms: number): void {
    if (this.hereBelowMs <= 0 || !Number.isFinite(ms) || ms < 0) return;
    let c = this.costs.get(shape);
    if (!c) this.costs.set(shape, (c = { runs: [], next: 0, here: false }));
    if (c.runs.length < RUNS_KEPT) c.runs.push(ms);
    else c.runs[c.next] = ms;
    c.next = (c.next + 1) % RUNS_KEPT;
    // Decided once a few runs are in, then after every fourth.
    if (c.runs.length < 4 || c.next % 4 !== 0) return;
    const cost = costOf(c);
    if (c.here && cost > 2 * this.hereBelowMs) c.here = false;
    else if (!c.here && cost < this.hereBelowMs) c.here = true;
  }

  /** A shape's measured cost, in ms (tests, diagnostics). */
  costMs(shape: string): number | undefined {
    const c = this.costs.get(shape);
    return c && c.runs.length > 0 ? costOf(c) : undefined;
  }
}
