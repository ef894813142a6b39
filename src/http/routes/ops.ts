/** POST /v1/sessions/{sid}/ops (programs and expressions) and GET /v1/ops (the op table). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { OpList, OpsAnswer, OpsBody, SessionParams } from '../schemas/api.js';
import { sessionOf } from '../auth.js';
import { problems } from '../responses.js';
import { autogradState, runOps } from '../../session/service.js';
import { allOps } from '../../ops/index.js';
import { takesDtype } from '../../ops/dispatch.js';
import { DTYPES } from '../../engine/backend.js';
import type { Services } from '../services.js';
import { withUploads } from '../multipart.js';

const errors = problems(401, 404, 409, 413, 415, 422);

function opListing() {
  return allOps().filter((d) => !d.internal).map((d) => ({
    name: d.name,
    aliases: d.aliases,
    doc: d.doc,
    inputs: d.inputs,
    variadic: !!d.variadic,
    positional: d.positional,
    attrs: z.toJSONSchema(d.attrs, { io: 'input', unrepresentable: 'any' }),
    differentiable: d.differentiable,
    derivative_order: d.derivativeOrder,
    mode_dependent: d.modeDependent,
    scalar_inputs: d.scalarInputs,
    outputs: d.outputCount ?? d.visibleOutputs ?? 1,
    dtypes: d.inputs.map((_, i) => DTYPES.filter((t) => takesDtype(d, i, t))),
  }));
}

export const opsRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  let listing: ReturnType<typeof opListing> | null = null;

  app.get('/v1/ops', {
    schema: { summary: 'Every op: arguments, attributes (JSON Schema), aliases, differentiability', tags: ['ops'], response: { 200: OpList } },
  }, async () => ({ ops: (listing ??= opListing()) }));

  app.post('/v1/sessions/:sid/ops', {
    config: { multipart: true },
    schema: {
      summary: 'Run a program: JSON ops or an expression, under the session\'s current scope (JSON, or multipart/form-data with a `program` part and binary parts that frombuffer reads)',
      tags: ['ops'],
      params: SessionParams,
      body: OpsBody,
      response: { 200: OpsAnswer, ...errors },
    },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return withUploads(req, (parts) => s.run(() => ({ ...runOps(s, req.body, parts), autograd: autogradState(s) })));
  });
};
