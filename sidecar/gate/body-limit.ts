// Request body limits on every route: a declared Content-Length over the limit is refused at once
// (413, PocketBase's message); a body without one is counted as it streams and cut off at the limit.
// Every stream made here has its errors handled: a client that goes away mid-body (aborted, reset,
// broken chunked framing) ends its request as ClientGone, never the process and never a 500.
import { finished, Transform, type Readable } from 'node:stream';
import type { Context, Next } from 'koa';
import { ApiError, sendError } from '../errors.js';

export const TOO_LARGE = 'Request entity too large';

export class BodyTooLarge extends ApiError {
  readonly expose = true;
  constructor() {
    super(413, TOO_LARGE);
  }
}

/**
 * The client went away before its body was read (connection closed or reset, a framing error the
 * HTTP parser refused). Nobody is left to answer: 499 (client closed request) is only for the logs
 * and metrics, and it is a 4xx so the error handler neither logs it as a failure nor answers 500.
 */
export class ClientGone extends ApiError {
  readonly expose = true;
  constructor(readonly reason?: unknown) {
    super(499, 'Client closed request.');
  }
}

/** The error a failed request stream ends with: ours (limit) as is, anything else means the client left. */
function asClientError(err: unknown): Error {
  return err instanceof BodyTooLarge || err instanceof ClientGone ? err : new ClientGone(err);
}

/** Stops reading a body we refused: the rest is discarded until the connection closes after the answer. */
function discardRest(req: Readable): void {
  req.unpipe();
  req.resume();
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

/**
 * The request body as a stream that errors with BodyTooLarge past `limit` bytes, or with ClientGone
 * when the request fails (client gone). The stream's errors are always handled here as well, so an
 * error after its consumer stopped listening (an upstream request already answered or never started)
 * is dropped instead of ending the process. Past the limit the request is not destroyed (the 413 still
 * has to reach the client): the rest of it is discarded.
 */
export function limitedBody(req: Readable, limit: number, onExceeded?: () => void): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) {
        onExceeded?.();
        discardRest(req);
        return cb(new BodyTooLarge());
      }
      cb(null, chunk);
    },
  });
  // finished() leaves its listeners in place after calling back: no later 'error' goes unhandled.
  finished(counter, () => {});
  finished(req, (err) => {
    if (err) counter.destroy(asClientError(err));
  });
  return req.pipe(counter);
}

/**
 * Reads a whole (small) body with the limit; used where the sidecar must look at the JSON. Rejects with
 * BodyTooLarge past the limit (the rest of the body is discarded, the request is not destroyed, so the
 * 413 can still be sent) and with ClientGone when the request fails before its end.
 */
export function readBody(req: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let seen = 0;
    let over = false;
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen <= limit) return void chunks.push(chunk);
      over = true;
      req.off('data', onData);
      discardRest(req);
      reject(new BodyTooLarge());
    };
    finished(req, (err) => {
      if (over) return;
      if (err) reject(asClientError(err));
      else resolve(Buffer.concat(chunks));
    });
    req.on('data', onData);
  });
}
