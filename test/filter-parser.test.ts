// Tests for sidecar/filter: PocketBase filter/rule and sort parsing. Expected behaviour comes from fexpr's
// and PocketBase's own tests (tools/search/filter_test.go, fexpr parser/scanner tests) and from running the
// PocketBase 0.40.4 binary (fexpr v0.6.0) on the same inputs; hostile input must only ever yield a tree or
// a FilterSyntaxError, quickly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseFilter, parseSort, FilterSyntaxError,
  type FilterNode, type Operand, type CmpOp, type FilterErrorCode, type ParseFilterOptions,
} from '../sidecar/filter/index.js';

// ---- tree builders (positions are stripped before comparing) -------------------------------------------
const id = (name: string, path = name.split('.'), modifier: string | null = null) => ({ kind: 'identifier', name, path, modifier });
const str = (value: string) => ({ kind: 'string', value });
const num = (value: number, raw = String(value)) => ({ kind: 'number', value, raw });
const bool = (value: boolean, raw = String(value)) => ({ kind: 'bool', value, raw });
const nul = (raw = 'null') => ({ kind: 'null', raw });
const macro = (name: string) => ({ kind: 'macro', name });
const call = (name: string, ...args: unknown[]) => ({ kind: 'call', name, args });
const cmp = (left: unknown, op: CmpOp, right: unknown) => ({ kind: 'cmp', op, left, right });
const and = (...items: unknown[]) => ({ kind: 'and', items });
const or = (...items: unknown[]) => ({ kind: 'or', items });
const a1 = cmp(id('a'), '=', num(1));
const b2 = cmp(id('b'), '=', num(2));
const c3 = cmp(id('c'), '=', num(3));

function strip(node: unknown): unknown {
  return JSON.parse(JSON.stringify(node, (k, v) => (k === 'pos' ? undefined : v)));
}

function parses(input: string, expected: unknown, options?: ParseFilterOptions) {
  assert.deepEqual(strip(parseFilter(input, options)), strip(expected), JSON.stringify(input));
}

function rejects(input: string, code?: FilterErrorCode, options?: ParseFilterOptions) {
  const label = JSON.stringify(input.length > 80 ? input.slice(0, 80) + '…' : input);
  assert.throws(() => parseFilter(input, options), (e: unknown) => {
    assert.ok(e instanceof FilterSyntaxError, `not a FilterSyntaxError for ${label}: ${e}`);
    if (code) assert.equal(e.code, code, `${label}: ${e.message}`);
    assert.ok(e.message.length < 200, 'error message stays short');
    return true;
  }, label);
}

/** Structural invariants a compiler relies on; returns the number of comparisons. */
function checkTree(n: FilterNode): number {
  if (n.kind === 'cmp') { checkOperand(n.left); checkOperand(n.right); return 1; }
  assert.ok(n.items.length >= 2, 'chains have 2+ items');
  let count = 0;
  for (const item of n.items) { assert.notEqual(item.kind, n.kind, 'chains are flattened'); count += checkTree(item); }
  return count;
}
function checkOperand(o: Operand): void {
  assert.ok(['identifier', 'macro', 'string', 'number', 'bool', 'null', 'call'].includes(o.kind));
  if (o.kind === 'number') assert.ok(Number.isFinite(o.value));
  if (o.kind === 'call') o.args.forEach(checkOperand);
}

