// The replica file: one better-sqlite3 database (WAL) with a table per replicated collection, the
// collection definitions, and the sync position. Every change is applied in one synchronous
// transaction together with the new position, so a reader never sees a half-applied batch.
import Database from 'better-sqlite3';
import {
  createIndexSql, createTableSql, decodeRow, encodeRecord, quoteIdent, ROWID_COLUMN, rowidAlias, tableSpec,
  type PbCollection, type TableSpec,
} from './schema.js';
import { syncIndexes } from './indexes.js';
import type { PlannerSchema } from './change-source.js';

/** Bump when the table layout changes: a replica of another format is rebuilt. */
export const FORMAT_VERSION = '3';

/** How much of the replica file a read-only connection maps (address space, not memory). */
const READ_MMAP_BYTES = 1 << 30;

/**
 * A table's rows in segments of SEGMENT_SIZE rowids (segment = floor(rowid / SEGMENT_SIZE)). `_hapta_segments` holds, per table and
 * segment, the position of the last batch that inserted, changed or deleted a row there (no row: none
 * since the collection definitions last changed, which every table replacement bumps). A reader may keep
 * a count per segment and recount only the segments whose version moved (sidecar/reads/query.ts).
 */
export const SEGMENT_SIZE = 4096;

/** The segment a rowid is in. */
export function segmentOf(rowid: number): number {
  return Math.floor(rowid / SEGMENT_SIZE);
}

export interface ChangeRow {
  seq: number;
  coll: string;
  rid: string;
  op: string;
  at: number;
}

export interface RecordPage {
  rowids: number[];
  records: Record<string, unknown>[];
}

export interface Position {
  seq: number;
  anchor: ChangeRow | null;
}

interface CatalogEntry {
  collection: PbCollection;
  spec: TableSpec;
}

export class ReplicaStore {
  readonly db: Database.Database;
  private catalog = new Map<string, CatalogEntry>();
  private statements = new Map<string, { upsert: Database.Statement; remove: Database.Statement; segmented: boolean }>();
  private segmentStatement: Database.Statement | null = null;
  private byIdStatements = new Map<string, Database.Statement>();
  private readonly readStatements = new Map<string, Database.Statement>();
  private positionCache: Position | null = null;
  private upperCache: number | null = null;
  private plannerCache: PlannerSchema | null | undefined = undefined;
  /** Called with a collection's name after its table was replaced, created or dropped. */
  readonly tableListeners = new Set<(collection: string) => void>();

  private readonly readonly: boolean;

  constructor(readonly path: string, opts: { readonly?: boolean } = {}) {
    this.readonly = opts.readonly ?? false;
    this.db = new Database(path, { readonly: this.readonly, fileMustExist: this.readonly });
    if (this.readonly) {
      this.db.pragma('query_only = ON');
      // A connection's page cache is emptied whenever another connection commits (every applied batch):
      // read through a memory map instead, so a new read transaction finds the pages where the OS keeps them.
      this.db.pragma(`mmap_size = ${READ_MMAP_BYTES}`);
    } else {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.initMeta();
      // a replica analysed by an earlier version of the sidecar may hold samples
      this.withoutSamples(() => {});
    }
    // The version before the definitions: a change between the two makes the next refresh() reload.
    if (this.readonly) this.loadedCatalog = this.catalogVersion;
    this.loadCatalog();
  }

