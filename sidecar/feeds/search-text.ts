// The `q` of a feed request is hostile text: it never reaches FTS5 as query syntax. It is cut into
// words (unicode letters, digits and combining marks), capped in count and length, and each word is
// quoted as an FTS5 string; the words are ANDed (FTS5's implicit operator between strings).
import { ApiError } from '../errors.js';

export const MAX_QUERY_CHARS = 1000;
export const MAX_TOKENS = 12;
export const MAX_TOKEN_CHARS = 48;

const WORD = /[\p{L}\p{N}][\p{L}\p{N}\p{M}]*/gu;

/** The words of `q` (lowercased, deduplicated, capped); empty when it has none. 400 when it is too long. */
export function searchTokens(q: string): string[] {
  if (q.length > MAX_QUERY_CHARS) {
    throw new ApiError(400, 'The search text is too long.', { q: { code: 'validation_max_text_constraint', message: `Must be no more than ${MAX_QUERY_CHARS} character(s).` } });
  }
  const out: string[] = [];
  for (const m of q.normalize('NFC').matchAll(WORD)) {
    // Cut by code points so a surrogate pair is never split in half.
    const word = Array.from(m[0].toLowerCase()).slice(0, MAX_TOKEN_CHARS).join('');
    if (!out.includes(word)) out.push(word);
    if (out.length >= MAX_TOKENS) break;
  }
  return out;
}

/** The FTS5 MATCH expression for the words: each one a quoted string, so no operator can appear. */
export function ftsMatch(tokens: string[]): string {
  return tokens.map((t) => `"${t.replace(/"/g, '""')}"`).join(' ');
}
