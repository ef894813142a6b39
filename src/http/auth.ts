/** Resolving `/v1/sessions/{sid}` requests to their session, with the bearer token checked. */
import type { IncomingHttpHeaders } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { SessionStore } from '../session/store.js';
import type { Session } from '../session/session.js';
import { fail } from '../errors.js';
import { isReplay } from './replay.js';

/** Requests that can change a session: the state directory journals them. */
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function bearer(headers: IncomingHttpHeaders): string | null {
  const h = headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : '';
}

/** The configured API key equal to `given` (compared in constant time), or null. */
export function matchApiKey(keys: readonly string[], given: unknown): string | null {
  if (typeof given !== 'string' || !given) return null;
  const g = Buffer.from(given);
  for (const k of keys) {
    const kb = Buffer.from(k);
    if (kb.length === g.length && timingSafeEqual(kb, g)) return k;
  }
  return null;
}

/**
 * The caller's credential once verified, as a stable string: the session whose token the request
 * carries (on a session's route), or the configured API key it carries; null for anything else.
 * Buckets and idempotency records are keyed by it, never by what a client merely claims.
 */
export function verifiedCredential(store: SessionStore, apiKeys: readonly string[], req: { params?: unknown; headers: IncomingHttpHeaders }): string | null {
  const sid = (req.params as { sid?: unknown } | undefined)?.sid;
  // A replayed request stands for the one its session's holder made.
  if (typeof sid === 'string' && isReplay(req)) return `session:${sid}`;
  const token = typeof sid === 'string' ? bearer(req.headers) : null;
  if (token && store.holds(sid as string, token)) return `session:${sid as string}`;
  const key = apiKeys.length ? matchApiKey(apiKeys, req.headers['x-api-key']) : null;
  return key === null ? null : `key:${key}`;
}

/**
 * Where a shared state directory's hook notes the session a request found as it began: if that
 * session was let go of meanwhile (another replica took it over), the request must not run on
 * the one rebuilt in its place, since its answer is refused as coming from a lapsed tenure.
 */
export const SEEN_SESSION = Symbol('seen session');

export function sessionOf(store: SessionStore, req: { params: unknown; headers: IncomingHttpHeaders; method?: string; [SEEN_SESSION]?: Session }): Session {
  const sid = (req.params as { sid: string }).sid;
  let s: Session;
  if (isReplay(req)) {
    const found = store.get(sid);
    if (!found) throw fail('not_found', `there is no session \`${sid}\``);
    s = found;
  } else {
    s = store.authorize(sid, bearer(req.headers));
    const seen = req[SEEN_SESSION];
    if (seen && seen !== s) throw fail('session_moved', `session \`${sid}\` moved between replicas while this request waited: send it again`, { retry_after: 1 });
  }
  // The handler runs the session next, in this turn: that run is this request's. A handler that
  // fails before it runs leaves no tag for another run to take: it lapses at the turn's end.
  const tag = req.method && MUTATING.has(req.method) ? req : undefined;
  s.runTag = tag;
  if (tag) queueMicrotask(() => { if (s.runTag === tag) s.runTag = undefined; });
  return s;
}
