// Public entry point of the PocketBase filter/sort parser: parseFilter() for `filter` and API rules,
// parseSort() for `sort`, the tree types and FilterSyntaxError. No SQL here; a compiler walks the tree.
//
// Fidelity: the grammar reproduces fexpr v0.6.0 as built into PocketBase 0.40.4, checked against that
// binary. Deliberate differences, all of them rejections of input PocketBase accepts in odd ways:
//  - NUL characters: fexpr treats NUL as end of input and, depending on position, ignores or keeps what
//    follows; we reject any NUL.
//  - A parenthesised group where fexpr does not expect one: fexpr discards a half-built comparison before
//    it (`a = (b = 1)` means `b = 1`) and joins adjacent groups with the last operator seen
//    (`(a=1) (b=2)`); we reject both.
//  - Parentheses nested deeper than maxDepth (default 64, clamped to 500); PocketBase has no such limit.
// Also stricter at parse time than PocketBase's parser, matching errors PocketBase raises while resolving:
// unknown functions and bad geoDistance/strftime arguments.
// Not handled here: PocketBase's 403 for `@collection.`/`@request.` appearing anywhere in a non-superuser's
// filter or sort (a substring test in apis/record_helpers.go), field/modifier validity, and skipping an
// empty `filter` parameter (PocketBase ignores it; parseFilter('') throws code 'empty').

export {
  parseFilter, utf8Length, MAX_FILTER_LENGTH, DEFAULT_MAX_EXPRESSIONS, DEFAULT_MAX_DEPTH, MAX_DEPTH_CEILING,
} from './parser.js';
export type { ParseFilterOptions } from './parser.js';
export { parseSort, MAX_SORT_FIELDS, MAX_SORT_FIELD_LENGTH } from './sort.js';
export type { SortItem, SortDirection, ParseSortOptions } from './sort.js';
export { FilterSyntaxError, isAnyOp, CMP_OPS } from './ast.js';
export type {
  FilterErrorCode, FilterNode, CmpNode, AndNode, OrNode, CmpOp, Operand, IdentifierNode, MacroNode,
  StringNode, NumberNode, BoolNode, NullNode, CallNode, MacroName, Modifier, FunctionName,
} from './ast.js';
