// Tokenizer for PocketBase filter expressions, reproducing github.com/ganigeorgiev/fexpr v0.6.0 (the
// version compiled into PocketBase 0.40.4) including its string escapes, number shapes, function-call
// argument rules and its way of finding a parenthesised group's end. Works on a [start, end) slice of the
// input so the parser can re-tokenize a group's contents exactly as fexpr re-parses a group literal.

import { CMP_OPS, FilterSyntaxError, snippet, type CmpOp } from './ast.js';

/** fexpr's scanner refuses function calls nested deeper than this (`a(b(c(1)))` is the limit). */
export const MAX_FUNCTION_DEPTH = 3;

export type ArgToken = IdentToken | NumberToken | TextToken | FunctionToken;
export interface IdentToken { type: 'identifier'; value: string; pos: number }
export interface NumberToken { type: 'number'; raw: string; pos: number }
export interface TextToken { type: 'text'; value: string; pos: number }
export interface FunctionToken { type: 'function'; name: string; args: ArgToken[]; pos: number }
export interface SignToken { type: 'sign'; op: CmpOp; pos: number }
export interface JoinToken { type: 'join'; op: '&&' | '||'; pos: number }
/** A parenthesised group: `start`/`end` delimit its contents (exclusive of the brackets). */
export interface GroupToken { type: 'group'; start: number; end: number; pos: number }
export interface EofToken { type: 'eof'; pos: number }

export type Token = ArgToken | SignToken | JoinToken | GroupToken | EofToken;

// Character codes used below.
const TAB = 9, LF = 10, SPACE = 32, BANG = 33, DQUOTE = 34, HASH = 35, AMP = 38, SQUOTE = 39;
const LPAREN = 40, RPAREN = 41, COMMA = 44, MINUS = 45, DOT = 46, SLASH = 47, COLON = 58, LT = 60;
const EQ = 61, GT = 62, QMARK = 63, AT = 64, BACKSLASH = 92, UNDERSCORE = 95, PIPE = 124, TILDE = 126;

// fexpr whitespace is only space, tab and newline: '\r', '\f', NBSP and friends are unexpected characters.
const isWhitespace = (c: number) => c === SPACE || c === TAB || c === LF;
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isDigit = (c: number) => c >= 48 && c <= 57;
const isSpecialIdentStart = (c: number) => c === AT || c === UNDERSCORE || c === HASH;
const isIdentStart = (c: number) => isLetter(c) || isSpecialIdentStart(c);
const isIdentPart = (c: number) => isLetter(c) || isDigit(c) || c === UNDERSCORE || c === DOT || c === COLON;
const isSignChar = (c: number) => c === EQ || c === QMARK || c === BANG || c === GT || c === LT || c === TILDE;
const isJoinChar = (c: number) => c === AMP || c === PIPE;
const isQuote = (c: number) => c === DQUOTE || c === SQUOTE;

/** fexpr's isValidIdentifier: must not end in '.'/':' and must not be a lone '@', '_' or '#'. */
function isValidIdentifier(s: string): boolean {
  const last = s.charCodeAt(s.length - 1);
  if (last === DOT || last === COLON) return false;
  return !(s.length === 1 && isSpecialIdentStart(last));
}

function syntax(message: string, pos: number): FilterSyntaxError {
  return new FilterSyntaxError('syntax', message, pos);
}

export class Lexer {
  private pos: number;

  /** `groupEnds` is shared by all lexers of one parse; see findGroupEnd. */
  constructor(
    private readonly src: string,
    start: number,
    private readonly end: number,
    private readonly groupEnds: Map<number, number>,
  ) {
    this.pos = start;
  }

  /** Next significant token; whitespace and `//` comments are skipped as fexpr.Parse does. */
  next(): Token {
    const { src, end } = this;
    for (;;) {
      if (this.pos >= end) return { type: 'eof', pos: end };
      const c = src.charCodeAt(this.pos);
      if (isWhitespace(c)) { this.pos++; continue; }
      if (c === SLASH) { this.skipComment(); continue; }
      const start = this.pos;
      if (c === LPAREN) {
        const close = findGroupEnd(src, start, end, this.groupEnds);
        this.pos = close + 1;
        return { type: 'group', start: start + 1, end: close, pos: start };
      }
      if (isIdentStart(c)) return this.scanIdentifier(MAX_FUNCTION_DEPTH);
      if (c === MINUS || isDigit(c)) return this.scanNumber();
      if (isQuote(c)) {
        const { value, next } = scanText(src, start, end);
        this.pos = next;
        return { type: 'text', value, pos: start };
      }
      if (isSignChar(c)) return this.scanSign();
      if (isJoinChar(c)) return this.scanJoin();
      throw syntax(`unexpected character ${snippet(String.fromCodePoint(src.codePointAt(start)!))}`, start);
    }
  }

