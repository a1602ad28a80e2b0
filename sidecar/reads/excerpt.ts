// The picker's `:excerpt(max, withEllipsis)` (tools/picker/excerpt_modifier.go): plain text of an HTML
// string. PocketBase parses with the full HTML5 algorithm; we handle the well-formed subset editors
// produce (known tags properly nested, comments, common entities) and fall back on anything else.
import { Unsupported } from './errors.js';

const EXCLUDE = new Set(['head', 'style', 'script', 'iframe', 'embed', 'applet', 'object', 'svg', 'img', 'picture',
  'dialog', 'template', 'button', 'form', 'textarea', 'input', 'select', 'option']);
const INLINE = new Set(['a', 'abbr', 'acronym', 'b', 'bdo', 'big', 'br', 'button', 'cite', 'code', 'em', 'i', 'label',
  'q', 'small', 'span', 'strong', 'strike', 'sub', 'sup', 'time']);
/** Tags whose parsing is a plain nesting in HTML5 when properly closed (no implied ends, no special text). */
const CONTAINERS = new Set(['a', 'abbr', 'acronym', 'b', 'bdo', 'big', 'cite', 'code', 'em', 'i', 'label', 'q', 'small',
  'span', 'strong', 'strike', 'sub', 'sup', 'time', 'p', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li',
  'blockquote', 'section', 'article', 'header', 'footer', 'figure', 'figcaption', 'u', 's', 'mark', 'nav', 'aside', 'main']);
const VOID = new Set(['br', 'hr', 'img', 'wbr']);
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

interface El { tag: string; children: Array<El | string> }

function decodeEntities(s: string): string {
  return s.replace(/&([^;&\s<]*);?/g, (m, name: string) => {
    // '&' not starting a character reference is plain text.
    if (!/^[A-Za-z#]/.test(name)) {
      if (name.includes('&') || m.endsWith(';')) throw new Unsupported('excerpt_entity');
      return m;
    }
    if (!m.endsWith(';')) throw new Unsupported('excerpt_entity');
    if (name in ENTITIES) return ENTITIES[name];
    const num = /^#(?:([0-9]{1,7})|[xX]([0-9a-fA-F]{1,6}))$/.exec(name);
    if (num) {
      const cp = num[1] !== undefined ? parseInt(num[1], 10) : parseInt(num[2], 16);
      if (cp > 0 && cp < 0x80 && cp >= 0x20 || cp >= 0xa0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) return String.fromCodePoint(cp);
    }
    throw new Unsupported('excerpt_entity');
  });
}

/** A tree for the safe subset; anything the HTML5 parser might restructure is Unsupported. */
function parse(html: string): El {
  if (/[\r\0]/.test(html)) throw new Unsupported('excerpt_chars');
  const root: El = { tag: '#root', children: [] };
  const stack: El[] = [root];
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    const text = html.slice(i, lt === -1 ? html.length : lt);
    if (text) stack[stack.length - 1].children.push(decodeEntities(text));
    if (lt === -1) break;
    // '<' not followed by a tag name, '/' or '!' is text in HTML5.
    if (!/^[A-Za-z/!?]/.test(html.charAt(lt + 1))) {
      const nextLt = html.indexOf('<', lt + 1);
      stack[stack.length - 1].children.push(decodeEntities(html.slice(lt, nextLt === -1 ? html.length : nextLt)));
      i = nextLt === -1 ? html.length : nextLt;
      continue;
    }
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      if (end === -1 || html.slice(lt + 4, end).includes('--')) throw new Unsupported('excerpt_comment');
      i = end + 3;
      continue;
    }
    const m = /^<(\/?)([a-z][a-z0-9]*)((?:\s+[a-z_:][-a-z0-9_:.]*(?:\s*=\s*(?:"[^"<]*"|'[^'<]*'))?)*)\s*(\/?)>/i.exec(html.slice(lt));
    if (!m) throw new Unsupported('excerpt_markup');
    const tag = m[2].toLowerCase();
    if (!CONTAINERS.has(tag) && !VOID.has(tag)) throw new Unsupported('excerpt_tag');
    if (m[1]) {
      if (VOID.has(tag) || stack.length === 1 || stack[stack.length - 1].tag !== tag) throw new Unsupported('excerpt_nesting');
      stack.pop();
    } else if (VOID.has(tag)) {
      stack[stack.length - 1].children.push({ tag, children: [] });
    } else {
      if (m[4]) throw new Unsupported('excerpt_self_closing');
      if (tag === 'p' && stack.some((e) => e.tag === 'p')) throw new Unsupported('excerpt_nesting');
      const el: El = { tag, children: [] };
      stack[stack.length - 1].children.push(el);
      stack.push(el);
    }
    i = lt + m[0].length;
  }
  if (stack.length !== 1) throw new Unsupported('excerpt_unclosed');
  // html.Parse wraps everything in html > body (both blocks; the empty head is excluded).
  return { tag: 'html', children: [{ tag: 'head', children: [] }, { tag: 'body', children: root.children }] };
}

const utf8Len = (s: string) => Buffer.byteLength(s, 'utf8');

export function excerpt(value: unknown, max: number, ellipsis: boolean): unknown {
  if (typeof value !== 'string') return value;
  const doc = parse(value);
  let out = '';
  let outBytes = 0;
  let prevSpace = false;
  const write = (s: string) => { out += s; outBytes += utf8Len(s); };
  const walk = (n: El | string): void => {
    if (typeof n === 'string') {
      let txt = n.replace(/[\t\n\f\r ]+/g, ' ');
      if (prevSpace) txt = txt.replace(/^ +/, '');
      if (txt !== '') { prevSpace = txt.endsWith(' '); write(txt); }
      return;
    }
    if (outBytes > max + 2) return;
    for (const c of n.children) {
      if (typeof c !== 'string' && EXCLUDE.has(c.tag)) continue;
      const block = typeof c !== 'string' && !INLINE.has(c.tag);
      if (block && !prevSpace) { write(' '); prevSpace = true; }
      walk(c);
      if (block && !prevSpace) { write(' '); prevSpace = true; }
    }
  };
  // The document node itself: its only child is <html>.
  walk({ tag: '#document', children: [doc] });
  let result = goTrimSpace(out);
  if (utf8Len(result) > max) {
    const runes = Array.from(result);
    if (runes.length > max) {
      result = goTrimSpace(runes.slice(0, max).join(''));
      if (ellipsis) result += '...';
    }
  }
  return result;
}

/** strings.TrimSpace: Unicode white space (incl. NBSP, NEL) at both ends. */
function goTrimSpace(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, '');
}
