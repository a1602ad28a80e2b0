// Parser for PocketBase's `sort` query parameter (tools/search/sort.go ParseSortFromString plus the limits
// that Provider.Exec applies): comma-separated fields, optional '-' (DESC) or '+' (ASC) prefix, the
// special `@random` and `@rowid` keys, at most 8 entries, each at most 255 bytes.

import { FilterSyntaxError, identifierNode, snippet, type IdentifierNode } from './ast.js';
import { utf8Length } from './parser.js';

/** DefaultSortExprLimit in tools/search/provider.go. */
export const MAX_SORT_FIELDS = 8;
/** MaxSortFieldLength in tools/search/provider.go (bytes, measured after the prefix is removed). */
export const MAX_SORT_FIELD_LENGTH = 255;

export type SortDirection = 'ASC' | 'DESC';

export type SortItem =
  | { kind: 'field'; field: IdentifierNode; direction: SortDirection }
  /** `@random`; PocketBase ignores a direction prefix and emits RANDOM(). */
  | { kind: 'random' }
  /** `@rowid`: SQLite's _rowid_ of the main table. */
  | { kind: 'rowid'; direction: SortDirection };

export interface ParseSortOptions {
  maxFields?: number;
  maxFieldLength?: number;
}

/**
 * Parse a sort parameter. An empty string yields [] (PocketBase skips an empty `sort`). Every entry must be
 * a name PocketBase's field resolver could accept (see isSortableName); anything else fails there, so we
 * fail early. Whether a field exists, or resolves to a plain column (PocketBase
 * refuses sort expressions with bound parameters, such as most `@request.*` values), is for the compiler.
 */
export function parseSort(raw: string, options: ParseSortOptions = {}): SortItem[] {
  if (typeof raw !== 'string') throw new FilterSyntaxError('syntax', 'sort must be a string');
  if (raw === '') return [];
  const maxFields = options.maxFields ?? MAX_SORT_FIELDS;
  const maxFieldLength = options.maxFieldLength ?? MAX_SORT_FIELD_LENGTH;
  // PocketBase counts every comma-separated entry, empty ones included, before looking at any of them;
  // the scan stops at the first comma over the limit so huge input costs nothing.
  for (let i = raw.indexOf(','), count = 2; i !== -1; i = raw.indexOf(',', i + 1), count++) {
    if (count > maxFields) throw new FilterSyntaxError('sort_limit', `more than ${maxFields} sort fields`);
  }
  const items: SortItem[] = [];
  let start = 0;
  for (;;) {
    const comma = raw.indexOf(',', start);
    const stop = comma === -1 ? raw.length : comma;
    items.push(parseSortEntry(raw, start, stop, maxFieldLength));
    if (comma === -1) return items;
    start = comma + 1;
  }
}

function parseSortEntry(raw: string, start: number, stop: number, maxFieldLength: number): SortItem {
  let s = start;
  let e = stop;
  while (s < e && isGoSpace(raw.charCodeAt(s))) s++;
  while (e > s && isGoSpace(raw.charCodeAt(e - 1))) e--;
  let direction: SortDirection = 'ASC';
  const first = raw.charCodeAt(s);
  if (first === 45 /* - */) { direction = 'DESC'; s++; } else if (first === 43 /* + */) s++;
  // Cheap code-unit test first so a huge entry is never scanned in full.
  if (e - s > maxFieldLength || utf8Length(raw.slice(s, e), maxFieldLength) > maxFieldLength) {
    throw new FilterSyntaxError('sort_field_too_long', `sort field longer than ${maxFieldLength} bytes`, s);
  }
  const name = raw.slice(s, e);
  if (name === '@random') return { kind: 'random' };
  if (name === '@rowid') return { kind: 'rowid', direction };
  if (!isSortableName(name)) throw new FilterSyntaxError('syntax', `invalid sort field ${snippet(name)}`, s);
  return { kind: 'field', field: identifierNode(name, s), direction };
}

/**
 * The allowed-name patterns of RecordFieldResolver (core/record_field_resolver.go), hand-matched:
 *   ^\w+[\w.:]*$ | ^@request\.(context|method)$ | ^@request\.(auth|body|query|headers)\.[\w.:]*\w+$
 *   | ^@collection\.\w+(:\w+)?\.[\w.:]*\w+$
 * PocketBase hands every sort name to that resolver, so nothing else can ever be sorted on. Note these are
 * looser than fexpr identifiers: `meta.` (trailing dot) is a valid JSON-field sort in PocketBase.
 */
function isSortableName(name: string): boolean {
  if (name.length === 0) return false;
  if (isWord(name.charCodeAt(0))) return allPathChars(name, 1, name.length);
  if (name === '@request.context' || name === '@request.method') return true;
  for (const prefix of REQUEST_PREFIXES) {
    if (name.startsWith(prefix)) return endsInPath(name, prefix.length);
  }
  if (!name.startsWith('@collection.')) return false;
  let i = '@collection.'.length;
  const nameStart = i;
  while (i < name.length && isWord(name.charCodeAt(i))) i++;
  if (i === nameStart) return false;
  if (name.charCodeAt(i) === 58 /* : */) {
    const aliasStart = ++i;
    while (i < name.length && isWord(name.charCodeAt(i))) i++;
    if (i === aliasStart) return false;
  }
  return name.charCodeAt(i) === 46 /* . */ && endsInPath(name, i + 1);
}

const REQUEST_PREFIXES = ['@request.auth.', '@request.body.', '@request.query.', '@request.headers.'];

/** [\w.:]*\w+ over name[from..]: path characters only, at least one, ending in a word character. */
function endsInPath(name: string, from: number): boolean {
  return name.length > from && isWord(name.charCodeAt(name.length - 1)) && allPathChars(name, from, name.length);
}

function allPathChars(name: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = name.charCodeAt(i);
    if (!isWord(c) && c !== 46 /* . */ && c !== 58 /* : */) return false;
  }
  return true;
}

/** Go regexp's \w: ASCII letters, digits and underscore. */
function isWord(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/** unicode.IsSpace from Go, which strings.TrimSpace uses (unlike String.prototype.trim: NEL yes, BOM no). */
function isGoSpace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0x85) return false;
  return c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a)
    || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}
