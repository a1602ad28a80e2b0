// SQL building blocks shared by the resolver and the query builder: quoted identifiers, named parameters
// (@p1, @p2, ... unique per query so the text is stable and statements can be cached), the JSON helper
// expressions PocketBase uses (tools/dbutils/json.go), and the select query under construction.
import { quoteIdent } from '../../replica/schema.js';

export type Params = Map<string, unknown>;

/** Parameter values of one query; names are handed out in order so equal shapes give equal SQL. */
export class ParamBag {
  private n = 0;
  readonly values = new Map<string, unknown>();

  add(value: unknown, local?: Params): string {
    const name = `p${++this.n}`;
    this.values.set(name, bindable(value));
    local?.set(name, value);
    return name;
  }

  set(name: string, value: unknown): void {
    this.values.set(name, bindable(value));
  }

  /** A fresh, unique alias suffix ("$" cannot occur in a PocketBase name, so no alias can collide). */
  suffix(): string {
    return `$${++this.n}`;
  }

  /** The values used by `sql`, as better-sqlite3 wants them. */
  bindingsFor(sql: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const m of sql.matchAll(/@(p\d+)/g)) {
      if (!(m[1] in out)) out[m[1]] = this.values.get(m[1]);
    }
    return out;
  }
}

/** Go's database/sql bools reach SQLite as integers; JS numbers bind as REAL like Go's float64. */
function bindable(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1n : 0n;
  return v;
}

export const q = quoteIdent;

export function col(alias: string, name: string): string {
  return `${q(alias)}.${q(name)}`;
}

/** dbutils.JSONEach: json_each over the column, wrapping a non-array value in an array. */
export function jsonEach(column: string): string {
  return `json_each(CASE WHEN iif(json_valid(${column}), json_type(${column})='array', FALSE) THEN ${column} ELSE json_array(${column}) END)`;
}

/** dbutils.JSONArrayLength: 0 for '' and NULL, 1 for a non-array scalar. */
export function jsonArrayLength(column: string): string {
  return `json_array_length(CASE WHEN iif(json_valid(${column}), json_type(${column})='array', FALSE) THEN ${column} ELSE (CASE WHEN ${column} = '' OR ${column} IS NULL THEN json_array() ELSE json_array(${column}) END) END)`;
}

/** dbutils.JSONExtract with the path bound as parameters instead of spliced into the SQL text. */
export function jsonExtract(bag: ParamBag, column: string, path: string): string {
  const p = path !== '' && !path.startsWith('[') ? '.' + path : path;
  const a = bag.add('$' + p);
  const b = bag.add('$.pb' + p);
  return `(CASE WHEN json_valid(${column}) THEN JSON_EXTRACT(${column}, @${a}) ELSE JSON_EXTRACT(json_object('pb', ${column}), @${b}) END)`;
}

export interface Join {
  /** SQL of the joined table or table-valued expression. */
  table: string;
  alias: string;
  on: string | null;
}

/** A SELECT being assembled: PocketBase's dbx.SelectQuery reduced to what the read path needs. */
export class SelectParts {
  distinct = false;
  joins: Join[] = [];
  wheres: string[] = [];
  orderBy: string[] = [];

  constructor(readonly table: string) {}

  /**
   * `indexedBy`: an index of the base table the statement must read (PocketBase's statements name none);
   * `wheres`: conditions to use instead of the parts' own.
   */
  from(indexedBy?: string, wheres = this.wheres): string {
    let sql = ` FROM ${q(this.table)}${indexedBy ? ` INDEXED BY ${q(indexedBy)}` : ''}`;
    for (const j of this.joins) sql += ` LEFT JOIN ${j.table} ${q(j.alias)}${j.on ? ` ON ${j.on}` : ''}`;
    if (wheres.length) sql += ` WHERE ${wheres.map((w) => `(${w})`).join(' AND ')}`;
    return sql;
  }

  select(columns: string, indexedBy?: string): string {
    return `SELECT ${this.distinct ? 'DISTINCT ' : ''}${columns}${this.from(indexedBy)}`;
  }
}
