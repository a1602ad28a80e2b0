// Derived data for ranking, kept inside the replica file by SQLite triggers, so it changes in the same
// transaction as the rows it is derived from and is never recounted per request:
//  - interaction counters (e.g. likes per post): an exact count, plus a time-decayed sum
//    Σ 2^((t_i - epoch)/halfLife) whose value now is that sum times 2^(-(now - epoch)/halfLife);
//  - full-text indexes (FTS5, contentless, keyed by the table's rowid) over chosen text fields.
// When a table is copied anew (bootstrap, schema change) its triggers are installed again and its
// derived data rebuilt from scratch. Each counter is indexed on the column that orders its value (the
// decayed sum, or the count), so the K largest values are an index walk (candidate windows of the feeds).
import type { ReplicaStore } from './store.js';
import { quoteIdent } from './schema.js';

export interface CounterSpec {
  /** Name of the counter, e.g. "likes_post": table _hapta_count_likes_post. */
  name: string;
  /** Collection whose records are counted (likes). */
  source: string;
  /** Single relation field of the source pointing at the counted item (post). */
  field: string;
  /** Date field of the source for the decayed sum (created). */
  timeField?: string;
  halfLifeHours?: number;
}

export interface TextSpec {
  collection: string;
  fields: string[];
}

export interface FeedIndexSpec {
  counters: CounterSpec[];
  texts: TextSpec[];
}

/**
 * Layout of the derived tables. Stored with the spec: a file holding another layout is rebuilt on attach.
 * 2: counters carry an index on their ordering column.
 */
export const FEED_INDEX_LAYOUT = 2;

/** Decayed sums are rebased when "now" is this many half-lives past their epoch (2^400 is far from overflow). */
const REBASE_AFTER_HALF_LIVES = 400;
const SAFE_NAME = /^[A-Za-z0-9_]{1,64}$/;

export function counterTable(name: string): string {
  return `_hapta_count_${name}`;
}

/** The index of a counter on its ordering column. */
export function counterOrderIndex(name: string): string {
  return `_hapta_count_${name}__top`;
}

/**
 * The column whose order is the counter's current value: the decayed sum (every row shares one decay
 * factor, so the order of `d` is the order of the values) or, without decay, the count.
 */
export function counterOrderColumn(c: CounterSpec): 'd' | 'n' {
  return c.timeField && c.halfLifeHours ? 'd' : 'n';
}

export function ftsTable(collection: string): string {
  return `_hapta_fts_${collection}`;
}

export function julianDay(ms: number): number {
  return ms / 86400000 + 2440587.5;
}

/** SQL for one record's term of the decayed sum (capped, so a date far in the future cannot overflow). */
function decayTerm(c: CounterSpec, epochJd: number, t: string): string {
  if (!c.timeField || !c.halfLifeHours) return '0';
  return `COALESCE(MIN(pow(2, (julianday(${t}) - ${epochJd}) * 24.0 / ${Number(c.halfLifeHours)}), 1e300), 0)`;
}

export class FeedIndex {
  constructor(private readonly store: ReplicaStore, private readonly spec: FeedIndexSpec) {
    for (const c of spec.counters) {
      if (![c.name, c.source, c.field, c.timeField ?? 'x'].every((n) => SAFE_NAME.test(n))) throw new Error(`bad counter spec ${c.name}`);
    }
    for (const t of spec.texts) {
      if (![t.collection, ...t.fields].every((n) => SAFE_NAME.test(n))) throw new Error(`bad text spec ${t.collection}`);
    }
  }

  /**
   * Attaches to the store: rebuilds derived data when a table is replaced, and installs everything now
   * unless the file already holds it for this very spec (triggers live in the file).
   */
  attach(): void {
    this.store.tableListeners.add((name) => this.onPublished(name));
    const key = JSON.stringify({ layout: FEED_INDEX_LAYOUT, ...this.spec });
    if (this.store.getState('feed_index_spec') !== key) {
      this.dropStale();
      for (const name of this.store.tableNames()) this.onPublished(name);
      this.store.setState('feed_index_spec', key);
    }
    this.maybeRebase();
  }

