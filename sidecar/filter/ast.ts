// Expression tree and error type for PocketBase filter/rule expressions (fexpr v0.6.0 grammar, as used by
// PocketBase 0.40.4). The tree is a closed discriminated union so a SQL compiler can switch exhaustively;
// this module also classifies raw identifier literals into macros, literals and field paths.

/** Comparison operators accepted by fexpr; the `?`-prefixed ones are the "any/at-least-one" variants. */
export type CmpOp =
  | '=' | '!=' | '>' | '>=' | '<' | '<=' | '~' | '!~'
  | '?=' | '?!=' | '?>' | '?>=' | '?<' | '?<=' | '?~' | '?!~';

export const CMP_OPS: ReadonlySet<string> = new Set<CmpOp>([
  '=', '!=', '>', '>=', '<', '<=', '~', '!~',
  '?=', '?!=', '?>', '?>=', '?<', '?<=', '?~', '?!~',
]);

/** True for the `?`-prefixed operators, which PocketBase compiles without the multi-match ("all") constraint. */
export function isAnyOp(op: CmpOp): boolean {
  return op.charCodeAt(0) === 63; // '?'
}

/** Date/time macros, exactly the keys of identifierMacros in tools/search/identifier_macros.go (case-sensitive). */
export type MacroName =
  | 'now' | 'yesterday' | 'tomorrow' | 'second' | 'minute' | 'hour' | 'day' | 'month' | 'weekday' | 'year'
  | 'todayStart' | 'todayEnd' | 'monthStart' | 'monthEnd' | 'yearStart' | 'yearEnd';

const MACROS: ReadonlyMap<string, MacroName> = new Map(
  ([
    'now', 'yesterday', 'tomorrow', 'second', 'minute', 'hour', 'day', 'month', 'weekday', 'year',
    'todayStart', 'todayEnd', 'monthStart', 'monthEnd', 'yearStart', 'yearEnd',
  ] as MacroName[]).map((m) => ['@' + m, m]),
);

/** Field modifiers known to core/record_field_resolver.go (`:changed` is only meaningful in update rules). */
export type Modifier = 'isset' | 'length' | 'each' | 'lower' | 'changed';
const MODIFIERS: ReadonlySet<string> = new Set<Modifier>(['isset', 'length', 'each', 'lower', 'changed']);

/** Functions registered in tools/search/token_functions.go (names are case-sensitive). */
export type FunctionName = 'geoDistance' | 'strftime';

export interface IdentifierNode {
  kind: 'identifier';
  /** The raw literal, e.g. `author.name:lower` or `@collection.users:u.email`. */
  name: string;
  /**
   * `name` split on '.', with a recognised trailing modifier removed from the last segment.
   * Other ':' characters stay inside their segment (e.g. the `users:u` alias of `@collection.users:u.email`,
   * or an unknown `name:foo`); the compiler must validate every segment itself.
   */
  path: string[];
  modifier: Modifier | null;
  pos: number;
}

export interface MacroNode { kind: 'macro'; name: MacroName; pos: number }
export interface StringNode { kind: 'string'; value: string; pos: number }
/**
 * `value` follows PocketBase's cast.ToFloat64: a literal that overflows float64 becomes 0, not Infinity.
 * `raw` is the literal as written (digits, optional leading '-', optional single '.').
 */
export interface NumberNode { kind: 'number'; value: number; raw: string; pos: number }
/**
 * `true`/`false`/`null` are matched case-insensitively, as PocketBase does when no field of that name
 * resolves. Lowercase names are reserved field names in PocketBase, but e.g. `NULL` or `True` could be real
 * fields; `raw` lets the compiler prefer such a field, as PocketBase would.
 */
export interface BoolNode { kind: 'bool'; value: boolean; raw: string; pos: number }
export interface NullNode { kind: 'null'; raw: string; pos: number }
/** Calls are signature-checked by the parser, so args never contain nested calls in practice. */
export interface CallNode { kind: 'call'; name: FunctionName; args: Operand[]; pos: number }

export type Operand = IdentifierNode | MacroNode | StringNode | NumberNode | BoolNode | NullNode | CallNode;

export interface CmpNode { kind: 'cmp'; op: CmpOp; left: Operand; right: Operand; pos: number }
/** `items` always has at least two entries; nested groups of the same kind are flattened. */
export interface AndNode { kind: 'and'; items: FilterNode[]; pos: number }
export interface OrNode { kind: 'or'; items: FilterNode[]; pos: number }

export type FilterNode = CmpNode | AndNode | OrNode;

/** Why parsing failed; `message` is short and never contains more than a small, escaped input fragment. */
export type FilterErrorCode =
  | 'empty'                 // no expression at all (fexpr.ErrEmpty), including `()`
  | 'syntax'                // anything the fexpr scanner/parser would reject
  | 'function'              // unknown function or bad arguments (PocketBase rejects these when resolving)
  | 'too_long'              // over MaxFilterLength bytes
  | 'too_many_expressions'  // over DefaultFilterExprLimit comparisons
  | 'too_deep'              // parenthesis nesting over our own safety limit
  | 'sort_limit'            // more than DefaultSortExprLimit sort fields
  | 'sort_field_too_long';  // a sort field over MaxSortFieldLength bytes

export class FilterSyntaxError extends Error {
  readonly code: FilterErrorCode;
  /** UTF-16 offset into the input where the problem was detected, when known. */
  readonly pos: number | null;

  constructor(code: FilterErrorCode, message: string, pos: number | null = null) {
    super(pos === null ? message : `${message} (at ${pos})`);
    this.name = 'FilterSyntaxError';
    this.code = code;
    this.pos = pos;
  }
}

/** Quote a piece of input for an error message: escaped by JSON.stringify and cut to a few characters. */
export function snippet(s: string, max = 24): string {
  return JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);
}

/** Lowercased literal when it is short enough to be true/false/null (identifiers are ASCII-only). */
function lowerShort(s: string): string {
  return s.length <= 5 ? s.toLowerCase() : '';
}

/** Turn a lexically valid identifier literal into its operand node (macro, bool, null or field path). */
export function classifyIdentifier(raw: string, pos: number): Operand {
  const macro = MACROS.get(raw);
  if (macro !== undefined) return { kind: 'macro', name: macro, pos };
  const lower = lowerShort(raw);
  if (lower === 'true' || lower === 'false') return { kind: 'bool', value: lower === 'true', raw, pos };
  if (lower === 'null') return { kind: 'null', raw, pos };
  return identifierNode(raw, pos);
}

/** Split a field literal into path segments and an optional trailing modifier (see IdentifierNode). */
export function identifierNode(raw: string, pos: number): IdentifierNode {
  const path = raw.split('.');
  let modifier: Modifier | null = null;
  const last = path[path.length - 1];
  const colon = last.indexOf(':');
  // Mirrors splitModifier in core/record_field_resolver.go: exactly one ':' in the segment.
  if (colon !== -1 && last.indexOf(':', colon + 1) === -1) {
    const mod = last.slice(colon + 1);
    if (MODIFIERS.has(mod)) {
      modifier = mod as Modifier;
      path[path.length - 1] = last.slice(0, colon);
    }
  }
  return { kind: 'identifier', name: raw, path, modifier, pos };
}
