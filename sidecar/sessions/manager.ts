// Rotating sessions. A client never holds a PocketBase token: every successful authentication creates a
// session that keeps the PocketBase token (sealed) and hands out a sidecar key instead. auth-refresh
// retires the presented key; a retired key works for a short grace window and never after: presented
// later it burns the whole session (that is how a stolen key shows itself).
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import { tokenExpiry, type Upstream, UpstreamError } from '../../lib/upstream.js';
import { KeySigner, isSafeClaimValue, tokenFromHeader } from './token.js';
import { Lru } from '../lru.js';
import { SecretBox } from './secret-box.js';
import type { SessionStore, StoredSession } from './store.js';
import type { PbCollection } from '../../replica/schema.js';

export interface SessionOptions {
  graceMs: number;
  /** 0: the PocketBase token's lifetime. */
  maxKeyTtlSeconds: number;
  pbRefreshBeforeSeconds: number;
}

export interface Authenticated {
  session: StoredSession;
  /** The key presented was the current one (false: retired, inside its grace window). */
  current: boolean;
  /** Superuser sessions: their own record and collection as PocketBase shows them now (see ownRecord). */
  ownRecord?(): Promise<OwnRecord | null>;
}

/** A superuser's record (every field but password and tokenKey) and its collection's definition. */
export interface OwnRecord {
  record: Record<string, unknown>;
  collection: PbCollection;
}

export type KeyCheck =
  | { status: 'none' }
  | { status: 'invalid' }
  | { status: 'ok'; auth: Authenticated };

export interface AuthPayload {
  token: string;
  record: { id: string; collectionId: string; collectionName: string };
}

function newId(): string {
  return randomBytes(15).toString('hex').slice(0, 24);
}

export class SessionManager {
  private readonly signer: KeySigner;
  private readonly box: SecretBox;
  private readonly refreshing = new Map<string, Promise<string | null>>();
  /** Sealed PocketBase token -> the token, so a busy session is not decrypted on every request. */
  private readonly opened = new Lru<string, string>(20_000);
  /**
   * When to refresh each PocketBase token: HAPTA_PB_REFRESH_BEFORE before its expiry, but no earlier than
   * half of what it had left when this process first saw it (and always in its last minute). A token whose whole lifetime is within the
   * bound (a superuser's day against the one-day default) would otherwise be refreshed on every use.
   */
  private readonly refreshAt = new Lru<string, number>(20_000);

  constructor(
    secret: Buffer,
    readonly store: SessionStore,
    private readonly upstream: Upstream,
    private readonly opts: SessionOptions,
    private readonly log: Logger,
  ) {
    this.signer = new KeySigner(secret);
    this.box = new SecretBox(secret);
  }

  /** A new session for a successful PocketBase authentication; returns the key for the client. */
  async create(auth: AuthPayload, refreshable = true): Promise<string> {
    const { record } = auth;
    if (!isSafeClaimValue(record.id) || !isSafeClaimValue(record.collectionId)) throw new Error('unexpected record id format');
    const now = Date.now();
    const pbTokenExp = tokenExpiry(auth.token) ?? now + 3600_000;
    const session: StoredSession = {
      sid: newId(), collectionId: record.collectionId, collectionName: record.collectionName, recordId: record.id,
      pbToken: this.box.seal(auth.token), pbTokenExp, refreshable, currentKid: newId(), keyExp: this.keyExpiry(now, pbTokenExp),
      retired: [], createdAt: now, revokedAt: null,
    };
    await this.store.create(session);
    return this.keyFor(session);
  }

  /** The session id a key of ours names (signature checked), or null. */
  sidOf(key: string): string | null {
    return this.signer.verify(key)?.sid ?? null;
  }

  private keyExpiry(now: number, pbTokenExp: number): number {
    return this.opts.maxKeyTtlSeconds > 0 ? Math.min(pbTokenExp, now + this.opts.maxKeyTtlSeconds * 1000) : pbTokenExp;
  }

  keyFor(s: StoredSession): string {
    return this.signer.sign({
      collectionId: s.collectionId, exp: Math.floor(s.keyExp / 1000), id: s.recordId, refreshable: s.refreshable,
      type: 'auth', sid: s.sid, kid: s.currentKid,
    });
  }

  /** Checks the key in an Authorization header: signature, expiry, revocation, rotation. */
  async check(header: string | undefined): Promise<KeyCheck> {
    const token = tokenFromHeader(header);
    if (!token) return { status: 'none' };
    const claims = this.signer.verify(token);
    if (!claims) return { status: 'invalid' };
    const s = await this.store.get(claims.sid);
    if (!s || s.revokedAt !== null || s.recordId !== claims.id || s.collectionId !== claims.collectionId) return { status: 'invalid' };
    if (claims.kid === s.currentKid) return { status: 'ok', auth: this.authenticated(s, true) };
    const retired = s.retired.find(([kid]) => kid === claims.kid);
    if (!retired) return { status: 'invalid' };
    if (Date.now() - retired[1] <= this.opts.graceMs) return { status: 'ok', auth: this.authenticated(s, false) };
    await this.store.revoke(s.sid, Date.now());
    this.log.warn('retired session key replayed after its grace window: session revoked', { collection: s.collectionName, record: s.recordId });
    return { status: 'invalid' };
  }

  private authenticated(s: StoredSession, current: boolean): Authenticated {
    const auth: Authenticated = { session: s, current };
    if (s.collectionName === '_superusers') auth.ownRecord = () => this.ownRecord(s);
    return auth;
  }