  private initMeta(): void {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS _hapta_state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS _hapta_collections (
        id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL, definition TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS _hapta_segments (
        tbl TEXT NOT NULL, seg INTEGER NOT NULL, v INTEGER NOT NULL, PRIMARY KEY (tbl, seg)) WITHOUT ROWID;
      CREATE VIEW IF NOT EXISTS _hapta_fields AS
        SELECT c.name AS collection, json_extract(f.value, '$.name') AS field, json_extract(f.value, '$.type') AS type,
               COALESCE(json_extract(f.value, '$.hidden'), 0) AS hidden
        FROM _hapta_collections c, json_each(c.definition, '$.fields') f;
    `);
    if (this.getState('format') === null) this.setState('format', FORMAT_VERSION);
  }

  /**
   * Table statistics for SQLite's query planner (ANALYZE; all tables, or the given ones). Without them
   * it prefers an index that filters over one that walks the ORDER BY, and sorts every match. Sampled
   * statistics (analysis_limit) misjudged exactly that choice, so the whole index is read: about 0.3 s
   * for 700k records. Only the per-index averages (sqlite_stat1) are kept, not STAT4's samples of key
   * values (withoutSamples).
   */
  analyze(tables?: readonly string[]): void {
    this.db.pragma('analysis_limit = 0');
    this.withoutSamples(() => {
      if (!tables) this.db.exec('ANALYZE');
      else for (const t of tables) this.db.exec(`ANALYZE ${quoteIdent(t)}`);
    });
  }

  /** Refreshes statistics of tables whose size changed a lot since they were analysed (cheap otherwise). */
  optimize(): void {
    this.withoutSamples(() => this.db.pragma('optimize'));
  }

  /**
   * Runs `analyse` and deletes STAT4's samples of key values in the same transaction (readers never see
   * them), keeping the per-index averages (sqlite_stat1). With samples SQLite plans a statement again at
   * every run whose bound value meets a sampled index (`post = ?`, `author = ?`): about 80 µs more for a
   * page and its count, three times their cost. PocketBase's own statistics have no samples either (the
   * plans mirrored for the order of ties), and the plan samples would pick for a popular value, walking
   * the sort's index, is chosen from the count (query.ts, sortWalk).
   */
  private withoutSamples(analyse: () => void): void {
    let dropped = false;
    this.db.transaction(() => {
      analyse();
      const has = this.db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat4'").get();
      if (has && this.db.prepare('SELECT 1 FROM sqlite_stat4 LIMIT 1').get()) {
        this.db.exec('DELETE FROM sqlite_stat4');
        dropped = true;
      }
    })();
    // this connection loaded the samples with the statistics: load them again without
    if (dropped) this.db.exec('ANALYZE sqlite_schema');
  }

  // Read on every request (the instance, with the position): prepared once.
  private stateStatements: { get: Database.Statement; set: Database.Statement } | null = null;

  private get state(): { get: Database.Statement; set: Database.Statement } {
    return (this.stateStatements ??= {
      get: this.db.prepare('SELECT value FROM _hapta_state WHERE key = ?'),
      set: this.db.prepare('INSERT INTO _hapta_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    });
  }

  getState(key: string): string | null {
    const row = this.state.get.get(key) as { value: string } | undefined;
    return row ? row.value : null;
  }

  setState(key: string, value: string): void {
    this.state.set.run(key, value);
  }

  get format(): string | null {
    return this.getState('format');
  }

  /** The PocketBase database this replica copies. Read on every request: cached (initialise sets it). */
  get instance(): string | null {
    if (this.instanceCache === undefined) this.instanceCache = this.getState('instance');
    return this.instanceCache;
  }

  private instanceCache: string | null | undefined;

  /** The last change applied: every change up to it is in the replica. Read on every request: cached. */
  get position(): Position {
    if (!this.positionCache) {
      const seq = Number(this.getState('seq') ?? '0');
      const anchor = this.getState('anchor');
      this.positionCache = { seq, anchor: anchor ? (JSON.parse(anchor) as ChangeRow) : null };
    }
    return this.positionCache;
  }

  /**
   * A position no state in the replica is newer than. Records arrive as PocketBase holds them when the
   * log is read, so a record can be newer than the position (a write committed during the read): what a
   * reader saw here is bounded by this, not by the position.
   */
  get upper(): number {
    this.upperCache ??= Number(this.getState('upper') ?? '0');
    return Math.max(this.upperCache, this.position.seq);
  }

  /** Raises the upper bound (records or copies read from PocketBase up to the log head `seq`). */
  raiseUpper(seq: number): void {
    if (seq <= this.upper) return;
    this.setState('upper', String(seq));
    this.upperCache = seq;
  }

  /** PocketBase's own SQL of the replicated tables and their planner statistics (see ChangeSource). */
  get plannerSchema(): PlannerSchema | null {
    if (this.plannerCache === undefined) {
      const raw = this.getState('planner_schema');
      this.plannerCache = raw ? (JSON.parse(raw) as PlannerSchema) : null;
    }
    return this.plannerCache;
  }

  setPlannerSchema(schema: PlannerSchema | null): void {
    const raw = schema ? JSON.stringify(schema) : '';
    if (raw === (this.getState('planner_schema') ?? '')) return;
    this.db.transaction(() => {
      this.setState('planner_schema', raw);
      this.bumpCatalog();
    })();
    this.plannerCache = schema;
  }

  /**
   * Bumped in the same transaction as every change to the collection definitions or the planner schema:
   * another connection (a read thread) reloads what it derived from them when this differs from what it
   * loaded, inside its read transaction, so it never pairs old definitions with newer data.
   */
  get catalogVersion(): string {
    return this.getState('catalog') ?? '0';
  }

  private bumpCatalog(): void {
    this.setState('catalog', String(Number(this.getState('catalog') ?? '0') + 1));
  }

  private loadedCatalog = '';

  /** For a read-only connection, inside a read transaction: reloads the definitions if they changed. */
  refresh(): void {
    if (!this.readonly) return; // the writer's definitions are always its own, current
    const version = this.catalogVersion;
    if (version === this.loadedCatalog) return;
    this.loadCatalog();
    this.plannerCache = undefined;
    this.positionCache = null;
    this.upperCache = null;
    this.instanceCache = undefined;
    this.loadedCatalog = version;
  }

  private setPosition(seq: number, anchor: ChangeRow | null): void {
    this.setState('seq', String(seq));
    this.setState('anchor', anchor ? JSON.stringify(anchor) : '');
    this.positionCache = null;
  }

  loadCatalog(): void {
    this.catalog.clear();
    this.statements.clear();
    this.byIdStatements.clear();
    this.readStatements.clear();
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_hapta_collections'").get();
    if (!exists) return;
    const rows = this.db.prepare('SELECT definition FROM _hapta_collections').all() as { definition: string }[];
    for (const r of rows) {
      const collection = JSON.parse(r.definition) as PbCollection;
      this.catalog.set(collection.id, { collection, spec: tableSpec(collection) });
    }
  }

  collections(): PbCollection[] {
    return [...this.catalog.values()].map((e) => e.collection);
  }

  entry(collectionId: string): CatalogEntry | undefined {
    return this.catalog.get(collectionId);
  }

  /** Starts a replica of one PocketBase database (instance) at a known log position. */
  initialise(instance: string, position: Position): void {
    try {
      this.db.transaction(() => {
        this.setState('instance', instance);
        this.setState('format', FORMAT_VERSION);
        this.setPosition(position.seq, position.anchor);
      })();
    } finally {
      this.instanceCache = undefined;
      this.positionCache = null;
    }
  }

  /** A build table for copying a collection next to the live one. */
  createBuildTable(collection: PbCollection): string {
    const spec = tableSpec(collection);
    const build = `_hapta_build_${collection.id}`;
    this.db.exec(`DROP TABLE IF EXISTS ${quoteIdent(build)}`);
    this.db.exec(createTableSql(spec, build));
    return build;
  }

  /** Records into a build table; their rowids are joined in later (joinRowids). */
  insertPage(table: string, collection: PbCollection, records: Record<string, unknown>[]): void {
    const spec = tableSpec(collection);
    const cols = [...spec.columns.map((c) => quoteIdent(c.name)), quoteIdent(ROWID_COLUMN)];
    const stmt = this.db.prepare(`INSERT OR REPLACE INTO ${quoteIdent(table)} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
    this.db.transaction(() => {
      for (const r of records) stmt.run(encodeRecord(spec, r, 0));
    })();
  }

  createRowidTable(build: string): string {
    const name = `${build}__rowids`;
    this.db.exec(`DROP TABLE IF EXISTS ${quoteIdent(name)}; CREATE TABLE ${quoteIdent(name)} (id TEXT PRIMARY KEY NOT NULL, r INTEGER NOT NULL) WITHOUT ROWID`);
    return name;
  }

  insertRowids(table: string, ids: string[], rowids: number[]): void {
    const stmt = this.db.prepare(`INSERT OR REPLACE INTO ${quoteIdent(table)} (id, r) VALUES (?, ?)`);
    this.db.transaction(() => {
      for (let i = 0; i < ids.length; i++) stmt.run(ids[i], rowids[i]);
    })();
  }

  /** Records without a pair were created during the copy: the change log sets their rowid. */
  joinRowids(build: string, rowidTable: string): void {
    this.db.exec(`UPDATE ${quoteIdent(build)} AS b SET ${quoteIdent(ROWID_COLUMN)} = r.r FROM ${quoteIdent(rowidTable)} AS r WHERE r.id = b.id`);
  }

  dropTable(name: string): void {
    this.db.exec(`DROP TABLE IF EXISTS ${quoteIdent(name)}`);
  }

  /** Replaces (or creates) a collection's table with a finished build table, atomically. */
  publishTable(collection: PbCollection, build: string): void {
    const spec = tableSpec(collection);
    this.db.transaction(() => {
      const previous = this.findByIdOrName(collection.id, collection.name);
      for (const p of previous) this.dropCollectionTable(p);
      this.db.exec(`ALTER TABLE ${quoteIdent(build)} RENAME TO ${quoteIdent(spec.table)}`);
      for (const sql of createIndexSql(spec)) this.db.exec(sql);
      syncIndexes(this.db, spec, collection.indexes ?? []);
      this.db.prepare('INSERT INTO _hapta_collections (id, name, type, definition) VALUES (?, ?, ?, ?)')
        .run(collection.id, collection.name, collection.type, JSON.stringify(collection));
      this.bumpCatalog();
    })();
    this.loadCatalog();
    for (const fn of this.tableListeners) fn(collection.name);
  }

  private findByIdOrName(id: string, name: string): PbCollection[] {
    return this.collections().filter((c) => c.id === id || c.name === name);
  }

  private dropCollectionTable(c: PbCollection): void {
    this.db.exec(`DROP TABLE IF EXISTS ${quoteIdent(c.name)}`);
    this.db.prepare('DELETE FROM _hapta_segments WHERE tbl = ?').run(c.name);
    this.db.prepare('DELETE FROM _hapta_collections WHERE id = ?').run(c.id);
  }

  /** A collection deleted in PocketBase (or no longer replicated). */
  dropCollection(collectionId: string): void {
    const entry = this.catalog.get(collectionId);
    if (!entry) return;
    this.db.transaction(() => {
      this.dropCollectionTable(entry.collection);
      this.bumpCatalog();
    })();
    this.loadCatalog();
    for (const fn of this.tableListeners) fn(entry.collection.name);
  }

  /** Rules or options changed but the table shape did not: only the stored definition changes. */
  updateDefinition(collection: PbCollection): void {
    this.db.transaction(() => {
      this.db.prepare('UPDATE _hapta_collections SET definition = ?, type = ? WHERE id = ?')
        .run(JSON.stringify(collection), collection.type, collection.id);
      syncIndexes(this.db, tableSpec(collection), collection.indexes ?? []);
      this.bumpCatalog();
    })();
    this.loadCatalog();
  }

  private statementsFor(entry: CatalogEntry) {
    let s = this.statements.get(entry.spec.collectionId);
    if (!s) {
      const { spec } = entry;
      const cols = [...spec.columns.map((c) => quoteIdent(c.name)), quoteIdent(ROWID_COLUMN)];
      const updates = cols.filter((c) => c !== '"id"').map((c) => `${c} = excluded.${c}`);
      // Each row's rowid, for the segment it is in (none when every alias of the rowid is a field).
      const alias = rowidAlias(spec);
      const returning = alias ? ` RETURNING ${alias} AS r` : '';
      s = {
        upsert: this.db.prepare(`INSERT INTO ${quoteIdent(spec.table)} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
          ON CONFLICT(id) DO UPDATE SET ${updates.join(', ')}${returning}`),
        remove: this.db.prepare(`DELETE FROM ${quoteIdent(spec.table)} WHERE id = ?${returning}`),
        segmented: alias !== null,
      };
      this.statements.set(spec.collectionId, s);
    }
    return s;
  }

  /**
   * Applies one batch of the change log: each touched record takes the state PocketBase returned for it
   * (present: upsert; absent: delete), and the position moves to the batch's last change, all in one
   * transaction. Collections in `skip` were just copied whole and are newer than this batch's lookups.
   */
  applyBatch(changes: ChangeRow[], records: Record<string, RecordPage>, skip: ReadonlySet<string> = new Set(), upper = 0): number {
    if (changes.length === 0) return 0;
    let touchedCount = 0;
    const last = changes[changes.length - 1];
    this.db.transaction(() => {
      const touched = new Map<string, Set<string>>();
      for (const ch of changes) {
        if (ch.coll === '_collections' || skip.has(ch.coll)) continue;
        let ids = touched.get(ch.coll);
        if (!ids) touched.set(ch.coll, (ids = new Set()));
        ids.add(ch.rid);
      }
      for (const [collId, ids] of touched) {
        const entry = this.catalog.get(collId);
        if (!entry) continue; // not replicated
        const st = this.statementsFor(entry);
        const page = records[collId] ?? { rowids: [], records: [] };
        const present = new Set<string>();
        for (const r of page.records) present.add(String(r.id));
        const segments = new Set<number>();
        for (const id of ids) {
          if (present.has(id)) continue;
          if (!st.segmented) st.remove.run(id);
          else {
            const gone = st.remove.get(id) as { r: number } | undefined;
            if (gone) segments.add(segmentOf(gone.r));
          }
        }
        for (let i = 0; i < page.records.length; i++) {
          const values = encodeRecord(entry.spec, page.records[i], page.rowids[i]);
          if (!st.segmented) st.upsert.run(values);
          else segments.add(segmentOf((st.upsert.get(values) as { r: number }).r));
        }
        for (const seg of segments) this.markSegment(entry.spec.table, seg, last.seq);
        touchedCount += ids.size;
      }
      this.setPosition(last.seq, last);
      this.raiseUpper(upper);
    })();
    return touchedCount;
  }

  /** A segment of a table changed in the batch that ends at `seq` (positions only grow). */
  private markSegment(table: string, seg: number, seq: number): void {
    this.segmentStatement ??= this.db.prepare('INSERT INTO _hapta_segments (tbl, seg, v) VALUES (?, ?, ?) ON CONFLICT (tbl, seg) DO UPDATE SET v = excluded.v');
    this.segmentStatement.run(table, seg, seq);
  }

  /**
   * A statement on the replica, prepared once per text (up to 500 texts; all dropped with the catalog).
   * For the sidecar's own small lookups by id; the read path keeps its own cache (sidecar/reads/query.ts).
   */
  prepared(sql: string): Database.Statement {
    let st = this.readStatements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      if (this.readStatements.size >= 500) this.readStatements.clear();
      this.readStatements.set(sql, st);
    }
    return st;
  }

  /** One record as a superuser sees it through PocketBase's API, or null. */
  record(collectionId: string, id: string): Record<string, unknown> | null {
    const entry = this.catalog.get(collectionId);
    if (!entry) return null;
    let stmt = this.byIdStatements.get(collectionId);
    if (!stmt) this.byIdStatements.set(collectionId, (stmt = this.db.prepare(`SELECT * FROM ${quoteIdent(entry.spec.table)} WHERE id = ?`)));
    const row = stmt.get(id) as Record<string, unknown> | undefined;
    return row ? decodeRow(entry.spec, row) : null;
  }

  tableNames(): string[] {
    return this.collections().map((c) => c.name);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
