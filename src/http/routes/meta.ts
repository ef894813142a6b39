/** Liveness, readiness and metrics. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../services.js';

/** Probes are never throttled (@fastify/rate-limit skips routes configured so). */
const NO_RATE_LIMIT = { rateLimit: false } as const;

const Ready = z.object({ status: z.enum(['ready', 'draining', 'under_pressure']), backend: z.string(), sessions: z.number() });

export const metaRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  app.get('/healthz', { config: NO_RATE_LIMIT, schema: { summary: 'Liveness: the process answers', tags: ['meta'], response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const }));

  app.get('/readyz', { config: NO_RATE_LIMIT, schema: { summary: 'Readiness: 503 while draining or under pressure', tags: ['meta'], response: { 200: Ready, 503: Ready } } },
    async (_req, reply) => {
      const status = S.state.draining ? 'draining' : app.isUnderPressure() ? 'under_pressure' : 'ready';
      if (status !== 'ready') reply.header('Retry-After', '1');
      return reply.code(status === 'ready' ? 200 : 503).send({ status, backend: S.store.backend.name, sessions: S.store.size });
    });

  app.get('/metrics', { config: NO_RATE_LIMIT, schema: { summary: 'Prometheus metrics', tags: ['meta'] } }, async (_req, reply) => {
    return reply.type(S.metrics.registry.contentType).send(await S.metrics.registry.metrics());
  });
};
