// Parser for PocketBase filter/rule expressions: turns the fexpr token stream into a FilterNode tree with
// SQL precedence (&& binds tighter than ||, which is what PocketBase's flat "a AND b OR c" SQL yields),
// enforcing PocketBase's length and expression limits, a nesting limit of our own, and the signatures of
// PocketBase's filter functions.

import {
  classifyIdentifier, FilterSyntaxError, snippet,
  type CallNode, type FilterNode, type Operand,
} from './ast.js';
import { Lexer, type ArgToken, type Token } from './lexer.js';

/** MaxFilterLength in tools/search/provider.go, measured like Go's len(): UTF-8 bytes. */
export const MAX_FILTER_LENGTH = 3500;
/** DefaultFilterExprLimit in tools/search/provider.go: comparisons allowed per filter. */
export const DEFAULT_MAX_EXPRESSIONS = 200;
/**
 * Our own limit on parenthesis nesting. PocketBase has none (only the 3500-byte cap, so up to ~1750 levels);
 * we cap it so hostile input cannot make the parser (recursive per level) or a recursive compiler walk blow
 * the stack. Real filters rarely nest beyond a handful of levels.
 */
export const DEFAULT_MAX_DEPTH = 64;
/** maxDepth options above this are clamped: the parser uses two stack frames per level. */
export const MAX_DEPTH_CEILING = 500;

export interface ParseFilterOptions {
  /** Max UTF-8 byte length; default 3500. Pass Infinity for admin-authored API rules, which PocketBase doesn't cap. */
  maxLength?: number;
  /** Max number of comparisons; default 200. */
  maxExpressions?: number;
  /** Max parenthesis nesting depth; default 64, clamped to MAX_DEPTH_CEILING. */
  maxDepth?: number;
}

/**
 * Parse a PocketBase filter or API rule. Throws FilterSyntaxError for anything PocketBase would reject
 * while parsing, plus the deliberate rejections listed in index.ts. Note that PocketBase treats an empty
 * `filter` query parameter as "no filter": callers must skip "" themselves (here it is an 'empty' error,
 * as a whitespace-only filter is in PocketBase).
 */
export function parseFilter(input: string, options: ParseFilterOptions = {}): FilterNode {
  if (typeof input !== 'string') throw new FilterSyntaxError('syntax', 'filter must be a string');
  const maxLength = options.maxLength ?? MAX_FILTER_LENGTH;
  // UTF-8 never has fewer bytes than UTF-16 code units, so this cheap test rejects huge input up front.
  if (input.length > maxLength || utf8Length(input, maxLength) > maxLength) {
    throw new FilterSyntaxError('too_long', `filter is longer than ${maxLength} bytes`);
  }
  // fexpr treats NUL as end of input and silently ignores what follows (sometimes); we refuse it instead.
  const nul = input.indexOf('\0');
  if (nul !== -1) throw new FilterSyntaxError('syntax', 'unexpected NUL character', nul);
  const maxDepth = Math.min(options.maxDepth ?? DEFAULT_MAX_DEPTH, MAX_DEPTH_CEILING);
  const parser = new Parser(input, options.maxExpressions ?? DEFAULT_MAX_EXPRESSIONS, maxDepth);
  try {
    return parser.parseRange(0, input.length, 0);
  } catch (e) {
    // Belt and braces: if the caller's own stack is nearly exhausted, even the clamped depth could overflow.
    if (e instanceof RangeError) throw new FilterSyntaxError('too_deep', 'filter expression is too complex');
    throw e;
  }
}

