/**
 * The Open Inference Protocol (KServe v2, Triton) under a session: with the base URL
 * `/v1/sessions/{sid}` and the session's bearer token, an unmodified OIP client sees the
 * session's defs as models.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SessionParams } from '../schemas/api.js';
import { InferRequest, InferResponse, ModelMetadata, ModelParams, OipBinaryBody, ServerMetadata, VersionParams } from '../schemas/oip.js';
import { sessionOf } from '../auth.js';
import { problems } from '../responses.js';
import { readBinaryBody, sendOip } from '../oip.js';
import { jsonParser } from '../body.js';
import { checkVersion, infer, modelMetadata, modelReady, type InferRequest as Request, type InferResponse as Response, type OipAnswer } from '../../session/oip.js';
import type { Services } from '../services.js';

const errors = problems(401, 404, 413, 415, 422);
const base = '/v1/sessions/:sid/v2';
const tags = ['oip'];

export const oipRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  // Scoped to this plugin. Clients of the protocol (Triton's among them) may send no Content-Type:
  // the body is then JSON, or JSON and bytes when the length header says so.
  app.addContentTypeParser('*', jsonParser(S.config.limits.maxBodyBytes));

  app.get(base, {
    schema: { summary: 'OIP server metadata', tags, params: SessionParams, response: { 200: ServerMetadata, ...errors } },
  }, async (req) => {
    sessionOf(S.store, req);
    return { name: 'gradserve', version: '1', extensions: ['binary_tensor_data'] };
  });

  app.get(`${base}/health/live`, {
    schema: { summary: 'OIP liveness', tags, params: SessionParams, response: { 200: z.object({ live: z.boolean() }), ...errors } },
  }, async (req) => {
    sessionOf(S.store, req);
    return { live: true };
  });

  app.get(`${base}/health/ready`, {
    schema: { summary: 'OIP readiness: false while the server drains', tags, params: SessionParams, response: { 200: z.object({ ready: z.boolean() }), ...errors } },
  }, async (req) => {
    sessionOf(S.store, req);
    return { ready: !S.state.draining };
  });

  // A def has one version, "1": the paths with /versions/{version} serve clients that name it.
  for (const [path, params] of [[`${base}/models/:model`, ModelParams], [`${base}/models/:model/versions/:version`, VersionParams]] as const) {
    app.get(path, {
      schema: { summary: 'OIP model metadata of a def of the session: its parameters as inputs', tags, params, response: { 200: ModelMetadata, ...errors } },
    }, async (req) => {
      const s = sessionOf(S.store, req);
      return s.run(() => modelMetadata(s, req.params.model, (req.params as { version?: string }).version));
    });
  }

  app.get(`${base}/models/:model/ready`, {
    schema: { summary: 'OIP model readiness: the def exists', tags, params: ModelParams, response: { 200: z.object({ name: z.string(), ready: z.boolean() }), ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => modelReady(s, req.params.model));
  });

  for (const [path, params] of [[`${base}/models/:model/infer`, ModelParams], [`${base}/models/:model/versions/:version/infer`, VersionParams]] as const) {
    app.post(path, {
      schema: {
        summary: 'OIP inference: call a def of the session on the request\'s tensors (JSON, or the binary tensor data extension)',
        tags,
        params,
        body: z.union([OipBinaryBody, InferRequest]),
        response: { 200: InferResponse, ...problems(401, 404, 409, 413, 415, 422, 429) },
      },
    }, async (req, reply) => {
      const s = sessionOf(S.store, req);
      const { model } = req.params;
      const version = (req.params as { version?: string }).version;
      // run resolves the Deferred (its type does not say so).
      const answer = (await s.run(() => {
        checkVersion(version);
        // A raw body without the length header is refused by readBinaryBody, naming the header.
        if (Buffer.isBuffer(req.body)) {
          const { json, rest } = readBinaryBody(req, InferRequest);
          return infer(s, model, json as Request, rest);
        }
        return infer(s, model, req.body as Request);
      })) as unknown as OipAnswer<Response>;
      return sendOip(reply, answer);
    });
  }
};
