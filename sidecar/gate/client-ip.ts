// The client's IP: the socket address, or the address X-Forwarded-For names only when the connection
// comes from a configured trusted proxy (proxy-addr walks the chain from the nearest hop and stops at
// the first untrusted address, so a spoofed header never buys a fresh bucket).
import type { Context, Next } from 'koa';
import proxyaddr from 'proxy-addr';

export function clientIp(trustedProxies: string) {
  const list = trustedProxies.split(',').map((s) => s.trim()).filter(Boolean);
  const trust = proxyaddr.compile(list);
  return async function resolveClientIp(ctx: Context, next: Next): Promise<void> {
    let ip: string;
    try {
      // A socket already closed has no remote address.
      ip = proxyaddr(ctx.req, trust) ?? '';
    } catch {
      ip = ctx.req.socket.remoteAddress ?? '';
    }
    ctx.state.clientIp = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    await next();
  };
}
