/** Named snapshots of a session: taken, listed, deleted, restored, and forked into a new session. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ForkBody, ImportAnswer, RestoreBody, SessionCreated, SessionParams, SnapshotBody, SnapshotInfo, SnapshotList, SnapshotParams } from '../schemas/api.js';
import { sessionOf } from '../auth.js';
import { problems } from '../responses.js';
import { restoreSnapshot, snapshotInfo, snapshotOf, takeSnapshot } from '../../session/snapshots.js';
import { createdAnswer, describe } from '../../session/service.js';
import type { Services } from '../services.js';

const errors = problems(401, 404, 409, 413, 429);

export const snapshotRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  app.post('/v1/sessions/:sid/snapshots', {
    schema: { summary: 'Take a named snapshot: the arrays, gradient buffers and their grad_req, the definitions and the random stream', tags: ['snapshots'], params: SessionParams, body: SnapshotBody, response: { 201: SnapshotInfo, ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    // run resolves the Deferred (its type does not say so), after the arrays' kernels are done.
    const info = (await s.run(() => takeSnapshot(s, req.body.name))) as unknown as { name: string };
    reply.code(201).header('Location', `/v1/sessions/${s.id}/snapshots/${info.name}`);
    return info as never;
  });

  app.get('/v1/sessions/:sid/snapshots', {
    schema: { summary: "The session's snapshots, oldest first", tags: ['snapshots'], params: SessionParams, response: { 200: SnapshotList, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => ({ snapshots: [...s.snapshots.values()].map(snapshotInfo) }));
  });

  app.delete('/v1/sessions/:sid/snapshots/:name', {
    schema: { summary: 'Delete a snapshot', tags: ['snapshots'], params: SnapshotParams, response: { 204: z.null(), ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    await s.run(() => { snapshotOf(s, req.params.name); s.snapshots.delete(req.params.name); });
    return reply.code(204).send(null);
  });

  app.post('/v1/sessions/:sid/restore', {
    schema: { summary: "Put a snapshot's state back: every binding, gradient buffer, definition and the random stream, all at once", tags: ['snapshots'], params: SessionParams, body: RestoreBody, response: { 200: ImportAnswer, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => {
      const p = snapshotOf(s, req.body.snapshot);
      restoreSnapshot(s, p);
      return { arrays: [...s.names].map(([name, a]) => describe(s, name, a)), metadata: {} };
    });
  });

  app.post('/v1/sessions/:sid/snapshots/:name/fork', {
    schema: { summary: "A new session holding a snapshot's state (the source's token authorizes; the answer has the new session's)", tags: ['snapshots'], params: SnapshotParams, body: ForkBody.nullish(), response: { 201: SessionCreated, ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    // The fork is not a change to `s`: journaled as a fork of its own, inside `s`'s queue.
    s.runTag = undefined;
    const { p, session, token } = await s.run(() => {
      const snap = snapshotOf(s, req.params.name);
      const made = S.store.create({
        ttl_seconds: req.body?.ttl_seconds ?? s.ttlMs / 1000, seed: s.seed, default_dtype: s.defaultDtype, apiKey: s.apiKey,
      });
      S.durable?.forked(req, snap, made.session);
      return { p: snap, ...made };
    });
    try {
      await session.run(() => restoreSnapshot(session, p));
    } catch (e) {
      S.store.delete(session);
      throw e;
    }
    reply.code(201).header('Location', `/v1/sessions/${session.id}`);
    return createdAnswer(session, token);
  });
};