/** UTF-8 length of a JS string (lone surrogates count 3, as when encoded with replacement); stops past `cap`. */
export function utf8Length(s: string, cap = Infinity): number {
  let n = 0;
  for (let i = 0; i < s.length && n <= cap; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

class Parser {
  private expressions = 0;
  private readonly groupEnds = new Map<number, number>();

  constructor(
    private readonly src: string,
    private readonly maxExpressions: number,
    private readonly maxDepth: number,
  ) {}

  /**
   * Parse the expression list in src[start, end), which is the whole input or the inside of a group.
   * Grammar: item (join item)*, item = group | operand sign operand.
   */
  parseRange(start: number, end: number, depth: number): FilterNode {
    const lexer = new Lexer(this.src, start, end, this.groupEnds);
    const ors: FilterNode[] = [];
    let ands: FilterNode[] = [];
    let tok = lexer.next();
    if (tok.type === 'eof') throw new FilterSyntaxError('empty', 'empty filter expression', start);
    for (;;) {
      addItem(ands, 'and', this.parseItem(lexer, tok, depth));
      tok = lexer.next();
      if (tok.type === 'eof') break;
      // fexpr would also accept a group here and join it with the previous operator; we don't (see index.ts).
      if (tok.type !== 'join') throw unexpected('expected && or ||', tok);
      if (tok.op === '||') {
        addItem(ors, 'or', combine('and', ands));
        ands = [];
      }
      tok = lexer.next();
      if (tok.type === 'eof') throw incomplete(tok);
    }
    addItem(ors, 'or', combine('and', ands));
    return combine('or', ors);
  }

  private parseItem(lexer: Lexer, first: Token, depth: number): FilterNode {
    if (first.type === 'group') {
      if (depth + 1 > this.maxDepth) {
        throw new FilterSyntaxError('too_deep', `parentheses nested deeper than ${this.maxDepth}`, first.pos);
      }
      return this.parseRange(first.start, first.end, depth + 1);
    }
    const left = this.operand(first, 'left');
    const sign = lexer.next();
    if (sign.type === 'eof') throw incomplete(sign);
    // A group here is a silent-drop quirk in fexpr (`a = (b = 1)` means just `b = 1`); rejected as well.
    if (sign.type !== 'sign') throw unexpected('expected a sign operator', sign);
    const rightTok = lexer.next();
    if (rightTok.type === 'eof') throw incomplete(rightTok);
    const right = this.operand(rightTok, 'right');
    if (++this.expressions > this.maxExpressions) {
      throw new FilterSyntaxError('too_many_expressions', `more than ${this.maxExpressions} expressions`, first.pos);
    }
    return { kind: 'cmp', op: sign.op, left, right, pos: first.pos };
  }

  private operand(tok: Token, side: 'left' | 'right'): Operand {
    switch (tok.type) {
      case 'identifier': case 'number': case 'text': case 'function':
        return argOperand(tok);
      default:
        throw unexpected(`expected ${side} operand (identifier, function, text or number)`, tok);
    }
  }
}

function argOperand(tok: ArgToken): Operand {
  switch (tok.type) {
    case 'identifier': return classifyIdentifier(tok.value, tok.pos);
    case 'text': return { kind: 'string', value: tok.value, pos: tok.pos };
    case 'number': {
      // PocketBase converts with cast.ToFloat64, which yields 0 when strconv.ParseFloat reports overflow.
      const value = Number(tok.raw);
      return { kind: 'number', value: Number.isFinite(value) ? value : 0, raw: tok.raw, pos: tok.pos };
    }
    case 'function': return callNode(tok.name, tok.args.map(argOperand), tok.pos);
  }
}

/** Kinds that PocketBase sees as fexpr identifier tokens (macros and true/false/null included). */
const isIdentifierKind = (a: Operand) => a.kind === 'identifier' || a.kind === 'macro' || a.kind === 'bool' || a.kind === 'null';

/** Check the call against tools/search/token_functions.go; PocketBase rejects these when resolving. */
function callNode(name: string, args: Operand[], pos: number): CallNode {
  const fail = (msg: string) => new FilterSyntaxError('function', `${name}: ${msg}`, pos);
  if (name === 'geoDistance') {
    if (args.length !== 4) throw fail(`expected 4 arguments, got ${args.length}`);
    args.forEach((a, i) => {
      if (!isIdentifierKind(a) && a.kind !== 'number') throw fail(`argument ${i} must be an identifier or number`);
    });
    return { kind: 'call', name, args, pos };
  }
  if (name === 'strftime') {
    if (args.length < 1) throw fail('expected at least 1 argument');
    if (args.length > 10) throw fail(`too many arguments (max 10, got ${args.length})`);
    if (args[0].kind !== 'string') throw fail('the first argument must be a format string');
    if (args.length > 1 && args[1].kind !== 'string' && args[1].kind !== 'number' && !isIdentifierKind(args[1])) {
      throw fail('the second argument must be a time value (text, number or identifier)');
    }
    for (let i = 2; i < args.length; i++) {
      if (args[i].kind !== 'string') throw fail(`modifier argument ${i - 2} must be a string`);
    }
    return { kind: 'call', name, args, pos };
  }
  throw new FilterSyntaxError('function', `unknown function ${snippet(name)}`, pos);
}

/** Append `item` to a chain of `kind`, flattening a nested chain of the same kind (both are associative). */
function addItem(list: FilterNode[], kind: 'and' | 'or', item: FilterNode): void {
  if (item.kind === kind) {
    for (const sub of item.items) list.push(sub);
  } else {
    list.push(item);
  }
}

function combine(kind: 'and' | 'or', items: FilterNode[]): FilterNode {
  return items.length === 1 ? items[0] : { kind, items, pos: items[0].pos };
}

function incomplete(tok: Token): FilterSyntaxError {
  return new FilterSyntaxError('syntax', 'invalid or incomplete filter expression', tok.pos);
}

function unexpected(what: string, tok: Token): FilterSyntaxError {
  return new FilterSyntaxError('syntax', `${what}, got ${describe(tok)}`, tok.pos);
}

function describe(tok: Token): string {
  switch (tok.type) {
    case 'identifier': return `identifier ${snippet(tok.value)}`;
    case 'number': return `number ${snippet(tok.raw)}`;
    case 'text': return 'quoted text';
    case 'function': return `function ${snippet(tok.name)}`;
    case 'sign': return `operator ${snippet(tok.op)}`;
    case 'join': return `operator ${snippet(tok.op)}`;
    case 'group': return 'parenthesis';
    case 'eof': return 'end of input';
  }
}
