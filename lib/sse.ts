// Server-sent events as PocketBase's realtime stream sends them: each frame ends with a blank line.
import type { Readable } from 'node:stream';

/** The frames of an SSE body, in order, without the blank line that ends each. */
export async function* sseFrames(body: Readable): AsyncGenerator<string> {
  body.setEncoding('utf8');
  let buffer = '';
  for await (const chunk of body) {
    buffer += chunk as string;
    let idx: number;
    while ((idx = buffer.indexOf('\n\n')) >= 0) {
      yield buffer.slice(0, idx);
      buffer = buffer.slice(idx + 2);
    }
  }
}