  /** Derived tables and triggers of an older spec or layout. */
  private dropStale(): void {
    const db = this.store.db;
    const rows = db.prepare(`SELECT type, name FROM sqlite_master WHERE (type = 'trigger' AND (name LIKE '\_hapta\_cnt\_%' ESCAPE '\\' OR name LIKE '\_hapta\_fts\_%' ESCAPE '\\'))
      OR (type = 'table' AND (name LIKE '\_hapta\_count\_%' ESCAPE '\\' OR (name LIKE '\_hapta\_fts\_%' ESCAPE '\\' AND sql LIKE 'CREATE VIRTUAL%')))`).all() as { type: string; name: string }[];
    for (const r of rows) db.exec(`DROP ${r.type === 'trigger' ? 'TRIGGER' : 'TABLE'} IF EXISTS ${quoteIdent(r.name)}`);
  }

  /** A collection's table was (re)created: reinstall its triggers and rebuild what derives from it. */
  onPublished(collection: string): void {
    const db = this.store.db;
    db.transaction(() => {
      for (const c of this.spec.counters.filter((x) => x.source === collection)) this.installCounter(c);
      for (const t of this.spec.texts.filter((x) => x.collection === collection)) this.installText(t);
    })();
  }

  private hasColumns(table: string, cols: string[]): boolean {
    const have = new Set((this.store.db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((r) => r.name));
    return have.size > 0 && cols.every((c) => have.has(c));
  }

  /** The epoch (julian day) of a counter's decayed sums. */
  epoch(c: CounterSpec): number {
    return Number(this.store.getState(`counter_epoch:${c.name}`) ?? 'NaN');
  }

  /** Moves decayed sums to a recent epoch before their exponents could grow too large. */
  maybeRebase(nowMs = Date.now()): void {
    for (const c of this.spec.counters) {
      if (!c.halfLifeHours || !c.timeField) continue;
      const epoch = this.epoch(c);
      if (!Number.isFinite(epoch)) continue; // not installed yet (its source table does not exist)
      const halfLives = ((julianDay(nowMs) - epoch) * 24) / c.halfLifeHours;
      if (halfLives < REBASE_AFTER_HALF_LIVES) continue;
      this.store.db.transaction(() => {
        const next = Math.floor(julianDay(nowMs));
        const factor = Math.pow(2, -((next - epoch) * 24) / c.halfLifeHours!);
        this.store.db.prepare(`UPDATE ${quoteIdent(counterTable(c.name))} SET d = d * ?`).run(factor);
        this.store.setState(`counter_epoch:${c.name}`, String(next));
        this.createCounterTriggers(c, next);
      })();
    }
  }

  private installCounter(c: CounterSpec): void {
    const db = this.store.db;
    const table = quoteIdent(counterTable(c.name));
    const src = quoteIdent(c.source);
    const f = quoteIdent(c.field);
    for (const s of ['i', 'd', 'u']) db.exec(`DROP TRIGGER IF EXISTS ${quoteIdent(`_hapta_cnt_${c.name}_${s}`)}`);
    db.exec(`DROP TABLE IF EXISTS ${table}`);
    db.exec(`CREATE TABLE ${table} (target TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL, d REAL NOT NULL) WITHOUT ROWID`);
    db.exec(`CREATE INDEX ${quoteIdent(counterOrderIndex(c.name))} ON ${table} (${counterOrderColumn(c)})`);
    if (!this.hasColumns(c.source, [c.field, ...(c.timeField ? [c.timeField] : [])])) return;
    const epoch = Math.floor(julianDay(Date.now()));
    this.store.setState(`counter_epoch:${c.name}`, String(epoch));
    this.createCounterTriggers(c, epoch);
    db.exec(`INSERT INTO ${table} (target, n, d) SELECT ${f}, COUNT(*), COALESCE(SUM(${decayTerm(c, epoch, quoteIdent(c.timeField ?? 'id'))}), 0)
      FROM ${src} WHERE ${f} != '' GROUP BY ${f}`);
  }

  private createCounterTriggers(c: CounterSpec, epoch: number): void {
    const db = this.store.db;
    const table = quoteIdent(counterTable(c.name));
    const src = quoteIdent(c.source);
    const f = quoteIdent(c.field);
    for (const s of ['i', 'd', 'u']) db.exec(`DROP TRIGGER IF EXISTS ${quoteIdent(`_hapta_cnt_${c.name}_${s}`)}`);
    const add = (ref: 'NEW' | 'OLD', sign: 1 | -1) =>
      `INSERT INTO ${table} (target, n, d) SELECT ${ref}.${f}, ${sign}, ${sign} * ${decayTerm(c, epoch, `${ref}.${quoteIdent(c.timeField ?? 'id')}`)} WHERE ${ref}.${f} != ''
       ON CONFLICT(target) DO UPDATE SET n = n + excluded.n, d = d + excluded.d;`;
    const watched = [f, ...(c.timeField ? [quoteIdent(c.timeField)] : [])];
    db.exec(`CREATE TRIGGER ${quoteIdent(`_hapta_cnt_${c.name}_i`)} AFTER INSERT ON ${src} BEGIN ${add('NEW', 1)} END`);
    db.exec(`CREATE TRIGGER ${quoteIdent(`_hapta_cnt_${c.name}_d`)} AFTER DELETE ON ${src} BEGIN ${add('OLD', -1)}
      DELETE FROM ${table} WHERE target = OLD.${f} AND n <= 0; END`);
    db.exec(`CREATE TRIGGER ${quoteIdent(`_hapta_cnt_${c.name}_u`)} AFTER UPDATE OF ${watched.join(', ')} ON ${src}
      WHEN ${watched.map((w) => `OLD.${w} IS NOT NEW.${w}`).join(' OR ')}
      BEGIN ${add('OLD', -1)} DELETE FROM ${table} WHERE target = OLD.${f} AND n <= 0; ${add('NEW', 1)} END`);
  }

  private installText(t: TextSpec): void {
    const db = this.store.db;
    const fts = quoteIdent(ftsTable(t.collection));
    const src = quoteIdent(t.collection);
    for (const s of ['i', 'd', 'u']) db.exec(`DROP TRIGGER IF EXISTS ${quoteIdent(`_hapta_fts_${t.collection}_${s}`)}`);
    db.exec(`DROP TABLE IF EXISTS ${fts}`);
    if (!this.hasColumns(t.collection, t.fields)) return;
    const cols = t.fields.map(quoteIdent);
    db.exec(`CREATE VIRTUAL TABLE ${fts} USING fts5(${cols.join(', ')}, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`);
    const insert = `INSERT INTO ${fts} (rowid, ${cols.join(', ')}) VALUES (NEW.rowid, ${cols.map((c) => `NEW.${c}`).join(', ')});`;
    db.exec(`CREATE TRIGGER ${quoteIdent(`_hapta_fts_${t.collection}_i`)} AFTER INSERT ON ${src} BEGIN ${insert} END`);
    db.exec(`CREATE TRIGGER ${quoteIdent(`_hapta_fts_${t.collection}_d`)} AFTER DELETE ON ${src} BEGIN DELETE FROM ${fts} WHERE rowid = OLD.rowid; END`);
    db.exec(`CREATE TRIGGER ${quoteIdent(`_hapta_fts_${t.collection}_u`)} AFTER UPDATE OF ${cols.join(', ')} ON ${src}
      WHEN ${cols.map((c) => `OLD.${c} IS NOT NEW.${c}`).join(' OR ')}
      BEGIN DELETE FROM ${fts} WHERE rowid = OLD.rowid; ${insert} END`);
    db.exec(`INSERT INTO ${fts} (rowid, ${cols.join(', ')}) SELECT rowid, ${cols.join(', ')} FROM ${src}`);
  }
}

/** The decayed value of a stored sum at `nowMs` is `d` times this. */
export function decayFactor(halfLifeHours: number, epochJd: number, nowMs: number): number {
  return Math.pow(2, -((julianDay(nowMs) - epochJd) * 24) / halfLifeHours);
}
