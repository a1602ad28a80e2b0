// The one way a request reaches PocketBase on a caller's behalf: the canonical path (ctx.url after
// canonicalTarget), the client's headers minus hop-by-hop ones, the caller's PocketBase identity in place
// of the session key, and the real client IP. Either buffered (handlers that read or rewrite the answer:
// auth, writes) or streamed both ways (everything else: realtime, files, the catch-all proxy).
import type { Context } from 'koa';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Purpose, Upstream } from '../../lib/upstream.js';
import type { LogHead } from '../../replica/change-source.js';
import { ApiError, sendError } from '../errors.js';
import { ClientGone, TOO_LARGE } from '../gate/body-limit.js';
import type { IdentityOptions } from '../identity.js';
import type { Authenticated, SessionManager } from '../sessions/manager.js';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers',
  'transfer-encoding', 'upgrade', 'host', 'proxy-connection',
]);

export const UNAVAILABLE = 'PocketBase is unavailable.';

export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface ForwardOptions {
  /** Path and query to send (default: the canonical ctx.url). */
  path?: string;
  method?: string;
  /** A buffered body (its length is set) … */
  body?: Buffer;
  /** … and its content type, when it replaces the client's. */
  contentType?: string;
  purpose?: Purpose;
}

function clientHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export class Forwarder {
  /**
   * `pairedHead`: sends a write with a read of the log head pipelined behind it (ChangeSource.writeThenHead);
   * null when it cannot pair one now.
   */
  constructor(
    private readonly upstream: Upstream, private readonly sessions: SessionManager, readonly identity: IdentityOptions,
    private readonly pairedHead?: (request: Dispatcher.RequestOptions) => { first: Promise<Dispatcher.ResponseData>; head: Promise<LogHead> } | null,
  ) {}

  /** The headers PocketBase gets for this caller. */
  async headers(ctx: Context, buffered: boolean, contentType?: string): Promise<Record<string, string | string[]>> {
    const headers = clientHeaders(ctx.req.headers);
    // Node's server has already answered `Expect: 100-continue`; the request to PocketBase is ours.
    delete headers.expect;
    if (buffered) delete headers['content-length'];
    if (contentType) headers['content-type'] = contentType;
    delete headers.authorization;
    // The sidecar's own write pairing (ChangeSource.writeThenHead); never a client's.
    delete headers['x-hapta-pair'];
    const ipHeader = this.identity.clientIpHeader.toLowerCase();
    delete headers[ipHeader];
    const auth = ctx.state.auth as Authenticated | undefined;
    if (auth) {
      const token = await this.sessions.pbToken(auth.session);
      if (token) headers.authorization = token;
    } else if (ctx.state.passThroughAuth) {
      headers.authorization = ctx.state.passThroughAuth as string;
    }
    if (ctx.state.clientIp) headers[ipHeader] = ctx.state.clientIp as string;
    return headers;
  }

  /** A whole answer from PocketBase; ApiError 502 when it cannot be reached. */
  async fetch(ctx: Context, opts: ForwardOptions = {}): Promise<UpstreamAnswer> {
    return (await this.send(ctx, opts, false)).answer;
  }

  /**
   * A write's whole answer from PocketBase, and the log head read right after it on the same connection
   * where one could be paired (null: the caller reads the head itself once the answer is in).
   */
  fetchWrite(ctx: Context, opts: ForwardOptions = {}): Promise<{ answer: UpstreamAnswer; head: Promise<LogHead> | null }> {
    return this.send(ctx, opts, true);
  }

  private async send(ctx: Context, opts: ForwardOptions, pairHead: boolean): Promise<{ answer: UpstreamAnswer; head: Promise<LogHead> | null }> {
    const headers = await this.headers(ctx, true, opts.contentType);
    ctx.state.upstream = true;
    const request: Dispatcher.RequestOptions = {
      method: (opts.method ?? ctx.method) as Dispatcher.HttpMethod,
      path: opts.path ?? ctx.url,
      headers,
      body: opts.body && opts.body.length ? opts.body : undefined,
    };
    const pair = pairHead ? this.pairedHead?.(request) ?? null : null;
    try {
      const res = await (pair ? pair.first : this.upstream.request(opts.purpose ?? 'proxy', request));
      return { answer: { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) }, head: pair?.head ?? null };
    } catch {
      throw new ApiError(502, UNAVAILABLE);
    }
  }

  /** Answers the client with PocketBase's status and headers, and its body or a replacement. */
  relay(ctx: Context, answer: UpstreamAnswer, body: Buffer | string = answer.body): void {
    ctx.status = answer.status;
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || name === 'content-length') continue;
      ctx.set(name, value as string | string[]);
    }
    if (answer.status === 204 || answer.status === 304 || ctx.method === 'HEAD') {
      ctx.body = null;
      ctx.status = answer.status;
      return;
    }
    ctx.body = body;
  }

  /** Streams the request (body limited by the caller) to PocketBase and the answer back. */
  async stream(ctx: Context, opts: { path?: string; body?: () => Readable; bodyTooLarge?: () => boolean } = {}): Promise<void> {
    const headers = await this.headers(ctx, false);
    const hasBody = !['GET', 'HEAD', 'OPTIONS'].includes(ctx.method) || ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined;
    const abort = new AbortController();
    const onClose = () => abort.abort();
    ctx.res.once('close', onClose);
    ctx.state.upstream = true;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.upstream.request('proxy', {
        method: ctx.method as Dispatcher.HttpMethod,
        path: opts.path ?? ctx.url,
        headers,
        body: hasBody ? (opts.body?.() ?? ctx.req) : undefined,
        signal: abort.signal,
      });
    } catch (err) {
      ctx.res.off('close', onClose);
      if ((err as { status?: number }).status === 413 || opts.bodyTooLarge?.()) {
        ctx.set('Connection', 'close');
        return sendError(ctx, 413, TOO_LARGE);
      }
      // The client left (its body stream failed): nobody to answer.
      if (abort.signal.aborted || err instanceof ClientGone) return;
      return sendError(ctx, 502, UNAVAILABLE);
    }
    ctx.status = res.statusCode;
    for (const [name, value] of Object.entries(res.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || name === 'content-length') continue;
      ctx.set(name, value as string | string[]);
    }
    if (ctx.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304) {
      await res.body.dump().catch(() => {});
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
  }
}
