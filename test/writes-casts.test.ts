// PocketBase's casts as the write validator reproduces them (no PocketBase needed): each expectation was
// measured on the 0.40.4 binary (test/writes-validation.test.ts compares thousands more against it).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { goFloatF, goParseFloat, sentenize, toBool, toFloat, toStr, toUniqueStrings, UNSURE } from '../sidecar/writes/cast.js';
import { applyKey, dbValue, hasDuplicateKeys, validateField, zeroValue } from '../sidecar/writes/fields.js';
import { parseDate } from '../sidecar/writes/formats.js';
import type { PbField } from '../replica/schema.js';

describe('casts', () => {
  test('cast.ToFloat64 through strconv.ParseFloat: errors and overflow are 0, inf and nan are kept', () => {
    const cases: Array<[unknown, number]> = [
      ['abc', 0], ['1e400', 0], [' 5', 0], ['0x10', 0], ['5.', 5], ['.5e1', 5], ['+5', 5], ['1_0', 10], ['0x1p3', 8], ['-0', -0],
      [[5], 0], [{ a: 1 }, 0], [true, 1], [null, 0], ['', 0],
    ];
    for (const [v, want] of cases) assert.ok(Object.is(toFloat(v), want), `${JSON.stringify(v)} -> ${String(toFloat(v))}`);
    assert.ok(Number.isNaN(toFloat('NaN')));
    assert.equal(toFloat('inf'), Infinity);
    assert.equal(toFloat('-Infinity'), -Infinity);
    assert.equal(goParseFloat('+nan'), null);
    assert.equal(goParseFloat('infin'), null);
    assert.equal(goParseFloat('1__0'), null);
  });

  test('cast.ToString and ToBool', () => {
    assert.equal(toStr(1e21), '1000000000000000000000');
    assert.equal(toStr(1e-7), '0.0000001');
    assert.equal(toStr(-0), '-0');
    assert.equal(toStr(true), 'true');
    assert.equal(toStr(['x']), '');
    assert.equal(toStr({ a: 1 }), '');
    assert.equal(goFloatF(123.456), '123.456');
    assert.equal(toBool('yes'), false);
    assert.equal(toBool('T'), true);
    assert.equal(toBool([1]), false);
    assert.equal(toBool(0.1), true);
  });

  test('list.ToUniqueStringSlice: JSON arrays decoded up to the first error, then the text itself', () => {
    assert.deepEqual(toUniqueStrings('["x", 1]'), ['x', '["x", 1]']);
    assert.deepEqual(toUniqueStrings('["x"] y'), ['x', '["x"] y']);
    assert.deepEqual(toUniqueStrings('[null,"x",null,"y", tru]'), ['x', 'y', '[null,"x",null,"y", tru]']);
    assert.deepEqual(toUniqueStrings('  ["x","x",""]'), ['x']);
    assert.deepEqual(toUniqueStrings('a[b'), ['a[b']);
    assert.deepEqual(toUniqueStrings([1, true, null, 'x']), ['1', 'true', 'x']);
    assert.deepEqual(toUniqueStrings([['x']]), []);
    assert.deepEqual(toUniqueStrings(5), ['5']);
    assert.deepEqual(toUniqueStrings({ a: 1 }), []);
  });

  test('DateTime.Scan: DefaultDateLayout, then cast\'s layouts; unparseable is the zero date', () => {
    const pb = (s: string) => {
      const d = parseDate(s);
      return d === UNSURE ? 'UNSURE' : d.pb;
    };
    assert.equal(pb('2025-03-04 10:00:00.123Z'), '2025-03-04 10:00:00.123Z');
    assert.equal(pb('2025-03-04 1:02:03'), '2025-03-04 01:02:03.000Z');
    assert.equal(pb('2025-03-04T10:00:00.5+01:00'), '2025-03-04 09:00:00.500Z');
    assert.equal(pb('2019-12-31T23:00:00-02:00'), '2020-01-01 01:00:00.000Z');
    assert.equal(pb('2025-03-04 10:00:00 +01:00'), '2025-03-04 09:00:00.000Z');
    assert.equal(pb('2025-03-04 10:00:00,5Z'), '2025-03-04 10:00:00.500Z');
    assert.equal(pb('2024-02-29 10:00:00.123456789Z'), '2024-02-29 10:00:00.123Z');
    for (const zero of ['2025-3-04', '2025-02-29', '2025-03-04 24:00:00', '2025-03-04x', '  2025-03-04', '2025-03-04T10:00Z', 'garbage']) assert.equal(pb(zero), '', zero);
    assert.equal(pb('04 Mar 25 10:00 UTC'), 'UNSURE');
    const field: PbField = { name: 'day', type: 'date', max: '2030-01-01 00:00:00.000Z' };
    const late = applyKey(field, 'day', zeroValue(field), '2030-01-01 00:00:00.0001Z');
    assert.equal((validateField(field, late, { oldFiles: [], isNew: true, relationExists: () => true }) as { code: string }).code, 'validation_max_less_equal_than_required');
    assert.equal(applyKey(field, 'day', zeroValue(field), 1700000000) && (applyKey(field, 'day', zeroValue(field), 1700000000) as { zero: boolean }).zero, true);
  });

  test('field values: json text, geo points, numbers, messages', () => {
    const json: PbField = { name: 'data', type: 'json', maxSize: 100 };
    assert.equal(applyKey(json, 'data', '', 'abc'), '"abc"');
    assert.equal(applyKey(json, 'data', '', '\u0001'), '"\\x01"');
    assert.equal(applyKey(json, 'data', '', { b: 1, a: [-0, '<&>'] }), '{"a":[-0,"<&>"],"b":1}');
    assert.equal(applyKey(json, 'data', '', '1.5e3'), '1.5e3');
    const ctx = { oldFiles: [], isNew: true, relationExists: () => true };
    assert.equal((validateField(json, '"\\x01"', ctx) as { code: string }).code, 'validation_invalid_json');
    assert.equal((validateField(json, '1e400', ctx) as { code: string }).code, 'validation_invalid_json');
    const geo: PbField = { name: 'where', type: 'geoPoint' };
    assert.deepEqual(applyKey(geo, 'where', null, '{"lon":1,"lat":"x"}'), { lon: 1, lat: 0 });
    assert.deepEqual(applyKey(geo, 'where', null, '{"lat":"x","lon":1}'), { lon: 0, lat: 0 });
    assert.deepEqual(applyKey(geo, 'where', null, { LON: 5 }), { lon: 0, lat: 0 });
    assert.equal(applyKey(geo, 'where', null, { lon: 1, lat: 'x' }), UNSURE);
    assert.equal(dbValue(geo, { lon: 1, lat: 0 }), '{"lon":1,"lat":0}');
    const n: PbField = { name: 'i', type: 'number', onlyInt: true };
    assert.equal((validateField(n, 1e21, ctx) as { code: string }).code, 'validation_only_int_constraint');
    assert.equal((validateField(n, NaN, ctx) as { code: string }).code, 'validation_not_a_number');
    const one: PbField = { name: 'one', type: 'select', maxSelect: 1, values: ['a'] };
    assert.equal((validateField(one, '5.', ctx) as { message: string }).message, 'Invalid value 5.');
    assert.equal(sentenize('Invalid value x\u00a0'), 'Invalid value x.');
    assert.equal(sentenize('Invalid value x!'), 'Invalid value x!');
    assert.equal(hasDuplicateKeys('{"a":{"b":1,"c":[{"d":1,"d":2}]}}'), true);
    assert.equal(hasDuplicateKeys('{"a":1,"b":{"a":2},"c":"\\"a\\""}'), false);
    assert.equal(hasDuplicateKeys('{"a":1,"\\u0061":2}'), true);
  });
});
