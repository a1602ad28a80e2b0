// Closes PocketBase's dashboard and superuser-only API on the sidecar's public port when configured:
// such requests get PocketBase's 404 as if the routes did not exist.
import type { Context, Next } from 'koa';
import { sendError } from '../errors.js';

const SUPERUSER_API = [
  /^\/api\/settings(\/|$)/, /^\/api\/logs(\/|$)/, /^\/api\/backups(\/|$)/, /^\/api\/crons(\/|$)/,
  /^\/api\/collections\/?$/, /^\/api\/collections\/import$/, /^\/api\/collections\/meta(\/|$)/,
  /^\/api\/collections\/[^/]+\/?$/, /^\/api\/collections\/[^/]+\/truncate$/,
  /^\/api\/collections\/(_superusers|pbc_3142635823)\//, /^\/api\/collections\/[^/]+\/impersonate\//,
];

export function isSuperuserApi(path: string): boolean {
  return SUPERUSER_API.some((re) => re.test(path));
}

export function routeGuard(opts: { exposeDashboard: boolean; exposeSuperuserApi: boolean }) {
  return async function guardRoutes(ctx: Context, next: Next): Promise<void> {
    if (!opts.exposeDashboard && (ctx.path === '/_' || ctx.path.startsWith('/_/'))) {
      return sendError(ctx, 404, "The requested resource wasn't found.");
    }
    if (!opts.exposeSuperuserApi && isSuperuserApi(ctx.path)) {
      return sendError(ctx, 404, "The requested resource wasn't found.");
    }
    await next();
  };
}
