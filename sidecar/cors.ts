// CORS headers on answers the sidecar gives itself, as PocketBase's CORS middleware sets them with its
// default `--origins *`; proxied answers already carry PocketBase's own.
import type { Context, Next } from 'koa';

export function cors(origins: string) {
  const list = origins.split(',').map((s) => s.trim()).filter(Boolean);
  const any = list.includes('*');
  return async function corsHeaders(ctx: Context, next: Next): Promise<void> {
    await next();
    const origin = ctx.get('origin');
    if (!origin || ctx.state.upstream === true) return;
    ctx.vary('Origin');
    if (any) ctx.set('Access-Control-Allow-Origin', '*');
    else if (list.includes(origin)) ctx.set('Access-Control-Allow-Origin', origin);
  };
}
