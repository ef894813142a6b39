/**
 * Idempotency-Key on the POSTs that change state: a retry with the same key and body replays the
 * stored answer; the same key with another body is 422; a key whose first request is still
 * running is 409. Keys are scoped by the caller's verified credential (a session's token, or an API
 * key), so one client can never replay another's answer; a request with no verified credential
 * (creating a session on a server without API keys) is run as if it had no key, since clients
 * behind one address are not one client.
 *
 * What is kept is bounded by entries and by the bytes of the stored answers (the oldest go first),
 * and a session's records go with the session: its token no longer verifies, so they could never
 * be replayed, and 1,000 deleted sessions' answers held 75 MB (issue 15, finding 10).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { ApiError } from '../../errors.js';
import { sendProblem } from '../problem.js';
import { verifiedCredential } from '../auth.js';
import { isReplay } from '../replay.js';
import type { SessionStore } from '../../session/store.js';
import { Gauge, type Registry } from 'prom-client';

interface Entry {
  /** The verified credential the key is scoped to. */
  who: string;
  bodyHash: string;
  done: boolean;
  status?: number;
  type?: string;
  payload?: string | Buffer;
}

const ROUTES = [/^\/v1\/sessions$/, /^\/v1\/sessions\/[^/]+\/(ops|backward|grad)$/, /^\/v1\/sessions\/[^/]+\/arrays\/[^/]+\/backward$/];

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

const sizeOf = (payload: string | Buffer | undefined) => (payload === undefined ? 0 : payload.length);

export interface IdempotencyLimits {
  entries: number;
  /** Bytes of stored answers, all together. */
  bytes: number;
}

/** A session's stored answer, as a journal checkpoint keeps it. */
export interface KeptAnswer { key: string; body_hash: string; status: number; type: string; payload: string; binary: boolean }

/** What the state directory needs of the records: a session's answers out and back in. */
export interface IdempotencyRecords {
  of(sid: string): KeptAnswer[];
  restore(sid: string, answers: KeptAnswer[]): void;
}

export function registerIdempotency(app: FastifyInstance, limits: IdempotencyLimits, store: SessionStore, apiKeys: readonly string[], registry: Registry): IdempotencyRecords {
  // In insertion order, so the first is the oldest.
  const entries = new Map<string, Entry>();
  const byWho = new Map<string, Set<string>>();
  let storedBytes = 0;
  new Gauge({ name: 'gradserve_idempotency_entries', help: 'Idempotency-Key records kept.', registers: [registry], collect() { this.set(entries.size); } });
  new Gauge({ name: 'gradserve_idempotency_bytes', help: 'Bytes of the answers kept for Idempotency-Key replay.', registers: [registry], collect() { this.set(storedBytes); } });

  const forget = (key: string) => {
    const e = entries.get(key);
    if (!e) return;
    entries.delete(key);
    storedBytes -= sizeOf(e.payload);
    const keys = byWho.get(e.who);
    keys?.delete(key);
    if (keys?.size === 0) byWho.delete(e.who);
  };
  const forgetSession = (sid: string) => {
    for (const key of [...(byWho.get(`session:${sid}`) ?? [])]) forget(key);
  };
  store.onDeleted(forgetSession);
  // A session another replica took over: taken back later, its journal brings its records again.
  store.onReleased(forgetSession);

  const keep = (key: string, who: string, e: Entry) => {
    if (entries.size >= limits.entries) forget(entries.keys().next().value!);
    entries.set(key, e);
    let keys = byWho.get(who);
    if (!keys) byWho.set(who, (keys = new Set()));
    keys.add(key);
  };

  const keyOf = (req: FastifyRequest): { key: string; who: string } | null => {
    const k = req.headers['idempotency-key'];
    if (req.method !== 'POST' || typeof k !== 'string' || !k) return null;
    const path = req.url.split('?')[0];
    if (!ROUTES.some((r) => r.test(path))) return null;
    const who = verifiedCredential(store, apiKeys, req);
    if (who === null) return null;
    return { key: sha(`${sha(who)}|${path}|${k}`), who };
  };

  // Callback-style hooks: almost no request carries a key, and an async hook would cost every
  // request a promise. A hook that answers (a refusal or a replay) does not call done.
  app.addHook('preHandler', (req, reply, done) => {
    const scoped = keyOf(req);
    if (!scoped) return done();
    const { key, who } = scoped;
    if ((req.headers['idempotency-key'] as string).length > 255) {
      sendProblem(reply, new ApiError('invalid_request', 'Idempotency-Key is longer than 255 characters'), req);
      return;
    }
    const bodyHash = sha(JSON.stringify(req.body ?? null));
    // A request the journal replays runs again, whatever a restored record holds: the state is
    // rebuilt from what ran, and its answer is stored anew.
    if (isReplay(req)) forget(key);
    const e = entries.get(key);
    if (e) {
      if (e.bodyHash !== bodyHash) sendProblem(reply, new ApiError('idempotency_mismatch', 'this Idempotency-Key was used with a different body; use a new key for a new request'), req);
      else if (!e.done) sendProblem(reply, new ApiError('idempotency_conflict', 'a request with this Idempotency-Key is still running; retry after it completes'), req);
      else reply.code(e.status!).header('Idempotent-Replayed', 'true').type(e.type ?? 'application/json').send(e.payload);
      return;
    }
    keep(key, who, { who, bodyHash, done: false });
    (req as FastifyRequest & { idemKey?: string }).idemKey = key;
    done();
  });

  app.addHook('onSend', (req, reply, payload, done) => {
    const key = (req as FastifyRequest & { idemKey?: string }).idemKey;
    if (!key) return done(null, payload);
    const e = entries.get(key);
    // Only definite answers are stored: a 5xx, or a refusal by a quota or rate limit (429), may
    // succeed when retried later.
    // An answer larger than the whole budget is not kept: a retry runs the request again.
    const size = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload.length : Infinity;
    if (e && reply.statusCode < 500 && reply.statusCode !== 429 && size <= limits.bytes) {
      // This entry's bytes are not counted yet, so the others hold enough to make room.
      for (const k of entries.keys()) {
        if (storedBytes + size <= limits.bytes) break;
        if (k !== key) forget(k);
      }
      Object.assign(e, { done: true, status: reply.statusCode, type: String(reply.getHeader('content-type') ?? ''), payload });
      storedBytes += size;
    } else {
      forget(key);
    }
    done(null, payload);
  });

  return {
    of(sid) {
      const out: KeptAnswer[] = [];
      for (const key of byWho.get(`session:${sid}`) ?? []) {
        const e = entries.get(key)!;
        if (!e.done) continue;
        const binary = Buffer.isBuffer(e.payload);
        out.push({ key, body_hash: e.bodyHash, status: e.status!, type: e.type ?? '', binary, payload: binary ? (e.payload as Buffer).toString('base64') : String(e.payload ?? '') });
      }
      return out;
    },
    restore(sid, answers) {
      const who = `session:${sid}`;
      for (const a of answers) {
        const payload = a.binary ? Buffer.from(a.payload, 'base64') : a.payload;
        const size = sizeOf(payload);
        if (size > limits.bytes) continue;
        forget(a.key);
        // Room is made as for a live answer: the oldest go first.
        for (const k of entries.keys()) {
          if (storedBytes + size <= limits.bytes) break;
          forget(k);
        }
        keep(a.key, who, { who, bodyHash: a.body_hash, done: true, status: a.status, type: a.type, payload });
        storedBytes += sizeOf(payload);
      }
    },
  };
}
