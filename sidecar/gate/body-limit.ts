// Request body limits on every route: a declared Content-Length over the limit is refused at once
// (413, PocketBase's message); a body without one is counted as it streams and cut off at the limit.
import { Transform, type Readable } from 'node:stream';
import type { Context, Next } from 'koa';
import { sendError } from '../errors.js';

export const TOO_LARGE = 'Request entity too large';

export class BodyTooLarge extends Error {
  readonly status = 413;
  readonly expose = true;
  constructor() {
    super(TOO_LARGE);
  }
}

export function bodyLimit(opts: { json: number; upload: number }) {
  return async function limitBody(ctx: Context, next: Next): Promise<void> {
    const limit = ctx.get('content-type').startsWith('multipart/') ? opts.upload : opts.json;
    ctx.state.bodyLimit = limit;
    const declared = ctx.get('content-length');
    if (declared && Number(declared) > limit) {
      ctx.set('Connection', 'close');
      return sendError(ctx, 413, TOO_LARGE);
    }
    await next();
  };
}

/** The request body as a stream that errors with BodyTooLarge past `limit` bytes. */
export function limitedBody(req: Readable, limit: number, onExceeded?: () => void): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) {
        onExceeded?.();
        return cb(new BodyTooLarge());
      }
      cb(null, chunk);
    },
  });
  req.on('error', (err) => counter.destroy(err));
  return req.pipe(counter);
}

/** Reads a whole (small) body with the limit; used where the sidecar must look at the JSON. */
export async function readBody(req: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let seen = 0;
  for await (const chunk of req) {
    seen += (chunk as Buffer).length;
    if (seen > limit) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
