// Forwards a request to PocketBase unchanged (method, path, query, headers, streamed body) and streams
// the answer back (status, headers, body; realtime SSE included). Hop-by-hop headers are dropped.
import type { Context } from 'koa';
import type { IncomingHttpHeaders } from 'node:http';
import type { Purpose, Upstream } from '../lib/upstream.js';
import { sendError } from './errors.js';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers',
  'transfer-encoding', 'upgrade', 'host', 'proxy-connection',
]);

export function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export interface ProxyOptions {
  upstream: Upstream;
  purpose?: Purpose;
  /** Adjusts the outgoing headers (identity mapping, client IP); may return a rewritten path. */
  prepare?: (ctx: Context, headers: Record<string, string | string[]>) => Promise<string | void>;
  /** The request body stream to forward (e.g. with a size limit); the raw request when absent. */
  body?: (ctx: Context) => NodeJS.ReadableStream;
}

export function createProxy(opts: ProxyOptions) {
  return async function proxy(ctx: Context): Promise<void> {
    const headers = forwardHeaders(ctx.req.headers);
    const path = (await opts.prepare?.(ctx, headers)) || ctx.url;
    const hasBody = !['GET', 'HEAD', 'OPTIONS'].includes(ctx.method) || ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined;
    const abort = new AbortController();
    const onClose = () => abort.abort();
    ctx.res.once('close', onClose);
    let res;
    ctx.state.upstream = true;
    try {
      res = await opts.upstream.request(opts.purpose ?? 'proxy', {
        method: ctx.method as 'GET',
        path,
        headers,
        body: hasBody ? ((opts.body?.(ctx) ?? ctx.req) as import('node:stream').Readable) : undefined,
        signal: abort.signal,
      });
    } catch (err) {
      ctx.res.off('close', onClose);
      if ((err as { status?: number }).status === 413 || ctx.state.bodyTooLarge) {
        ctx.set('Connection', 'close');
        return sendError(ctx, 413, 'Request entity too large');
      }
      if (abort.signal.aborted) return;
      return sendError(ctx, 502, 'PocketBase is unavailable.');
    }
    ctx.status = res.statusCode;
    for (const [name, value] of Object.entries(res.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || name === 'content-length') continue;
      ctx.set(name, value as string | string[]);
    }
    if (ctx.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304) {
      await res.body.dump();
      ctx.body = null;
      ctx.status = res.statusCode;
      return;
    }
    if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
      ctx.req.socket.setTimeout(0);
      ctx.req.socket.setNoDelay(true);
      ctx.req.socket.setKeepAlive(true);
    }
    res.body.on('error', () => ctx.res.destroy());
    ctx.body = res.body;
    // After the body: Koa drops Content-Length when a stream is assigned.
    if (res.headers['content-length'] !== undefined) ctx.length = Number(res.headers['content-length']);
  };
}
