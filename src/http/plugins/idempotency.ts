/**
 * Idempotency-Key on the POSTs that change state: a retry with the same key and body replays the
 * stored answer; the same key with another body is 422; a key whose first request is still
 * running is 409. Keys are scoped by the caller's verified credential (a session's token, or an API
 * key), so one client can never replay another's answer; a request with no verified credential
 * (creating a session on a server without API keys) is run as if it had no key, since clients
 * behind one address are not one client.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { ApiError } from '../../errors.js';
import { sendProblem } from '../problem.js';
import { verifiedCredential } from '../auth.js';
import type { SessionStore } from '../../session/store.js';

interface Entry {
  bodyHash: string;
  done: boolean;
  status?: number;
  type?: string;
  payload?: string | Buffer;
}

const ROUTES = [/^\/v1\/sessions$/, /^\/v1\/sessions\/[^/]+\/(ops|backward|grad)$/, /^\/v1\/sessions\/[^/]+\/arrays\/[^/]+\/backward$/];

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

export function registerIdempotency(app: FastifyInstance, maxEntries: number, store: SessionStore, apiKeys: readonly string[]): void {
  const entries = new Map<string, Entry>();
  const keyOf = (req: FastifyRequest): string | null => {
    const k = req.headers['idempotency-key'];
    if (req.method !== 'POST' || typeof k !== 'string' || !k) return null;
    const path = req.url.split('?')[0];
    if (!ROUTES.some((r) => r.test(path))) return null;
    const who = verifiedCredential(store, apiKeys, req);
    if (who === null) return null;
    return sha(`${sha(who)}|${path}|${k}`);
  };

  // Callback-style hooks: almost no request carries a key, and an async hook would cost every
  // request a promise. A hook that answers (a refusal or a replay) does not call done.
  app.addHook('preHandler', (req, reply, done) => {
    const key = keyOf(req);
    if (!key) return done();
    if ((req.headers['idempotency-key'] as string).length > 255) {
      sendProblem(reply, new ApiError('invalid_request', 'Idempotency-Key is longer than 255 characters'), req);
      return;
    }
    const bodyHash = sha(JSON.stringify(req.body ?? null));
    const e = entries.get(key);
    if (e) {
      if (e.bodyHash !== bodyHash) sendProblem(reply, new ApiError('idempotency_mismatch', 'this Idempotency-Key was used with a different body; use a new key for a new request'), req);
      else if (!e.done) sendProblem(reply, new ApiError('idempotency_conflict', 'a request with this Idempotency-Key is still running; retry after it completes'), req);
      else reply.code(e.status!).header('Idempotent-Replayed', 'true').type(e.type ?? 'application/json').send(e.payload);
      return;
    }
    if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
    entries.set(key, { bodyHash, done: false });
    (req as FastifyRequest & { idemKey?: string }).idemKey = key;
    done();
  });

  app.addHook('onSend', (req, reply, payload, done) => {
    const key = (req as FastifyRequest & { idemKey?: string }).idemKey;
    if (!key) return done(null, payload);
    const e = entries.get(key);
    // Only definite answers are stored: a 5xx, or a refusal by a quota or rate limit (429), may
    // succeed when retried later.
    if (e && reply.statusCode < 500 && reply.statusCode !== 429 && (typeof payload === 'string' || Buffer.isBuffer(payload))) {
      Object.assign(e, { done: true, status: reply.statusCode, type: String(reply.getHeader('content-type') ?? ''), payload });
    } else {
      entries.delete(key);
    }
    done(null, payload);
  });
}
