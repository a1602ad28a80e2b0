// The two ways the read path can fail to answer: PocketBase itself would reject the request (ApiError,
// answered with PocketBase's status and message; ResolveError for what fails to resolve), or the sidecar
// cannot be certain of PocketBase's answer (Unsupported: the request falls through to PocketBase and the
// reason is counted).
import { ApiError } from '../errors.js';

/** A filter, sort, rule or expand PocketBase fails to resolve: a generic 400 for list requests. */
export class ResolveError extends ApiError {
  constructor(detail: string) {
    super(400, 'Something went wrong while processing your request.', {}, detail);
  }
}

/** Not answerable with certainty from the replica: fall back to PocketBase. `reason` is a metric label. */
export class Unsupported extends Error {
  constructor(readonly reason: string) {
    super(`unsupported: ${reason}`);
  }
}
