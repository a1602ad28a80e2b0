// PocketBase's answers the write path produces itself: field validation (400), the batch wrapper of a
// failed inner request, and hook rejections, all in PocketBase's {data, message, status} shape.
import { ApiError } from '../errors.js';
import type { FieldError } from './fields.js';
import type { HookReject } from './hooks.js';

export function validationError(message: string, data: Record<string, FieldError>): ApiError {
  return new ApiError(400, message, data);
}

export function hookError(r: HookReject, fallback: string): ApiError {
  const status = Number.isInteger(r.status) && r.status! >= 400 && r.status! < 500 ? r.status! : 400;
  return new ApiError(status, r.message || fallback, r.data ?? {});
}

/** apis/batch.go: the first failed inner request, wrapped. */
export function batchError(index: number, inner: ApiError): ApiError {
  return new ApiError(400, 'Batch transaction failed.', {
    requests: { [String(index)]: { code: 'batch_request_failed', message: 'Batch request failed.', response: inner.toJSON() } },
  });
}
