// The one HTTP client to PocketBase: a keep-alive undici pool shared by the sync engine and the proxy,
// counting every request by purpose, plus the sidecar's own superuser session for sync requests.
import { Client, Pool, type Dispatcher } from 'undici';

export type Purpose = 'proxy' | 'sync' | 'bootstrap' | 'schema' | 'auth' | 'realtime';

export interface UpstreamOptions {
  url: string;
  timeoutMs: number;
  connections: number;
  onRequest?: (purpose: Purpose) => void;
}

/** An error answer from PocketBase, or no answer at all (status 0). */
export class UpstreamError extends Error {
  constructor(readonly status: number, message: string, readonly body?: unknown) {
    super(message);
  }
}

export class Upstream {
  readonly pool: Pool;
  readonly origin: string;
  /** Connections for pipelined pairs (requestThen), and those not in use. */
  private readonly pairClients: Client[] = [];
  private readonly idlePairs: Client[] = [];
  private closed = false;
  /** Pairs sent (requestThen), and pairs refused because every pair connection was in use. */
  readonly pairs = { sent: 0, refused: 0 };

  constructor(private readonly opts: UpstreamOptions) {
    const u = new URL(opts.url);
    this.origin = u.origin;
    this.pool = new Pool(this.origin, {
      connections: opts.connections,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: 0, // realtime streams stay open for minutes
      keepAliveTimeout: 10_000,
    });
  }

  request(purpose: Purpose, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
    this.opts.onRequest?.(purpose);
    return this.pool.request(options);
  }

  /**
   * `first`, then `then` written right behind it on a connection of their own (HTTP/1.1 pipelining).
   * PocketBase's server (Go's net/http) serves a connection's requests one at a time and in order, the
   * next one read after the previous handler returned, so `then` sees what `first` committed, and is on
   * its way without waiting for `first`'s answer to come back here. `first` is sent on an idle connection
   * (it need not be idempotent); `then` must be (a GET). The caller reads `first`'s body before it awaits
   * `then` (answers arrive in order). Null when all `connections` pair connections are in use.
   */
  requestThen(purpose: Purpose, first: Dispatcher.RequestOptions, thenPurpose: Purpose, then: Dispatcher.RequestOptions): { first: Promise<Dispatcher.ResponseData>; then: Promise<{ statusCode: number; text: string }> } | null {
    if (this.closed) return null;
    let client = this.idlePairs.pop();
    if (!client) {
      if (this.pairClients.length >= this.opts.connections) {
        this.pairs.refused++;
        return null;
      }
      client = new Client(this.origin, { pipelining: 2, headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs, keepAliveTimeout: 10_000 });
      this.pairClients.push(client);
    }
    this.pairs.sent++;
    this.opts.onRequest?.(purpose);
    this.opts.onRequest?.(thenPurpose);
    // Not blocking: undici otherwise holds the next request back until this one's answer has begun.
    const a = client.request({ ...first, blocking: false });
    const b = client.request(then).then(async (res) => ({ statusCode: res.statusCode, text: await res.body.text() }));
    const used = client;
    // Back to the idle list once both are over (the connection is then idle again).
    void Promise.allSettled([a, b]).then(() => {
      if (!this.closed && !used.destroyed) this.idlePairs.push(used);
    });
    return { first: a, then: b };
  }

  /** A JSON request; non-2xx answers become UpstreamError with PocketBase's body. */
  async json<T>(purpose: Purpose, method: Dispatcher.HttpMethod, path: string, opts: { token?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.token) headers.authorization = opts.token;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await this.request(purpose, { method, path, headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined, signal: opts.signal });
    } catch (err) {
      throw new UpstreamError(0, `PocketBase unreachable: ${(err as Error).message}`);
    }
    return jsonAnswer<T>(res.statusCode, await res.body.text());
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.pool.close().catch(() => {}), ...this.pairClients.map((c) => c.close().catch(() => {}))]);
  }
}

/** The sidecar's superuser session, renewed on expiry or 401. The token never leaves this object. */
export class SuperuserSession {
  private token: string | null = null;
  private expiresAt = 0;
  private pending: Promise<string> | null = null;

  constructor(readonly upstream: Upstream, private readonly email: string, private readonly password: string) {}

  /** The token, when one is held and not about to expire (no request made); else null. */
  currentToken(): string | null {
    return this.token && Date.now() < this.expiresAt - 60_000 ? this.token : null;
  }

  async getToken(): Promise<string> {
    const held = this.currentToken();
    if (held) return held;
    this.pending ??= this.login().finally(() => (this.pending = null));
    return this.pending;
  }

  invalidate(): void {
    this.token = null;
  }

  private async login(): Promise<string> {
    const res = await this.upstream.json<{ token: string }>('auth', 'POST', '/api/collections/_superusers/auth-with-password', {
      body: { identity: this.email, password: this.password },
    });
    this.token = res.token;
    this.expiresAt = tokenExpiry(res.token) ?? Date.now() + 3600_000;
    return res.token;
  }

  /** A superuser JSON request, logging in again once if PocketBase no longer accepts the token. */
  async json<T>(purpose: Purpose, method: Dispatcher.HttpMethod, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const token = await this.getToken();
    try {
      return await this.upstream.json<T>(purpose, method, path, { token, body, signal });
    } catch (err) {
      if (err instanceof UpstreamError && (err.status === 401 || err.status === 403)) {
        this.invalidate();
        return this.upstream.json<T>(purpose, method, path, { token: await this.getToken(), body, signal });
      }
      throw err;
    }
  }
}

/** A JSON answer of PocketBase's: a 2xx body parsed (undefined when empty or not JSON), else an UpstreamError with its message. */
export function jsonAnswer<T>(status: number, text: string): T {
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (status < 200 || status >= 300) {
    const message = (parsed as { message?: string } | undefined)?.message ?? `status ${status}`;
    throw new UpstreamError(status, message, parsed);
  }
  return parsed as T;
}

/** Expiry (ms) from a JWT's payload, without verifying it (PocketBase verifies its own tokens). */
export function tokenExpiry(token: string): number | null {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as { exp?: number };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : null;
  } catch {
    return null;
  }
}
