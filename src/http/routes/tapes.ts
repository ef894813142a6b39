/** The recorded tapes of a session: listed, read as JSON, DOT, SVG or PNG, deleted. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SessionParams, TapeList, TapeParams, TapeQuery } from '../schemas/api.js';
import { sessionOf } from '../auth.js';
import { problems } from '../responses.js';
import { deleteTape, getTape, listTapes } from '../../session/service.js';
import { dotToSvg } from '../../autograd/render.js';
import { svgToPng } from '../../autograd/raster.js';
import type { Services } from '../services.js';

const errors = problems(401, 404);

export const tapeRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  app.get('/v1/sessions/:sid/tapes', {
    schema: { summary: 'The live tapes of the session', tags: ['tapes'], params: SessionParams, response: { 200: TapeList, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => ({ tapes: listTapes(s) }));
  });

  app.get('/v1/sessions/:sid/tapes/:tid', {
    schema: { summary: 'A tape\'s nodes as JSON, Graphviz DOT with ?format=dot, or a picture with ?format=svg or ?format=png', tags: ['tapes'], params: TapeParams, querystring: TapeQuery, response: { 200: z.any(), ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    const format = req.query.format ?? 'json';
    const body = await s.run(() => getTape(s, req.params.tid, format === 'json' ? 'json' : 'dot', req.query.labels));
    if (format === 'json') return body;
    if (format === 'dot') return reply.type('text/vnd.graphviz').send(body);
    // Layout runs outside the session's queue: it reads only the DOT text, not the session.
    const svg = await dotToSvg(body as string);
    if (format === 'svg') return reply.type('image/svg+xml').send(svg);
    return reply.type('image/png').send(Buffer.from(await svgToPng(svg)));
  });

  app.delete('/v1/sessions/:sid/tapes/:tid', {
    schema: { summary: 'Free a tape\'s saved values', tags: ['tapes'], params: TapeParams, response: { 204: z.null(), ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    await s.run(() => deleteTape(s, req.params.tid));
    return reply.code(204).send(null);
  });
};
