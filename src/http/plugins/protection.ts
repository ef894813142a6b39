/**
 * Back-pressure and rate limits: @fastify/rate-limit per verified credential (a session's token,
 * or a configured API key) and per client address otherwise,
 * and @fastify/under-pressure on event-loop lag and heap, both answering problem+json with
 * Retry-After. Health and readiness probes are never throttled.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isReplay } from '../replay.js';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { hash } from 'node:crypto';
import type { Config } from '../../config.js';
import type { SessionStore } from '../../session/store.js';
import { verifiedCredential } from '../auth.js';
import { ApiError } from '../../errors.js';
import { sendProblem } from '../problem.js';

const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * A bucket per credential only once it is verified: otherwise every made-up token or key (or
 * spelling of the header) would get a fresh bucket of its own.
 */
function clientKey(store: SessionStore, apiKeys: readonly string[]) {
  return (req: FastifyRequest): string => {
    const who = verifiedCredential(store, apiKeys, req);
    // A session's id is no secret (it is in the URL); an API key is, so its bucket is a hash of it.
    if (who === null) return `ip:${req.ip}`;
    return who.startsWith('session:') ? who : hash('sha256', who, 'hex').slice(0, 24);
  };
}

export async function registerProtection(app: FastifyInstance, config: Config, store: SessionStore): Promise<void> {
  const p = config.protection;
  if (p.rateLimitMax > 0) {
    await app.register(rateLimit, {
      max: p.rateLimitMax,
      timeWindow: p.rateLimitWindowMs,
      keyGenerator: clientKey(store, config.apiKeys),
      // A journal's replay at start was counted when it first came.
      allowList: (req) => isReplay(req),
      errorResponseBuilder: (_req, ctx) => new ApiError('rate_limited', `more than ${ctx.max} requests in ${Math.round(p.rateLimitWindowMs / 1000)} s from this client; retry after ${Math.ceil(ctx.ttl / 1000)} s`, { limit: 'rate', value: ctx.max, retry_after: Math.ceil(ctx.ttl / 1000) }),
    });
  }
  await app.register(underPressure, {
    maxEventLoopDelay: p.maxEventLoopDelayMs,
    maxHeapUsedBytes: p.maxHeapBytes,
    retryAfter: 1,
    exposeStatusRoute: false,
    pressureHandler: (req, reply, type, value) => {
      if (PROBES.has(req.url.split('?')[0]) || isReplay(req)) return;
      sendProblem(reply, new ApiError('unavailable', `the server is under pressure (${type}: ${Math.round(Number(value))}); retry shortly`, { retry_after: 1 }), req);
    },
  });
}
