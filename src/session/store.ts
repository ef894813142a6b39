/**
 * The live sessions of the process: creation with quotas, lookup with constant-time token checks,
 * deletion, and culling of idle sessions on a timer.
 */
import { hash as digest, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Backend, DType } from '../engine/backend.js';
import { Session, newOpStats, newSessionId, type OpStats } from './session.js';
import { ProcessMemory } from './memory.js';
import type { Limits } from '../config.js';
import { fail } from '../errors.js';

export interface CreateSessionInput {
  ttl_seconds?: number;
  seed?: number;
  default_dtype?: DType;
  /** An id minted upstream (a load balancer's request id), when it is well-formed and unused. */
  id?: string;
  apiKey: string | null;
  /** Replaying a journal: the hash of the token the session was created with (no token is made). */
  tokenHash?: Buffer;
}

/** What a session keeps of its token: the SHA-256 of it. */
export const hashToken = (token: string): Buffer => digest('sha256', token, 'buffer');
const hash = hashToken;
/** How many recently verified tokens the store remembers the hashes of (then it starts over). */
const VERIFIED_TOKENS = 4096;

/** What the store remembers of a session that is gone, to say why to the holder of its token. */
interface Gone {
  reason: 'expired' | 'deleted';
  /** Milliseconds since the epoch: a number costs less heap than a Date. */
  at: number;
  ttlSeconds: number;
  /** The token's hash as base64url text, which costs less heap than a Buffer's three objects. */
  tokenHash: string;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly gone = new Map<string, Gone>();
  readonly memory: ProcessMemory;
  /** Process-wide counters for metrics. */
  readonly stats: OpStats = newOpStats();
  private timer: NodeJS.Timeout | null = null;
  /** Called with a session's id once it is deleted or expired: state kept for it elsewhere goes too. */
  private readonly deletedListeners: ((id: string) => void)[] = [];
  private readonly releasedListeners: ((id: string) => void)[] = [];
  /**
   * Tokens that matched their session lately, with their hashes: a request's token is checked two
   * or three times (its rate-limit bucket, its route, an idempotency key), each a SHA-256 through
   * OpenSSL's digest lookup. Only matching tokens are kept, so made-up ones cannot fill it.
   */
  private readonly verified = new Map<string, Buffer>();

  constructor(readonly backend: Backend, readonly limits: Limits) {
    this.memory = new ProcessMemory(limits.maxTotalBytes, limits.maxTotalArrays);
  }

  get size(): number {
    return this.sessions.size;
  }

  create(input: CreateSessionInput): { session: Session; token: string } {
    const l = this.limits;
    if (this.sessions.size >= l.maxSessions) {
      throw fail('quota_exceeded', `the server holds ${this.sessions.size} sessions, its limit (GRADSERVE_MAX_SESSIONS); delete idle sessions or try later`, { limit: 'sessions', value: this.sessions.size });
    }
    if (input.apiKey !== null) {
      let n = 0;
      for (const s of this.sessions.values()) if (s.apiKey === input.apiKey) n++;
      if (n >= l.maxSessionsPerKey) {
        throw fail('quota_exceeded', `this API key holds ${n} sessions, its limit (GRADSERVE_MAX_SESSIONS_PER_KEY); delete some first`, { limit: 'sessions_per_key', value: n });
      }
    }
    const ttl = input.ttl_seconds ?? l.defaultTtlSeconds;
    if (ttl > l.maxTtlSeconds) {
      throw fail('invalid_request', `\`ttl_seconds\` is ${ttl}; the limit is ${l.maxTtlSeconds}`, { arg: 'ttl_seconds' });
    }
    const id = input.id && !this.sessions.has(input.id) ? input.id : newSessionId();
    const token = input.tokenHash ? '' : randomBytes(32).toString('base64url');
    const seed = input.seed ?? randomBytes(4).readUInt32LE(0);
    const session = new Session(
      { id, tokenHash: input.tokenHash ?? hash(token), ttlSeconds: ttl, seed, defaultDtype: input.default_dtype ?? 'float32', apiKey: input.apiKey },
      this.backend, this.memory, l, this.stats,
    );
    session.onRan = this.onRan;
    this.sessions.set(id, session);
    return { session, token };
  }

  /** For the state directory's journal: called in each session's queue after a tagged run. */
  onRan: ((tag: unknown) => void) | null = null;

  /** The live session `id`, unauthorized: for replaying a journal only. */
  get(id: string): Session | undefined {
    const s = this.sessions.get(id);
    return s && !s.closed ? s : undefined;
  }

