// PocketBase's answers the write path produces itself: field validation (400), the batch wrapper of a
// failed inner request, and hook rejections, all in PocketBase's {data, message, status} shape.
import type { Context } from 'koa';
import { sendError } from '../errors.js';
import type { FieldError } from './fields.js';
import type { HookReject } from './hooks.js';

export interface PbErrorBody { data: Record<string, unknown>; message: string; status: number }

export function validationBody(message: string, data: Record<string, FieldError>): PbErrorBody {
  return { data, message, status: 400 };
}

export function hookBody(r: HookReject, fallback: string): PbErrorBody {
  const status = Number.isInteger(r.status) && r.status! >= 400 && r.status! < 500 ? r.status! : 400;
  return { data: r.data ?? {}, message: r.message || fallback, status };
}

/** apis/batch.go: the first failed inner request, wrapped. */
export function batchBody(index: number, inner: PbErrorBody): PbErrorBody {
  return {
    data: { requests: { [String(index)]: { code: 'batch_request_failed', message: 'Batch request failed.', response: inner } } },
    message: 'Batch transaction failed.',
    status: 400,
  };
}

export function send(ctx: Context, body: PbErrorBody): void {
  sendError(ctx, body.status, body.message, body.data);
}
