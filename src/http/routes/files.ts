/** Whole-session files: GET /export and POST /import, one safetensors file each way. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ImportAnswer, SafetensorsFile, SessionParams } from '../schemas/api.js';
import { sessionOf } from '../auth.js';
import { problems, sendParts } from '../responses.js';
import { exportSession, importSession } from '../../session/files.js';
import type { Services } from '../services.js';
import { fail } from '../../errors.js';
import { readBody } from '../body.js';

const errors = problems(401, 404, 413, 415);
export const SAFETENSORS_TYPE = 'application/x-safetensors';

export const fileRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  // Scoped to this plugin: the app already reads application/octet-stream as bytes.
  app.addContentTypeParser(SAFETENSORS_TYPE, (req, payload, done) => {
    readBody(req, payload, S.config.limits.maxBodyBytes).then((buf) => done(null, buf), (err: Error) => done(err, undefined));
  });

  app.get('/v1/sessions/:sid/export', {
    schema: {
      summary: 'Every bound array and gradient buffer (as `name.grad`) as one safetensors file',
      tags: ['files'],
      params: SessionParams,
      response: { 200: SafetensorsFile, ...errors },
    },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    // run resolves the Deferred (its type does not say so): the header and the arrays' chunks.
    const parts = (await s.run(() => exportSession(s))) as unknown as Uint8Array[];
    reply.header('Content-Disposition', `attachment; filename="gradserve-${s.id}.safetensors"`);
    return sendParts(reply, 'application/octet-stream', parts);
  });

  app.post('/v1/sessions/:sid/import', {
    schema: {
      summary: 'Load a safetensors file: names become bindings, `name.grad` gradient buffers; all or nothing',
      description: 'Body: the file, as application/octet-stream or application/x-safetensors. The whole file is '
        + 'validated before anything changes; a malformed file is 400 invalid_request and the session is left as it was.',
      tags: ['files'],
      params: SessionParams,
      body: SafetensorsFile,
      response: { 200: ImportAnswer, ...errors },
    },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    if (!Buffer.isBuffer(req.body)) {
      throw fail('invalid_request', `send the safetensors file as the body with Content-Type application/octet-stream or ${SAFETENSORS_TYPE}`);
    }
    const body = req.body;
    return s.run(() => importSession(s, body));
  });
};
