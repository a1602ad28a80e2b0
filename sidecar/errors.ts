// PocketBase's error shape on the wire ({data, message, status}), and the one middleware that turns
// anything else into a plain 500 without internals.
import type { Context, Next } from 'koa';
import type { Logger } from '../lib/log.js';

/**
 * The one error type for answers in PocketBase's shape: thrown anywhere in a request, rendered by
 * errorHandler (or sendApiError). `detail` is for logs and tests, never sent.
 */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly data: Record<string, unknown> = {}, readonly detail = '') {
    super(message);
  }

  /** The wire form: {data, message, status}. */
  toJSON(): { data: Record<string, unknown>; message: string; status: number } {
    return { data: this.data, message: this.message, status: this.status };
  }
}

export function sendApiError(ctx: Context, err: ApiError): void {
  sendError(ctx, err.status, err.message, err.data);
}

export function sendError(ctx: Context, status: number, message: string, data: Record<string, unknown> = {}): void {
  ctx.status = status;
  ctx.set('Content-Type', 'application/json'); // as PocketBase sends it, without a charset
  ctx.body = { data, message, status };
}

export const SHARED_STORE_DOWN = 'The service is temporarily unavailable. Try again later.';

/**
 * Redis (sessions, rate-limit counters, the login guard, watermarks when sidecars share them) could not
 * be reached: ioredis gave up on the command after its retries, or the connection is gone.
 */
function sharedStoreDown(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string } | null;
  if (!e) return false;
  return e.name === 'MaxRetriesPerRequestError' || e.message === 'Connection is closed.' || e.message === "Stream isn't writeable and enableOfflineQueue options is false";
}

export function errorHandler(log: Logger) {
  return async function errorHandler(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      if (err instanceof ApiError) return sendError(ctx, err.status, err.message, err.data);
      const status = (err as { status?: number; expose?: boolean }).status;
      if (status && status >= 400 && status < 500 && (err as { expose?: boolean }).expose) {
        return sendError(ctx, status, (err as Error).message);
      }
      if (sharedStoreDown(err)) {
        log.warn('shared store unavailable', { method: ctx.method, path: ctx.path, error: (err as Error).message });
        return sendError(ctx, 503, SHARED_STORE_DOWN);
      }
      log.error('request failed', { method: ctx.method, path: ctx.path, error: (err as Error).message });
      sendError(ctx, 500, 'Something went wrong while processing your request.');
    }
  };
}