  /** True when `token` is the token of the live session `id` (for bucketing, before the route runs). */
  holds(id: string, token: string): boolean {
    const s = this.sessions.get(id);
    return !!s && !s.closed && this.matches(token, s.tokenHash);
  }

  private matches(token: string, tokenHash: Buffer): boolean {
    const d = this.verified.get(token) ?? hash(token);
    if (!timingSafeEqual(d, tokenHash)) return false;
    if (this.verified.size >= VERIFIED_TOKENS) this.verified.clear();
    this.verified.set(token, d);
    return true;
  }

  /**
   * Sessions being rebuilt from another replica's journal (a shared state directory): only the
   * replayed requests that rebuild them may reach them.
   */
  readonly rebuilding = new Set<string>();

  /** The session for `id` if `token` is its token: 404 for an unknown id, 401 for a bad token. */
  authorize(id: string, token: string | null): Session {
    if (this.rebuilding.has(id)) throw fail('session_moved', `session \`${id}\` is being taken over by this replica at this moment: send the request again`, { retry_after: 1 });
    const s = this.sessions.get(id);
    if (!s || s.closed) throw this.missing(id, token);
    if (token === null) throw fail('unauthorized', 'this request needs `Authorization: Bearer <token>` with the token answered when the session was created');
    if (!this.matches(token, s.tokenHash)) throw fail('unauthorized', 'the bearer token does not match this session');
    return s;
  }

  /**
   * The 404 for a session that is not here: why it is gone for the holder of its token (ids are
   * not secret, so nothing is said to anyone else), and what to do.
   */
  private missing(id: string, token: string | null): Error {
    const g = this.gone.get(id);
    if (!g || token === null || !timingSafeEqual(hash(token), Buffer.from(g.tokenHash, 'base64url'))) {
      return fail('not_found', `there is no session \`${id}\` (it may have expired or been deleted); create one with POST /v1/sessions`);
    }
    const how = g.reason === 'expired'
      ? `expired at ${new Date(g.at).toISOString()}, ${g.ttlSeconds} s after its last request (its ttl_seconds); create a new one with POST /v1/sessions, with a larger ttl_seconds if it idles that long`
      : `was deleted at ${new Date(g.at).toISOString()}; create a new one with POST /v1/sessions`;
    return fail('not_found', `session \`${id}\` ${how}`, { session_state: g.reason });
  }

  private remember(s: Session, reason: Gone['reason']): void {
    if (this.gone.has(s.id) || this.limits.rememberedSessions <= 0) return;
    if (this.gone.size >= this.limits.rememberedSessions) this.gone.delete(this.gone.keys().next().value!);
    this.gone.set(s.id, { reason, at: Date.now(), ttlSeconds: s.ttlMs / 1000, tokenHash: s.tokenHash.toString('base64url') });
  }

  delete(s: Session): void {
    this.remember(s, 'deleted');
    this.sessions.delete(s.id);
    s.close();
    for (const f of this.deletedListeners) f(s.id);
  }

  /**
   * Lets go of a session another replica has taken over: it goes from memory, and nothing is told
   * or remembered, since it lives on (a later request may bring it back here).
   */
  release(s: Session): void {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    s.close();
    for (const f of this.releasedListeners) f(s.id);
  }

  /** Called with a session's id once it is let go of (release): state kept for it here goes too. */
  onReleased(f: (id: string) => void): void {
    this.releasedListeners.push(f);
  }

  onDeleted(f: (id: string) => void): void {
    this.deletedListeners.push(f);
  }

  /** Deletes sessions whose expiry has passed (between their requests). */
  cull(now = Date.now()): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.expiresAt.getTime() <= now) {
        this.remember(s, 'expired');
        void s.run(() => undefined).catch(() => undefined).finally(() => this.delete(s));
        this.sessions.delete(s.id);
        n++;
      }
    }
    return n;
  }

  /** Culls every intervalMs; `idle` is called with it, for other caches to trim themselves too. */
  startCulling(intervalMs: number, idle?: () => void): void {
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => {
      this.cull();
      // A whole interval without a large allocation: the cached buffers go back to the system.
      this.backend.cache?.trim(true);
      idle?.();
    }, intervalMs);
    this.timer.unref();
  }

  /** Shutdown: every session goes, without telling the listeners (a journal must not record their end). */
  closeAll(): void {
    if (this.timer) clearInterval(this.timer);
    this.deletedListeners.length = 0;
    for (const s of [...this.sessions.values()]) this.delete(s);
  }

  *all(): IterableIterator<Session> {
    yield* this.sessions.values();
  }
}
