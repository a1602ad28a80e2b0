// Slows password guessing without letting an attacker lock a victim out: failures are counted per
// (identity, IP), per identity and per IP over a window. An IP that fails too often for an identity is
// refused for it; an identity attacked from many IPs refuses only IPs it never signed in from; an IP
// failing across identities is refused. Every refusal ends when its window passes.
import type { CounterStore } from './counters.js';

export interface LoginGuardOptions {
  maxFailuresPerIdentityIp: number;
  maxFailuresPerIdentity: number;
  maxFailuresPerIp: number;
  windowMs: number;
}

const KNOWN_IP_TTL = 30 * 86400_000;

export class LoginGuard {
  constructor(private readonly counters: CounterStore, private readonly opts: LoginGuardOptions) {}

  private keys(collection: string, identity: string, ip: string) {
    const id = `${collection}:${identity.trim().toLowerCase()}`;
    return { pair: `login:pair:${id}:${ip}`, identity: `login:id:${id}`, ip: `login:ip:${ip}`, known: `login:known:${id}` };
  }

  /** Whether this attempt may go to PocketBase. */
  async allowed(collection: string, identity: string, ip: string): Promise<boolean> {
    const k = this.keys(collection, identity, ip);
    const [pair, byIdentity, byIp] = await Promise.all([this.counters.get(k.pair), this.counters.get(k.identity), this.counters.get(k.ip)]);
    if (pair >= this.opts.maxFailuresPerIdentityIp || byIp >= this.opts.maxFailuresPerIp) return false;
    if (byIdentity >= this.opts.maxFailuresPerIdentity) return this.counters.isMember(k.known, ip);
    return true;
  }

  async failed(collection: string, identity: string, ip: string): Promise<void> {
    const k = this.keys(collection, identity, ip);
    await Promise.all([
      this.counters.incr(k.pair, this.opts.windowMs),
      this.counters.incr(k.identity, this.opts.windowMs),
      this.counters.incr(k.ip, this.opts.windowMs),
    ]);
  }

  async succeeded(collection: string, identity: string, ip: string): Promise<void> {
    const k = this.keys(collection, identity, ip);
    await Promise.all([this.counters.reset(k.pair), this.counters.remember(k.known, ip, KNOWN_IP_TTL)]);
  }
}