  /**
   * A superuser session's record and its collection's definition, read from PocketBase with the
   * session's own token (a superuser may read both): what PocketBase's `@request.auth` holds for it.
   * Null when PocketBase no longer accepts the token (it would treat the caller as anonymous; the session
   * ends); throws when PocketBase cannot be reached.
   */
  async ownRecord(s: StoredSession): Promise<OwnRecord | null> {
    const token = await this.pbToken(s);
    if (!token) return null;
    const coll = encodeURIComponent(s.collectionId);
    try {
      const [record, collection] = await Promise.all([
        this.upstream.json<Record<string, unknown>>('auth', 'GET', `/api/collections/${coll}/records/${encodeURIComponent(s.recordId)}`, { token }),
        this.upstream.json<PbCollection>('auth', 'GET', `/api/collections/${coll}`, { token }),
      ]);
      if (record?.id !== s.recordId || collection?.id !== s.collectionId || !Array.isArray(collection.fields)) return null;
      return { record, collection };
    } catch (err) {
      if (err instanceof UpstreamError && (err.status === 401 || err.status === 403 || err.status === 404)) {
        // PocketBase no longer accepts the token (token key reset, record deleted): the session ends, as
        // when a refresh is refused; this request is PocketBase's to answer.
        await this.store.revoke(s.sid, Date.now());
        this.log.info('session ended: PocketBase no longer accepts its token', { collection: s.collectionName, record: s.recordId });
        return null;
      }
      throw err;
    }
  }

  /** The PocketBase token behind a session, refreshed first when it is close to expiry. */
  async pbToken(s: StoredSession): Promise<string | null> {
    let token = this.opened.get(s.pbToken) ?? null;
    if (!token) {
      token = this.box.open(s.pbToken);
      if (token) this.opened.set(s.pbToken, token);
    }
    if (!token) return null;
    const now = Date.now();
    let at = this.refreshAt.get(s.pbToken);
    if (at === undefined) {
      at = s.pbTokenExp - Math.min(this.opts.pbRefreshBeforeSeconds * 1000, Math.max(60_000, (s.pbTokenExp - now) / 2));
      this.refreshAt.set(s.pbToken, at);
    }
    if (now < at) return token;
    if (!s.refreshable && s.pbTokenExp > now) return token;
    return this.refreshPb(s, token);
  }

  /**
   * Refreshes the PocketBase token behind a session (one at a time per session). PocketBase refusing
   * it (password changed, token key reset, record deleted) ends the session.
   */
  refreshPb(s: StoredSession, token?: string): Promise<string | null> {
    let p = this.refreshing.get(s.sid);
    if (!p) {
      p = this.doRefreshPb(s, token ?? this.box.open(s.pbToken)).finally(() => this.refreshing.delete(s.sid));
      this.refreshing.set(s.sid, p);
    }
    return p;
  }

  private async doRefreshPb(s: StoredSession, token: string | null): Promise<string | null> {
    if (!token) return null;
    try {
      const res = await this.upstream.json<{ token: string }>('auth', 'POST', `/api/collections/${encodeURIComponent(s.collectionId)}/auth-refresh`, { token });
      await this.store.setPbToken(s.sid, this.box.seal(res.token), tokenExpiry(res.token) ?? Date.now() + 3600_000);
      return res.token;
    } catch (err) {
      if (err instanceof UpstreamError && (err.status === 401 || err.status === 403 || err.status === 404)) {
        await this.store.revoke(s.sid, Date.now());
        this.log.info('session ended: PocketBase no longer accepts its token', { collection: s.collectionName, record: s.recordId });
        return null;
      }
      // PocketBase unreachable: keep the session, use the token we have while it lasts.
      return s.pbTokenExp > Date.now() ? token : null;
    }
  }

  /**
   * auth-refresh: PocketBase's new token replaces the old one and the presented key is retired. A key
   * still inside its grace window gets the session's current key (no second rotation), so parallel
   * refreshes from one client agree.
   */
  async rotate(auth: Authenticated, pbResponse: AuthPayload): Promise<string | null> {
    const s = auth.session;
    if (!auth.current) {
      const latest = await this.store.get(s.sid);
      return latest && latest.revokedAt === null ? this.keyFor(latest) : null;
    }
    const now = Date.now();
    const pbTokenExp = tokenExpiry(pbResponse.token) ?? now + 3600_000;
    const rotated = await this.store.rotate({
      sid: s.sid, expectedKid: s.currentKid, newKid: newId(), keyExp: this.keyExpiry(now, pbTokenExp),
      pbToken: this.box.seal(pbResponse.token), pbTokenExp, now,
    });
    if (rotated) return this.keyFor(rotated);
    // Another refresh of the same key won the race: hand out its result.
    const latest = await this.store.get(s.sid);
    return latest && latest.revokedAt === null ? this.keyFor(latest) : null;
  }

  async revoke(sid: string): Promise<boolean> {
    return this.store.revoke(sid, Date.now());
  }

  async revokeRecord(collectionId: string, recordId: string): Promise<number> {
    return this.store.revokeRecord(collectionId, recordId, Date.now());
  }

  /** File tokens: the client gets a sidecar handle; the PocketBase file token stays here. */
  async wrapFileToken(pbFileToken: string): Promise<string> {
    const handle = `hft_${randomBytes(24).toString('base64url').replace(/[-_]/g, 'x')}`;
    const exp = tokenExpiry(pbFileToken) ?? Date.now() + 120_000;
    await this.store.putTemp(`file:${handle}`, this.box.seal(pbFileToken), Math.max(1000, exp - Date.now()));
    return handle;
  }

  async unwrapFileToken(handle: string): Promise<string | null> {
    if (!/^hft_[A-Za-z0-9]{20,64}$/.test(handle)) return null;
    const sealed = await this.store.getTemp(`file:${handle}`);
    return sealed ? this.box.open(sealed) : null;
  }
}