  /** A `//` comment runs to the next newline (consumed) or the end of the current slice. */
  private skipComment(): void {
    const { src, end } = this;
    const start = this.pos;
    if (start + 1 >= end || src.charCodeAt(start + 1) !== SLASH) throw syntax('invalid comment', start);
    // A manual loop rather than indexOf: the search must stop at the slice end, or many comments inside
    // groups could each scan to a far-away newline.
    let i = start + 2;
    while (i < end && src.charCodeAt(i) !== LF) i++;
    this.pos = i < end ? i + 1 : end;
  }

  private scanIdentifier(funcDepth: number): IdentToken | FunctionToken {
    const { src, end } = this;
    const start = this.pos;
    let i = start + 1;
    while (i < end && isIdentPart(src.charCodeAt(i))) i++;
    const literal = src.slice(start, i);
    // An identifier immediately followed by '(' is a function call (whitespace in between makes it a group).
    if (i < end && src.charCodeAt(i) === LPAREN) {
      if (funcDepth <= 0) throw syntax(`max nested function calls reached (max: ${MAX_FUNCTION_DEPTH})`, start);
      if (!isValidIdentifier(literal)) throw syntax(`invalid function name ${snippet(literal)}`, start);
      this.pos = i + 1;
      const args = this.scanFunctionArgs(literal, funcDepth, start);
      return { type: 'function', name: literal, args, pos: start };
    }
    if (!isValidIdentifier(literal)) throw syntax(`invalid identifier ${snippet(literal)}`, start);
    this.pos = i;
    return { type: 'identifier', value: literal, pos: start };
  }

  /** Arguments: identifiers, numbers, quoted text or nested calls, comma separated, one trailing comma allowed. */
  private scanFunctionArgs(name: string, funcDepth: number, callPos: number): ArgToken[] {
    const { src, end } = this;
    const args: ArgToken[] = [];
    let expectComma = false;
    for (;;) {
      if (this.pos >= end) throw syntax(`unterminated call of ${snippet(name)} (expected ')')`, callPos);
      const c = src.charCodeAt(this.pos);
      if (c === RPAREN) { this.pos++; return args; }
      if (isWhitespace(c)) { this.pos++; continue; }
      if (c === SLASH) { this.skipComment(); continue; }
      const isComma = c === COMMA;
      if (expectComma && !isComma) throw syntax(`expected comma after argument in ${snippet(name)}`, this.pos);
      if (!expectComma && isComma) throw syntax(`unexpected comma in ${snippet(name)}`, this.pos);
      expectComma = false;
      if (isComma) { this.pos++; continue; }
      if (isIdentStart(c)) {
        args.push(this.scanIdentifier(funcDepth - 1));
      } else if (c === MINUS || isDigit(c)) {
        args.push(this.scanNumber());
      } else if (isQuote(c)) {
        const start = this.pos;
        const { value, next } = scanText(src, start, end);
        this.pos = next;
        args.push({ type: 'text', value, pos: start });
      } else {
        throw syntax(`unsupported argument character ${snippet(String.fromCodePoint(src.codePointAt(this.pos)!))} in ${snippet(name)}`, this.pos);
      }
      expectComma = true;
    }
  }

  /** Digits with an optional leading '-' and at most one '.'; must not be just '-' or end with '.'. */
  private scanNumber(): NumberToken {
    const { src, end } = this;
    const start = this.pos;
    let i = start;
    let hadDot = false;
    while (i < end) {
      const c = src.charCodeAt(i);
      if (isDigit(c) || (c === MINUS && i === start)) { i++; continue; }
      if (c === DOT && !hadDot) { hadDot = true; i++; continue; }
      break;
    }
    const raw = src.slice(start, i);
    // The first character is '-' or a digit, so only these two shapes can be invalid.
    if (raw === '-' || raw.charCodeAt(raw.length - 1) === DOT) throw syntax(`invalid number ${snippet(raw)}`, start);
    this.pos = i;
    return { type: 'number', raw, pos: start };
  }