/** Seeded PRNG (mulberry32) so the random suites are reproducible. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- valid input ------------------------------------------------------------------------------------
test('comparison operators, including the any/at-least-one variants', () => {
  const ops: CmpOp[] = ['=', '!=', '>', '>=', '<', '<=', '~', '!~', '?=', '?!=', '?>', '?>=', '?<', '?<=', '?~', '?!~'];
  for (const op of ops) {
    parses(`a ${op} 1`, cmp(id('a'), op, num(1)));
    parses(`a${op}1`, cmp(id('a'), op, num(1)));
  }
  parses('num>-1', cmp(id('num'), '>', num(-1, '-1')));
  parses('   1    =    12    ', cmp(num(1), '=', num(12)));
  parses('\n\ta\n=\t1\n', a1);
});

test('identifiers: paths, relations, JSON paths, modifiers, @request and @collection', () => {
  const cases: [string, unknown][] = [
    ['author.name', id('author.name')],
    ['comments_via_post.text', id('comments_via_post.text')],
    ['meta.a.b', id('meta.a.b')],
    ['field123', id('field123')],
    ['_hidden', id('_hidden')],
    ['#test.123:456', id('#test.123:456', ['#test', '123:456'])],
    ['tags:each', id('tags:each', ['tags'], 'each')],
    ['tags:length', id('tags:length', ['tags'], 'length')],
    ['name:lower', id('name:lower', ['name'], 'lower')],
    ['author.name:isset', id('author.name:isset', ['author', 'name'], 'isset')],
    ['@request.body.title:changed', id('@request.body.title:changed', ['@request', 'body', 'title'], 'changed')],
    ['name:foo', id('name:foo', ['name:foo'])],
    ['name:lower:lower', id('name:lower:lower', ['name:lower:lower'])],
    ['@request.auth.id', id('@request.auth.id')],
    ['@request.auth.collectionName', id('@request.auth.collectionName')],
    ['@request.query.page', id('@request.query.page')],
    ['@request.headers.x_token', id('@request.headers.x_token')],
    ['@request.body.items:each', id('@request.body.items:each', ['@request', 'body', 'items'], 'each')],
    ['@request.method', id('@request.method')],
    ['@request.context', id('@request.context')],
    ['@collection.users.name', id('@collection.users.name')],
    ['@collection.users:u.email', id('@collection.users:u.email', ['@collection', 'users:u', 'email'])],
    ['@NOW', id('@NOW')], // macros are case-sensitive
    ['@rowid', id('@rowid')], // a sort key, not a filter macro
    ['a..b', id('a..b', ['a', '', 'b'])], // lexically fine in fexpr; the resolver rejects it
  ];
  for (const [src, node] of cases) parses(`${src} = 'x'`, cmp(node, '=', str('x')));
});

test('date/time macros', () => {
  const names = ['now', 'yesterday', 'tomorrow', 'second', 'minute', 'hour', 'day', 'month', 'weekday', 'year',
    'todayStart', 'todayEnd', 'monthStart', 'monthEnd', 'yearStart', 'yearEnd'];
  for (const m of names) parses(`created > @${m}`, cmp(id('created'), '>', macro(m)));
  parses('@now.x = 1', cmp(id('@now.x'), '=', num(1)));
});

test('true, false and null, case-insensitively as in PocketBase', () => {
  parses('a = true && b != false && c = null', and(
    cmp(id('a'), '=', bool(true)), cmp(id('b'), '!=', bool(false)), cmp(id('c'), '=', nul())));
  parses('NULL = Null', cmp(nul('NULL'), '=', nul('Null')));
  parses('a = TRUE', cmp(id('a'), '=', bool(true, 'TRUE')));
  parses('a = fAlSe', cmp(id('a'), '=', bool(false, 'fAlSe')));
  parses('a = nullx', cmp(id('a'), '=', id('nullx')));
  parses('a = true.x', cmp(id('a'), '=', id('true.x')));
});

test('numbers', () => {
  const cases: [string, number][] = [['1', 1], ['-1', -1], ['1.5', 1.5], ['-14', -14], ['10.50', 10.5], ['-.5', -0.5],
    ['007', 7], ['-0', 0], ['0.000001', 0.000001], ['9007199254740993', 9007199254740992]];
  for (const [raw, value] of cases) parses(`a = ${raw}`, cmp(id('a'), '=', num(value, raw)));
  // PocketBase's cast.ToFloat64 turns a float64 overflow into 0.
  const huge = '1' + '0'.repeat(400);
  parses(`a = ${huge}`, cmp(id('a'), '=', num(0, huge)));
  const negZero = parseFilter('a = -0');
  assert.ok(negZero.kind === 'cmp' && negZero.right.kind === 'number' && Object.is(negZero.right.value, -0));
});

test('quoted text and fexpr v0.6.0 escapes', () => {
  const cases: [string, string][] = [
    [`''`, ''], [`""`, ''],
    [`'test'`, 'test'], [`"test"`, 'test'],
    [`'te\\'st'`, `te'st`], [`"te\\"st"`, 'te"st'],
    [`"te\\'st"`, `te'st`], [`'te\\"st'`, 'te"st'], // either quote may be escaped in either string kind
    [`"mixed 'quotes' are fine"`, `mixed 'quotes' are fine`],
    [`"tes@#,;!@#%^'\\"t"`, `tes@#,;!@#%^'"t`],
    [`'||test&&'`, '||test&&'],
    [`"a\\\\"`, 'a\\'], [`'a\\\\'`, 'a\\'], [`"a\\\\\\"b"`, 'a\\"b'],
    [`"a\\nb"`, 'a\nb'], [`'a\\tb'`, 'a\tb'], [`"a\\rb"`, 'a\rb'],
    [`"\\\\n"`, '\\n'], [`"\\\\\\n"`, '\\\n'],
    // unknown escapes keep the backslash
    [`"a\\0b"`, 'a\\0b'], [`"a\\x41"`, 'a\\x41'], [`"\\u0041"`, '\\u0041'], [`"a\\/b"`, 'a\\/b'], [`"\\N\\T"`, '\\N\\T'],
    ['"a\\\nb"', 'a\\\nb'],
    // raw control characters and unicode inside strings are kept verbatim
    ['"a\nb\tc\rd\x01\x7f"', 'a\nb\tc\rd\x01\x7f'],
    ['"é😀\u202e\u0301\u00a0\ufeff"', 'é😀\u202e\u0301\u00a0\ufeff'],
    ['"\ud800 lone"', '\ud800 lone'],
    [`"(x)"`, '(x)'], [`'//not a comment'`, '//not a comment'], [`"a=1 && b=2"`, 'a=1 && b=2'],
  ];
  for (const [lit, value] of cases) parses(`a = ${lit}`, cmp(id('a'), '=', str(value)));
  parses(`(a="test(")`, cmp(id('a'), '=', str('test(')));
  parses(`(a="test)")`, cmp(id('a'), '=', str('test)')));
  parses(`(a='\\'')`, cmp(id('a'), '=', str(`'`)));
  parses(`(a="\\"")`, cmp(id('a'), '=', str('"')));
  parses(`("ab)("=c)`, cmp(str('ab)('), '=', id('c')));
});

test('SQL fragments stay plain string literals', () => {
  const payloads = [`'; DROP TABLE x; --`, `' OR 1=1 --`, `") OR ("1"="1`, `1; DELETE FROM users`, `%' --`, `\\'; --`];
  for (const p of payloads) {
    const dq = '"' + p.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
    parses(`name = ${dq}`, cmp(id('name'), '=', str(p)));
    const sq = "'" + p.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
    parses(`name = ${sq}`, cmp(id('name'), '=', str(p)));
  }
  parses(`name = '; DROP TABLE x; --'`, cmp(id('name'), '=', str('; DROP TABLE x; --')));
  for (const bad of [`name = ''; DROP TABLE x; --'`, `name = 1; DROP TABLE x`, `name = '' OR 1=1 --`, `name = 'x' -- comment`,
    `name = 'x' /* c */`, `name = 'x' UNION SELECT 1`, `name = "x"; --`, `id = 1 OR 1 = 1`]) rejects(bad, 'syntax');
});

test('function calls: geoDistance and strftime', () => {
  parses('geoDistance(1,2,3,4) < 567', cmp(call('geoDistance', num(1), num(2), num(3), num(4)), '<', num(567)));
  parses('geoDistance(office.lon, office.lat, -1.5, @request.query.lat) <= 25', cmp(
    call('geoDistance', id('office.lon'), id('office.lat'), num(-1.5, '-1.5'), id('@request.query.lat')), '<=', num(25)));
  parses('geoDistance(null, true, false, @now) > 1', cmp(call('geoDistance', nul(), bool(true), bool(false), macro('now')), '>', num(1)));
  parses('geoDistance( 1 , 2 , 3 , 4 , ) > 1', cmp(call('geoDistance', num(1), num(2), num(3), num(4)), '>', num(1)));
  parses('geoDistance(\t1, // first\n 2,3,4\n) > 1', cmp(call('geoDistance', num(1), num(2), num(3), num(4)), '>', num(1)));
  parses("strftime('%Y') = '2024'", cmp(call('strftime', str('%Y')), '=', str('2024')));
  parses("strftime('%Y',) = '2024'", cmp(call('strftime', str('%Y')), '=', str('2024')));
  parses("strftime('%Y-%m', created, 'start of month', 'utc') != ''", cmp(
    call('strftime', str('%Y-%m'), id('created'), str('start of month'), str('utc')), '!=', str('')));
  parses("strftime('%s', 1700000000, 'unixepoch') > 0", cmp(call('strftime', str('%s'), num(1700000000), str('unixepoch')), '>', num(0)));
  parses("strftime('%Y', @now) = strftime('%Y', name:lower)", cmp(
    call('strftime', str('%Y'), macro('now')), '=', call('strftime', str('%Y'), id('name:lower', ['name'], 'lower'))));
  parses("strftime('a','b','c','d','e','f','g','h','i','j') = 'x'",
    cmp(call('strftime', ...'abcdefghij'.split('').map(str)), '=', str('x')));
  parses('geoDistance(1,2,3,4)>1&&a=1', and(cmp(call('geoDistance', num(1), num(2), num(3), num(4)), '>', num(1)), a1));
});

test('&& binds tighter than || (PocketBase emits flat "a AND b OR c" SQL); groups and flattening', () => {
  parses('a=1 || b=2 && c=3', or(a1, and(b2, c3)));
  parses('a=1 && b=2 || c=3', or(and(a1, b2), c3));
  parses('(a=1 || b=2) && c=3', and(or(a1, b2), c3));
  parses('a=1 && (b=2 && c=3)', and(a1, b2, c3));
  parses('(a=1 || b=2) || (c=3)', or(a1, b2, c3));
  parses('((a=1))', a1);
  parses('(((a=1) && ((b=2))))', and(a1, b2));
  parses('((a=1 || a=2) && (c=1))', and(or(a1, cmp(id('a'), '=', num(2))), cmp(id('c'), '=', num(1))));
  parses('a=1 && b=2 || c=3 && a=1 || b=2', or(and(a1, b2), and(c3, a1), b2));
});

test('comments', () => {
  parses('a = 1 // demo', a1);
  parses('a = // demo\n1', a1);
  parses('\n  a = 1 &&\n  // demo\n  b = 2\n', and(a1, b2));
  parses('a = 1 //', a1);
  parses('a = 1//c', a1);
  parses('a = 1 //   test1 //test2  ', a1);
  parses('a = 1 ///test', a1);
  parses('(a = 1 // comment runs to the closing bracket)', a1);
  parses('(a = 1 // (balanced) brackets are fine\n)', a1);
  // fexpr finds a group's end without looking at comments, so this is `a=1 || b=2`, exactly as in PocketBase.
  parses('(a = 1 // x) || (b = 2\n)', or(a1, b2));
});

test('source positions', () => {
  const tree = parseFilter('a = 1 ||\n  (bb ~ "x")');
  assert.ok(tree.kind === 'or');
  const second = tree.items[1];
  assert.ok(second.kind === 'cmp');
  assert.equal(second.pos, 12);
  assert.equal(second.right.pos, 17);
  try { parseFilter('a = 1 && b ? 2'); assert.fail('should throw'); } catch (e) {
    assert.ok(e instanceof FilterSyntaxError);
    assert.equal(e.pos, 11);
  }
});

// ---- invalid input ----------------------------------------------------------------------------------
test('invalid forms from fexpr/PocketBase tests and the PocketBase 0.40.4 binary', () => {
  const invalid = [
    // structure (fexpr parser_test.go, PocketBase filter_test.go)
    '(test1 > 1', 'test1 + 123', '> 1', 'a >', 'a > >', 'a > %', 'a ! 1', 'a - 1', 'a + 1', '1 - 1', '1 + 1', '> a 1',
    'a || 1', 'a && 1', 'test > 1 &&', '|| test = 1', 'test = 1 && ||', 'test = 1 && a', 'test = 1 && "a"', 'test = 1 a',
    'test = 1 "a"', 'test = 1@test', 'test = .@test', 'name', "'x'", '=', 'a = 1 = 1', "name 'x'", "name='x'name", "name='x''x'",
    '12-3 = 1', '1abc = 1', 'a=1 && && b=2', 'a=1 &&', '&& a=1',
    // quotes
    'test = "demo\'', "test = 'demo\"", "test = 'demo'\"", "test = 'demo''", 'test = "demo"\'', 'test = "demo""',
    'test = ""demo""', "test = ''demo''", 'test = `demo`', "name = '''", "name = '\\'", 'name = "a\\"', 'a = "', "a = '",
    // comments
    'test = / demo', 'test = // demo', "name='x' /", "name='x' / / c",
    // brackets
    '(a=1', 'a=1)', '((a=1)', '{a=1}', '[a=1]', '((a=1 || a=2) && c=1))', ')', 'a = 1 )', '(a=1 ||)', '(a=1))',
    "(a='x' // (\n)", "(a='x' // it's\n)", '(a = "x) = 1', '("ab)(c)',
    // operators
    'a == 1', 'a =< 1', 'a <> 1', 'a ? 1', 'a ??= 1', 'a =!= 1', 'a !== 1', "a=!'x'", 'a =! 1', 'a >> 1', 'a ~~ 1',
    'a=1 & b=2', 'a=1 | b=2', 'a=1 &&& b=2', 'a=1 ||&& b=2', 'a=1 &| b=2', 'a=1 and b=2', 'a=1 OR b=2', '!(a=1)',
    // numbers
    'a = 1.', 'a = .5', 'a = --1', 'a = - 1', 'a = -', 'a = 1e5', 'a = 0x10', 'a = 1.2.3', 'a = +1', 'a = 1_000', 'a = -.',
    'a = 123.abc', 'a-b = 1',
    // identifiers
    '_ = 1', '@ = 1', '# = 1', 'a. = 1', 'a: = 1', 'test: = 1', 'na#me = 1', 'na@me = 1', '.test = 1', ':test = 1', 'nam€ = 1',
    'é = 1', 'a = {:param}', 'a = [1]', 'a = $1', 'a = ?', 'a = 1;', 'a = 1,', 'a = b\\c',
    // whitespace fexpr does not know
    'a = 1\r\n&& b = 2', '\ra = 1', 'a\f= 1', 'a\v= 1', 'a\u00a0= 1', '\ufeffa = 1', 'a\u2028= 1', 'a\u3000= 1',
    // function syntax
    'test(a,,) = 1', 'test(a,,,b) = 1', 'test(,) = 1', 'geoDistance(1,2,3,4,,) > 1', 'geoDistance(1, // c 2,3,4) > 1',
    'geoDistance(1 2) > 1', 'geoDistance(1,2,3,(4)) > 1', 'geoDistance(1,2,3,4', 'geoDistance (1,2,3,4) > 1',
    'f(g(h(i(1)))) = 1', 'a.(1) = 1', '@(1) = 1', 'geoDistance(1,2,3,4 5) > 1', 'geoDistance(1,2,3,[4]) > 1',
    // deliberate: fexpr silently drops `x =` before a group, or joins adjacent groups; we reject
    "name = (name = 'x')", "(name='x') (name='x')", "name='x' (name='x')", "name (name='x')", "(a=1) || (b=2) (c=3)",
  ];
  for (const input of invalid) rejects(input, 'syntax');
});

test('empty expressions', () => {
  for (const input of ['', ' ', '\n\t ', '// demo', '// a\n// b\n', '()', '( )', '(//c\n)', '(a=1) && ()', 'a=1 || (())']) {
    rejects(input, 'empty');
  }
});

test('function names and signatures are checked like PocketBase resolves them', () => {
  for (const input of [
    'unknownFn(1) = 1', 'GEODISTANCE(1,2,3,4) > 1', 'a.b(1) = 1', 'test() = 12', 'f(g(h(1))) = 1',
    'geoDistance(1,2,3) > 1', 'geoDistance(1,2,3,4,5) > 1', "geoDistance('1',2,3,4) > 1", 'geoDistance() > 1',
    "geoDistance(1,2,3,strftime('%Y')) > 1", 'strftime() = 1', 'strftime(name) = 1', 'strftime(1) = 1',
    "strftime('%Y', strftime('%Y')) = 1", "strftime('%Y', name, 1) = 1", "strftime('%Y', name, name) = 1",
    "strftime('a','b','c','d','e','f','g','h','i','j','k') = 1",
  ]) rejects(input, 'function');
});

test('NUL bytes are always rejected (fexpr would treat NUL as end of input)', () => {
  for (const input of ['\0', 'a = 1\0', "a = 'x'\0|| b = 2", "a = 'x' \0|| b = 2", 'a\0 = 1', 'a = "x\0y"', 'a = 1 // c\0']) {
    rejects(input, 'syntax');
  }
});

// ---- limits -----------------------------------------------------------------------------------------
test('max filter length: 3500 UTF-8 bytes', () => {
  const fill = (n: number, ch: string) => { let f = "a = '"; while (f.length < n - 1) f += ch; return f + "'"; };
  assert.equal(parseFilter(fill(3500, 'x')).kind, 'cmp');
  rejects(fill(3501, 'x'), 'too_long');
  rejects(fill(3499, 'é'), 'too_long'); // 3499 characters but ~7000 bytes, as Go's len() counts
  assert.equal(parseFilter('a = "' + '😀'.repeat(873) + 'xx"').kind, 'cmp'); // exactly 3500 bytes
  rejects('a = "' + '😀'.repeat(874) + '"', 'too_long'); // 1754 code units, 3502 bytes
  assert.equal(parseFilter(fill(5000, 'x'), { maxLength: Infinity }).kind, 'cmp');
  rejects('a = 1', 'too_long', { maxLength: 4 });
});

test('max expressions: 200 comparisons, counted like PocketBase', () => {
  const n = (k: number) => Array(k).fill('a=1').join(' || ');
  assert.equal(checkTree(parseFilter(n(200))), 200);
  rejects(n(201), 'too_many_expressions');
  // scenarios of TestFilterDataBuildExprWithLimit in tools/search/filter_test.go
  const scenarios: [number, string, boolean][] = [
    [1, '1 = 1', true], [0, '1 = 1', false], [2, '1 = 1 || 1 = 1', true], [1, '1 = 1 || 1 = 1', false],
    [3, '1 = 1 || 1 = 1', true], [6, '(1=1 || 1=1) && (1=1 || (1=1 || 1=1)) && (1=1)', true],
    [5, '(1=1 || 1=1) && (1=1 || (1=1 || 1=1)) && (1=1)', false],
  ];
  for (const [limit, filter, ok] of scenarios) {
    if (ok) parseFilter(filter, { maxExpressions: limit });
    else rejects(filter, 'too_many_expressions', { maxExpressions: limit });
  }
  // arguments of a function are not expressions
  assert.equal(checkTree(parseFilter("strftime('%Y', a, 'b', 'c') = '1'", { maxExpressions: 1 })), 1);
});

test('nesting depth limit (64 by default; PocketBase has none)', () => {
  const nest = (d: number) => '('.repeat(d) + 'a=1' + ')'.repeat(d);
  parses(nest(64), a1);
  rejects(nest(65), 'too_deep');
  rejects(nest(3), 'too_deep', { maxDepth: 2 });
  parses(nest(200), a1, { maxDepth: 200 });
  // alternating and/or nesting keeps its shape
  let f = 'a=1';
  for (let i = 0; i < 60; i++) f = `b=2 ${i % 2 ? '&&' : '||'} (${f})`;
  const tree = parseFilter(f);
  assert.equal(checkTree(tree), 61);
});

// ---- hostile input ----------------------------------------------------------------------------------
/** Parse `input`, accepting only a well-formed tree or a FilterSyntaxError; returns which one happened. */
function parseOrSyntaxError(input: string, options?: ParseFilterOptions): 'ok' | 'error' {
  try {
    checkTree(parseFilter(input, options));
    return 'ok';
  } catch (e) {
    if (e instanceof FilterSyntaxError) return 'error';
    throw new Error(`non-FilterSyntaxError for ${JSON.stringify(input.slice(0, 80))}: ${e}`);
  }
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

test('unbalanced quotes and parentheses', () => {
  for (const input of ['"', "'", '"\'', `a = "x`, `a = 'x`, `a = "x\\"`, `a = 'it\\'s`, `("a)`, '(', '(((',
    ')', ')))', '(()', '())', '(a=1', 'a=1)', '(a=1 && (b=2)', '((((((((((a=1)))))))))))', '(a="(" && b=\')\'']) {
    rejects(input, undefined);
  }
  rejects('('.repeat(3000), 'syntax');
  rejects(')'.repeat(3000), 'syntax');
  rejects('"'.repeat(3001), 'syntax');
});

test('100k-character input is refused at once, and parses linearly when the cap is lifted', () => {
  const big = 'a = "' + 'x'.repeat(100_000) + '"';
  assert.ok(timed(() => rejects(big, 'too_long')) < 50);
  rejects('a'.repeat(100_000), 'too_long');
  rejects("'".repeat(100_000), 'too_long');
  let ms = timed(() => parses(big, cmp(id('a'), '=', str('x'.repeat(100_000))), { maxLength: Infinity }));
  assert.ok(ms < 200, `took ${ms}ms`);
  const escapes = 'a = "' + '\\"'.repeat(50_000) + '"';
  ms = timed(() => parses(escapes, cmp(id('a'), '=', str('"'.repeat(50_000))), { maxLength: Infinity }));
  assert.ok(ms < 200, `took ${ms}ms`);
  const unterminated = 'a = "' + 'x'.repeat(100_000);
  ms = timed(() => rejects(unterminated, 'syntax', { maxLength: Infinity }));
  assert.ok(ms < 200, `took ${ms}ms`);
});

test('10,000 nested parentheses: too long by default, too deep without the cap, never a stack overflow', () => {
  const deep = '('.repeat(10_000) + 'a=1' + ')'.repeat(10_000);
  rejects(deep, 'too_long');
  const ms = timed(() => rejects(deep, 'too_deep', { maxLength: Infinity }));
  assert.ok(ms < 200, `took ${ms}ms`);
  rejects('('.repeat(10_000) + 'a=1', 'syntax', { maxLength: Infinity });
  // a huge depth allowance is clamped to 500 levels, so it still cannot overflow the stack
  rejects(deep, 'too_deep', { maxLength: Infinity, maxDepth: 1e9 });
  parses('('.repeat(500) + 'a=1' + ')'.repeat(500), a1, { maxDepth: 1e9 });
  rejects('('.repeat(501) + 'a=1' + ')'.repeat(501), 'too_deep', { maxDepth: 1e9 });
  // nested function calls stop at fexpr's limit of 3
  rejects('f('.repeat(5000) + ')'.repeat(5000) + ' = 1', 'syntax', { maxLength: Infinity });
});

test('unicode', () => {
  parses('a = "日本語 🚀 \u0645\u0631\u062d\u0628\u0627 e\u0301"', cmp(id('a'), '=', str('日本語 🚀 \u0645\u0631\u062d\u0628\u0627 e\u0301')));
  parses("a ~ '\ud83d'", cmp(id('a'), '~', str('\ud83d'))); // lone surrogate inside text is kept
  for (const input of ['名前 = 1', 'a = 名前', 'ａ = 1', 'a ＝ 1', 'a = 1 ＆＆ b = 2', '\ud83d = 1', 'a = \udc00', 'a\u200b = 1', 'a = 1\u2029']) {
    rejects(input, 'syntax');
  }
});

test('random byte strings: a tree or FilterSyntaxError, never anything else, and fast', () => {
  const rand = prng(0x5eed);
  const alphabet = ' \t\n\r()\'"\\/=!?<>~&|,.:-_@#0123456789abcnulrtuefTRUE\0é😀';
  let ok = 0;
  const ms = timed(() => {
    for (let i = 0; i < 4000; i++) {
      const len = Math.floor(rand() * 120);
      let s = '';
      for (let j = 0; j < len; j++) {
        const r = rand();
        if (r < 0.5) s += alphabet[Math.floor(rand() * alphabet.length)];
        else if (r < 0.8) s += String.fromCharCode(Math.floor(rand() * 256)); // a random byte, as latin1
        else s += String.fromCharCode(Math.floor(rand() * 0x10000)); // any UTF-16 unit, surrogates included
      }
      if (parseOrSyntaxError(s) === 'ok') ok++;
    }
  });
  assert.ok(ms < 3000, `took ${ms}ms`);
  assert.ok(ok >= 0);
});

test('random grammar-shaped input and mutations: a tree or FilterSyntaxError', () => {
  const rand = prng(42);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const operands = ['name', 'num', 'meta.a', 'rel_via_x.y:each', '@now', '@request.auth.id', '@collection.c:al.f', 'null', 'TRUE',
    '12', '-3.5', "'a'", '"b\\"c"', "'\\\\'", 'geoDistance(a,1,2,3)', "strftime('%Y', created, 'utc')"];
  const ops = ['=', '!=', '>', '>=', '<', '<=', '~', '!~', '?=', '?!=', '?>', '?>=', '?<', '?<=', '?~', '?!~'];
  const ws = () => pick(['', ' ', '\n', '\t', ' // c\n', ' // (x\n']);
  const expr = (d: number): string => {
    if (d > 4 || rand() < 0.4) return pick(operands) + ws() + pick(ops) + ws() + pick(operands);
    let s = expr(d + 1);
    for (let i = 0, n = 1 + Math.floor(rand() * 3); i < n; i++) s += ws() + pick(['&&', '||']) + ws() + expr(d + 1);
    return rand() < 0.6 ? `(${ws()}${s}${ws()})` : s;
  };
  const junk = ['(', ')', "'", '"', '\\', '//', '/', ',', '-', '.', ':', '&', '|', '=', '?', '\0', '\r', 'é', '@', '#'];
  const counts = { ok: 0, error: 0 };
  for (let i = 0; i < 3000; i++) {
    let s = expr(0);
    for (let m = Math.floor(rand() * 3); m > 0; m--) {
      const at = Math.floor(rand() * (s.length + 1));
      s = rand() < 0.5 ? s.slice(0, at) + pick(junk) + s.slice(at) : s.slice(0, at) + s.slice(at + 1);
    }
    counts[parseOrSyntaxError(s)]++;
  }
  assert.ok(counts.ok > 500 && counts.error > 500, JSON.stringify(counts));
});

test('a realistic 3500-byte filter parses well under a millisecond or two', () => {
  const parts: string[] = [];
  for (let i = 0; parts.join(' && ').length < 3300; i++) {
    parts.push(`(author.name_${i} ?~ 'val\\'ue ${i}' || n${i} >= -${i}.5 || @request.auth.id = owner)`);
  }
  const filter = parts.join(' && ');
  assert.ok(filter.length <= 3500);
  const runs: number[] = [];
  for (let i = 0; i < 300; i++) runs.push(timed(() => parseFilter(filter)));
  runs.sort((x, y) => x - y);
  const median = runs[runs.length >> 1];
  assert.ok(median < 2, `median ${median}ms`);
  // worst shapes within the cap: deepest allowed nesting around a long tail, and a wall of escapes
  const deep = '('.repeat(64) + 'a=1 || b="' + 'x'.repeat(3200) + '"' + ')'.repeat(64);
  const escapes = 'a = "' + '\\n'.repeat(1740) + '"';
  for (const f of [deep, escapes]) {
    const times: number[] = [];
    for (let i = 0; i < 100; i++) times.push(timed(() => parseFilter(f)));
    times.sort((x, y) => x - y);
    assert.ok(times[50] < 2, `median ${times[50]}ms`);
  }
});

