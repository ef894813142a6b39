/** Liveness, readiness and metrics. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../app.js';

export const metaRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['meta'], response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const }));

  app.get('/readyz', { schema: { summary: 'Readiness: 503 while draining', tags: ['meta'], response: { 200: z.object({ status: z.string(), backend: z.string() }), 503: z.object({ status: z.string(), backend: z.string() }) } } },
    async (_req, reply) => {
      const ready = !S.state.draining;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'draining', backend: S.store.backend.name });
    });

  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['meta'] } }, async (_req, reply) => {
    let nodes = 0;
    for (const s of S.store.all()) nodes += s.liveNodeCount();
    const lines = [
      '# HELP gradserve_sessions Live sessions.', '# TYPE gradserve_sessions gauge', `gradserve_sessions ${S.store.size}`,
      '# HELP gradserve_bytes Native bytes held by all sessions.', '# TYPE gradserve_bytes gauge', `gradserve_bytes ${S.store.memory.bytes}`,
      '# HELP gradserve_tape_nodes Live tape nodes.', '# TYPE gradserve_tape_nodes gauge', `gradserve_tape_nodes ${nodes}`,
    ];
    return reply.type('text/plain; version=0.0.4').send(lines.join('\n') + '\n');
  });
};
