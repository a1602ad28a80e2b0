// JSON output identical to PocketBase 0.40.4's encoding/json/v2 (Deterministic): object keys sorted by
// their UTF-8 bytes, no HTML escaping, control characters as \uXXXX (short forms for \b\f\n\r\t), floats
// in the ES6 shortest form (which JSON.stringify also uses for numbers and strings).

/** Compare two strings by UTF-8 byte order (Go's string order), not UTF-16 code units. */
export function utf8Compare(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800-DFFF) encode code points above FFFF, which sort after E000-FFFF in UTF-8.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys && Math.max(x, y) >= 0xe000) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** A JSON number as Go prints a float64 (identical to JS for finite values; -0 prints as 0). */
export function numberJson(n: number): string {
  if (!Number.isFinite(n)) throw new Error('non-finite number in JSON output');
  return Object.is(n, -0) ? '0' : String(n);
}

/** Serialises any decoded JSON value with sorted keys. */
export function stringifyGo(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string': return JSON.stringify(v);
    case 'number': return numberJson(v);
    case 'boolean': return v ? 'true' : 'false';
    case 'bigint': return v.toString();
    case 'object': {
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + stringifyGo(v[i]);
        return out + ']';
      }
      if (v instanceof RawJson) return v.text;
      const keys = Object.keys(v as object).sort(utf8Compare);
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        out += (i ? ',' : '') + JSON.stringify(keys[i]) + ':' + stringifyGo((v as Record<string, unknown>)[keys[i]]);
      }
      return out + '}';
    }
    default:
      throw new Error(`cannot serialise ${typeof v}`);
  }
}

/** Already-serialised JSON embedded as is (e.g. a record rendered once and shared by several expands). */
export class RawJson {
  constructor(readonly text: string) {}
}

/**
 * A JSON column as stored by the replica (JSON.stringify of PocketBase's API value) re-rendered the way
 * PocketBase prints it. Text without objects is already in PocketBase's form (arrays and scalars keep
 * their order, numbers print the same), so only objects need a parse to sort their keys.
 */
export function storedJsonToGo(text: string): string {
  return text.indexOf('{') === -1 ? text : stringifyGo(JSON.parse(text));
}