// ---- sort -------------------------------------------------------------------------------------------
function sortOf(raw: string) {
  return parseSort(raw).map((s) => (s.kind === 'field'
    ? { field: s.field.name, path: s.field.path, modifier: s.field.modifier, direction: s.direction }
    : s));
}

function sortRejects(raw: string, code: FilterErrorCode) {
  assert.throws(() => parseSort(raw), (e: unknown) => e instanceof FilterSyntaxError && e.code === code, JSON.stringify(raw.slice(0, 60)));
}

test('sort: fields, directions and special keys (tools/search/sort.go)', () => {
  const f = (field: string, direction: 'ASC' | 'DESC', path = field.split('.'), modifier: string | null = null) =>
    ({ field, path, modifier, direction });
  assert.deepEqual(sortOf(''), []);
  assert.deepEqual(sortOf('name'), [f('name', 'ASC')]);
  assert.deepEqual(sortOf('-name'), [f('name', 'DESC')]);
  assert.deepEqual(sortOf('+name'), [f('name', 'ASC')]);
  assert.deepEqual(sortOf(' -name '), [f('name', 'DESC')]);
  assert.deepEqual(sortOf('name\t'), [f('name', 'ASC')]);
  assert.deepEqual(sortOf('\u00a0name\u0085'), [f('name', 'ASC')]); // Go's TrimSpace set, NEL included
  assert.deepEqual(sortOf('-created,+title , id'), [f('created', 'DESC'), f('title', 'ASC'), f('id', 'ASC')]);
  assert.deepEqual(sortOf('@random'), [{ kind: 'random' }]);
  assert.deepEqual(sortOf('-@random'), [{ kind: 'random' }]);
  assert.deepEqual(sortOf('@rowid,-@rowid'), [{ kind: 'rowid', direction: 'ASC' }, { kind: 'rowid', direction: 'DESC' }]);
  assert.deepEqual(sortOf('-name:lower'), [f('name:lower', 'DESC', ['name'], 'lower')]);
  assert.deepEqual(sortOf('meta.a.b'), [f('meta.a.b', 'ASC')]);
  assert.deepEqual(sortOf('author.name'), [f('author.name', 'ASC')]);
  assert.deepEqual(sortOf('@collection.items.name'), [f('@collection.items.name', 'ASC')]);
  assert.deepEqual(sortOf('@collection.items:al.name'), [f('@collection.items:al.name', 'ASC', ['@collection', 'items:al', 'name'])]);
  assert.deepEqual(sortOf('-@request.auth.name'), [f('@request.auth.name', 'DESC')]);
  assert.deepEqual(sortOf('@request.context'), [f('@request.context', 'ASC')]);
  // PocketBase's resolver patterns are looser than fexpr identifiers (`meta.` is a valid JSON-field sort);
  // whether such a name exists is for the compiler, which knows the schema.
  for (const raw of ['meta.', '_', '_name', 'a:', 'name..x', 'NAME', 'name:lower:x']) assert.equal(parseSort(raw).length, 1, raw);
  assert.equal(parseSort('a,'.repeat(7) + 'a').length, 8);
  assert.equal(parseSort('a'.repeat(255)).length, 1);
});

