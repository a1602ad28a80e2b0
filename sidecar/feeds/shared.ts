// Rankings shared by every requester (routes.ts): one per profile and search text, over every item any
// requester could be shown (no list rule, filter or requester clause: feed-sql.ts, `shared`), frozen at
// one instant. Each requester's ranking is this order restricted to the items they may see, so a
// requester's first page costs a filter over the shared items instead of a ranking of their own.
//
// A shared ranking is an exact prefix of the full shared order (window.ts), `depth` items deep; when a
// requester keeps too few of its items it is ranked again deeper, at the same instant (so the items
// already kept keep their scores), one deepening at a time. Like first pages, a shared ranking is reused
// for `reuseMs` and rebuilt ahead of its expiry past half of it.
import type { Ranked } from './window.js';

export interface SharedRanking {
  key: string;
  /** The frozen instant of the scores. */
  nowMs: number;
  createdAt: number;
  /** How deep it was ranked: `ranked` holds the first `depth` items of the shared order, or all of them. */
  depth: number;
  ranked: Ranked;
  /** Every item of the shared order is in `ranked` (it holds fewer than `depth`). */
  complete: boolean;
  /** The replica's change count (SharedOptions.mark) when `ranked` was started: equal now, nothing changed since. */
  mark: number;
  /** The deepening under way, if any. */
  pending?: Promise<SharedRanking>;
}

/** Ranks the shared order at `nowMs`, `depth` items deep. */
export type SharedBuild = (nowMs: number, depth: number) => Promise<Ranked>;

export interface SharedOptions {
  /** A shared ranking answers first pages for this long (0: never shared). */
  reuseMs: number;
  /** Shared rankings kept (least recently built dropped first). */
  max: number;
  /** The frozen instant of a new ranking. Default Date.now. */
  clock?: () => number;
  /** Counts the batches the replica applied (routes.ts: the kept pages' count). Default: always 0. */
  mark?: () => number;
}

export class SharedRankings {
  private readonly recent = new Map<string, SharedRanking>();
  private readonly building = new Map<string, Promise<SharedRanking>>();
  private epoch = 0;

  constructor(private readonly opts: SharedOptions) {}

  /**
   * The shared ranking for `key`, at least `depth` deep (or complete): a recent one (deepened when
   * needed), the one being built, or a new one.
   */
  async obtain(key: string, depth: number, build: SharedBuild): Promise<SharedRanking> {
    const now = Date.now();
    const hit = this.recent.get(key);
    const pending = this.building.get(key);
    if (hit && now - hit.createdAt <= this.opts.reuseMs) {
      // Past half its window: its successor is built meanwhile, as deep as this one went.
      if (!pending && now - hit.createdAt > this.opts.reuseMs / 2) this.start(key, hit.depth, build).catch(() => {});
      return this.deepen(hit, depth, build);
    }
    if (pending) return this.deepen(await pending, depth, build);
    return this.start(key, depth, build);
  }

  private start(key: string, depth: number, build: SharedBuild): Promise<SharedRanking> {
    const epoch = this.epoch;
    const nowMs = (this.opts.clock ?? Date.now)();
    const mark = this.opts.mark?.() ?? 0;
    const p = build(nowMs, depth).then((ranked) => {
      const s: SharedRanking = { key, nowMs, createdAt: Date.now(), depth, ranked, complete: ranked.count < depth, mark };
      // A build that finishes after clear() answers its own requests but is not offered to others.
      if (epoch === this.epoch) {
        this.recent.delete(key);
        this.recent.set(key, s);
        while (this.recent.size > this.opts.max) this.recent.delete(this.recent.keys().next().value as string);
      }
      return s;
    });
    this.building.set(key, p);
    const done = () => { if (this.building.get(key) === p) this.building.delete(key); };
    p.then(done, done);
    return p;
  }

  /** `s` ranked again, at its instant, to at least `depth` items (unless complete). */
  async deepen(s: SharedRanking, depth: number, build: SharedBuild): Promise<SharedRanking> {
    while (!s.complete && s.depth < depth) {
      if (!s.pending) {
        const target = depth;
        const mark = this.opts.mark?.() ?? 0;
        const p: Promise<SharedRanking> = build(s.nowMs, target).then((ranked) => {
          if (target > s.depth) {
            s.ranked = ranked;
            s.depth = target;
            s.complete = ranked.count < target;
            s.mark = mark;
          }
          return s;
        });
        s.pending = p;
        const done = () => { if (s.pending === p) s.pending = undefined; };
        p.then(done, done);
      }
      await s.pending;
    }
    return s;
  }

  /** Forget everything (the replica file was replaced). */
  clear(): void {
    this.recent.clear();
    this.building.clear();
    this.epoch++;
  }
}