  /** The longest run of sign characters must be exactly one operator (so `==`, `=<`, `!` are errors). */
  private scanSign(): SignToken {
    const { src, end } = this;
    const start = this.pos;
    let i = start;
    while (i < end && isSignChar(src.charCodeAt(i))) i++;
    const op = src.slice(start, i);
    if (!CMP_OPS.has(op)) throw syntax(`invalid sign operator ${snippet(op)}`, start);
    this.pos = i;
    return { type: 'sign', op: op as CmpOp, pos: start };
  }

  private scanJoin(): JoinToken {
    const { src, end } = this;
    const start = this.pos;
    let i = start;
    while (i < end && isJoinChar(src.charCodeAt(i))) i++;
    const op = src.slice(start, i);
    if (op !== '&&' && op !== '||') throw syntax(`invalid join operator ${snippet(op)}`, start);
    this.pos = i;
    return { type: 'join', op, pos: start };
  }
}

/**
 * Decode a quoted string starting at `start` (the opening quote). fexpr v0.6.0 semantics, confirmed against
 * the PocketBase 0.40.4 binary: a backslash always escapes the next character; `\\`, `\"`, `\'` yield the
 * character, `\n`, `\t`, `\r` yield LF, TAB, CR, and any other `\x` is kept as the two characters `\x`.
 * Either quote kind may be escaped inside either kind of string. Raw newlines and other characters are
 * kept verbatim.
 */
export function scanText(src: string, start: number, end: number): { value: string; next: number } {
  const quote = src.charCodeAt(start);
  let out = '';
  let chunk = start + 1; // start of the not yet copied run of plain characters
  let i = chunk;
  for (;;) {
    if (i >= end) throw syntax('unterminated quoted text', start);
    const c = src.charCodeAt(i);
    if (c === quote) return { value: out + src.slice(chunk, i), next: i + 1 };
    if (c !== BACKSLASH) { i++; continue; }
    if (i + 1 >= end) throw syntax('unterminated quoted text', start);
    const e = src.charCodeAt(i + 1);
    out += src.slice(chunk, i);
    switch (e) {
      case BACKSLASH: case DQUOTE: case SQUOTE: out += String.fromCharCode(e); break;
      case 110: out += '\n'; break; // n
      case 116: out += '\t'; break; // t
      case 114: out += '\r'; break; // r
      default: out += src.slice(i, i + 2);
    }
    i += 2;
    chunk = i;
  }
}

/** Position after the closing quote of the string starting at `start`, without building its value. */
function skipText(src: string, start: number, end: number): number {
  const quote = src.charCodeAt(start);
  let i = start + 1;
  while (i < end) {
    const c = src.charCodeAt(i);
    if (c === quote) return i + 1;
    i += c === BACKSLASH ? 2 : 1;
  }
  throw syntax('unterminated quoted text', start);
}

/**
 * Index of the ')' closing the '(' at `open`, found the way fexpr's scanGroup does: count brackets and skip
 * quoted text, but do NOT skip comments. So a bracket or quote inside a `//` comment within parentheses
 * changes where the group ends, exactly as in PocketBase; the contents are then re-tokenized normally.
 *
 * fexpr rescans every nested group from scratch (cost: length x depth). We get the same answers in linear
 * time by recording, during one scan, the close of every '(' met outside quoted text: a fresh scan from such
 * a '(' would step through exactly the same characters. A recorded close is only trusted when it lies
 * inside the current slice; otherwise we rescan, which then fails just as fexpr's bounded scan does.
 */
export function findGroupEnd(src: string, open: number, end: number, cache: Map<number, number>): number {
  const known = cache.get(open);
  if (known !== undefined && known < end) return known;
  const opens: number[] = [open];
  let i = open + 1;
  while (i < end) {
    const c = src.charCodeAt(i);
    if (c === DQUOTE || c === SQUOTE) { i = skipText(src, i, end); continue; }
    if (c === LPAREN) {
      opens.push(i);
    } else if (c === RPAREN) {
      cache.set(opens.pop()!, i);
      if (opens.length === 0) return i;
    }
    i++;
  }
  throw syntax(`unbalanced parentheses - missing ${opens.length} closing bracket(s)`, open);
}