test('sort: invalid entries and limits', () => {
  for (const raw of ['--name', '+-name', '-+name', 'name,', ',name', 'name,,num', ',', 'name desc', '-', '+', ' ', '\ufeffname',
    '#name', '@now', '@id', '@request', '@request.', '@request.auth.', '@request.auth.a.', '@request.other.x',
    '@collection.items', '@collection.items.', '@collection.:a.b', '@collection.items:.b', '@collection.it-ems.b', 'na me', 'name()', "'name'", 'é', 'name\0', 'a;DROP TABLE x', '(name)']) {
    sortRejects(raw, 'syntax');
  }
  sortRejects('a,'.repeat(8) + 'a', 'sort_limit');
  sortRejects(',,,,,,,,', 'sort_limit'); // PocketBase counts empty entries too
  sortRejects('a'.repeat(256), 'sort_field_too_long');
  sortRejects('-' + 'é'.repeat(128), 'sort_field_too_long'); // 256 bytes
  assert.equal(parseSort(' -' + 'a'.repeat(255) + ' ').length, 1); // measured after trimming and the prefix
  const t0 = performance.now();
  sortRejects(','.repeat(100_000), 'sort_limit');
  sortRejects('a'.repeat(100_000), 'sort_field_too_long');
  assert.ok(performance.now() - t0 < 50);
  assert.throws(() => parseSort(undefined as unknown as string), FilterSyntaxError);
  assert.throws(() => parseFilter(['a=1'] as unknown as string), FilterSyntaxError);
});
