/** POST /v1/sessions, GET and DELETE /v1/sessions/{sid}. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { CreateSession, Seed, SessionCreated, SessionInfo, SessionParams } from '../schemas/api.js';
import { sessionOf, matchApiKey } from '../auth.js';
import { problems } from '../responses.js';
import { createdAnswer, sessionInfo } from '../../session/service.js';
import type { Services } from '../services.js';
import { fail } from '../../errors.js';
import { z } from 'zod';

const errors = problems(401, 404, 413, 415);


export const sessionRoutes = (svc: Services): FastifyPluginAsyncZod => async (app) => {
  app.post('/v1/sessions', {
    schema: {
      summary: 'Create a session',
      tags: ['sessions'],
      body: CreateSession.nullish(),
      response: { 201: SessionCreated, ...errors },
    },
  }, async (req, reply) => {
    let apiKey: string | null = null;
    if (svc.config.apiKeys.length) {
      apiKey = matchApiKey(svc.config.apiKeys, req.headers['x-api-key']);
      if (!apiKey) throw fail('unauthorized', 'creating a session needs a valid API key in the X-API-Key header');
    }
    const minted = req.headers['x-gradserve-session-id'];
    const id = typeof minted === 'string' && /^[A-Za-z0-9_-]{8,64}$/.test(minted) ? minted : undefined;
    const { session, token } = svc.store.create({ ...(req.body ?? {}), id, apiKey });
    svc.durable?.created(req, session);
    reply.code(201).header('Location', `/v1/sessions/${session.id}`);
    return createdAnswer(session, token);
  });

  app.get('/v1/sessions/:sid', {
    schema: { summary: 'Describe a session', tags: ['sessions'], params: SessionParams, response: { 200: SessionInfo, ...errors } },
  }, async (req) => {
    const s = sessionOf(svc.store, req);
    return s.run(() => sessionInfo(s));
  });

  app.post('/v1/sessions/:sid/random/seed', {
    schema: { summary: 'Restart the session\'s random stream (mx.random.seed)', tags: ['sessions'], params: SessionParams, body: Seed, response: { 200: SessionInfo, ...errors } },
  }, async (req) => {
    const s = sessionOf(svc.store, req);
    return s.run(() => {
      s.reseed(req.body.seed);
      return sessionInfo(s);
    });
  });

  app.delete('/v1/sessions/:sid', {
    schema: { summary: 'Delete a session and free its memory', tags: ['sessions'], params: SessionParams, response: { 204: z.null(), ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(svc.store, req);
    await s.run(() => undefined);
    svc.store.delete(s);
    return reply.code(204).send(null);
  });
};
