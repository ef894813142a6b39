/** Arrays of a session: create, list, read (JSON, .npy or OIP tensors), overwrite, delete, gradients, backward. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  ArrayBackwardBody, ArrayBody, ArrayDescriptor, ArrayList, ArrayParams, AttachGradBody, Grads, NpyQuery,
  PutArrayBody, ReadQuery, SessionParams,
} from '../schemas/api.js';
import { sessionOf } from '../auth.js';
import { problems, sendParts } from '../responses.js';
import * as svc from '../../session/service.js';
import type { Services } from '../services.js';
import { fail } from '../../errors.js';
import { fastChecked, isArrayBody, withVariant } from '../schemas/fast.js';
import type { FastifyRequest } from 'fastify';
import { OipTensor, OipTensorAnswer } from '../schemas/oip.js';
import { isBinaryTensorBody, readBinaryBody, sendOip } from '../oip.js';
import { bindTensor, readTensor, type OipAnswer } from '../../session/oip.js';
import type { OipTensor as Tensor } from '../../session/oip-codec.js';

const errors = problems(401, 404, 409, 413, 415, 422);

// Tried first, so a binary body is recognised in O(1) instead of zod walking its bytes.
const NpyBody = z.custom<Buffer>((v) => Buffer.isBuffer(v)).describe('a .npy file (Content-Type: application/x-npy)');
// An OIP tensor is told from our bodies by its `datatype`, which none of them has.
const isOipTensor = (b: unknown): b is Tensor => typeof b === 'object' && b !== null && !Buffer.isBuffer(b) && 'datatype' in b;
const oipVariant = (b: unknown) => (isOipTensor(b) ? OipTensor : undefined);
const CreateBody = withVariant(fastChecked(z.union([NpyBody, ArrayBody, OipTensor]), (b) => Buffer.isBuffer(b) || isArrayBody(b, true)), oipVariant);
const ReplaceBody = withVariant(fastChecked(z.union([NpyBody, PutArrayBody, OipTensor]), (b) => Buffer.isBuffer(b) || isArrayBody(b, false)), oipVariant);

/** Binds an OIP tensor body (JSON, or JSON and bytes): under `name` when the path gives it, else its own. */
function bindOip(s: import('../../session/session.js').Session, req: FastifyRequest, name?: string) {
  if (isBinaryTensorBody(req)) {
    const { json, rest } = readBinaryBody(req, OipTensor);
    return bindTensor(s, name ?? json.name, json as Tensor, rest);
  }
  const t = req.body as Tensor;
  return bindTensor(s, name ?? t.name, t);
}
const isOip = (req: FastifyRequest) => isBinaryTensorBody(req) || isOipTensor(req.body);

const ReadAnswer = z.union([ArrayDescriptor, OipTensorAnswer]);

const wantsNpy = (req: FastifyRequest) => /application\/x-npy/.test(req.headers.accept ?? '');
const isNpy = (req: FastifyRequest) => Buffer.isBuffer(req.body);

export const arrayRoutes = (S: Services): FastifyPluginAsyncZod => async (app) => {
  app.post('/v1/sessions/:sid/arrays', {
    schema: {
      summary: 'Create (bind) an array from JSON, base64, an OIP tensor or a .npy body (?name=)',
      tags: ['arrays'],
      params: SessionParams,
      querystring: NpyQuery,
      body: CreateBody,
      response: { 201: ArrayDescriptor, ...errors },
    },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    const d = await s.run(() => {
      if (isOip(req)) return bindOip(s, req).descriptor;
      if (isNpy(req)) {
        if (!req.query.name) throw fail('invalid_request', 'a .npy upload needs the array name in the query: ?name=x', { arg: 'name' });
        return svc.bindUpload(s, req.query.name, req.body as Buffer, req.query.dtype).descriptor;
      }
      // Validated against ArrayBody already: it is the other side of the union.
      const body = req.body as ArrayBody;
      return svc.bindUpload(s, body.name, body).descriptor;
    });
    return reply.code(201).send(d);
  });

  app.get('/v1/sessions/:sid/arrays', {
    schema: { summary: 'List the bound arrays', tags: ['arrays'], params: SessionParams, response: { 200: ArrayList, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => ({ arrays: svc.listArrays(s) }));
  });

  const read = (grad: boolean) => async (req: FastifyRequest<{ Params: { sid: string; name: string }; Querystring: { format?: svc.Format | 'oip'; binary_data?: 'true' | 'false'; datatype?: 'BOOL' } }>, reply: import('fastify').FastifyReply) => {
    const s = sessionOf(S.store, req);
    const { name } = req.params;
    const q = req.query;
    if (q.format !== 'oip' && (q.binary_data !== undefined || q.datatype !== undefined)) {
      throw fail('invalid_request', `\`${q.binary_data !== undefined ? 'binary_data' : 'datatype'}\` goes with format=oip`, { field: q.binary_data !== undefined ? 'binary_data' : 'datatype' });
    }
    if (q.format === 'oip') {
      // run resolves the Deferred (its type does not say so).
      const answer = (await s.run(() => readTensor(s, grad ? `${name}.grad` : name, { binary: q.binary_data === 'true', datatype: q.datatype }))) as unknown as OipAnswer<unknown>;
      return sendOip(reply, answer);
    }
    if (wantsNpy(req)) {
      // run resolves the Deferred (its type does not say so): the header and the data's chunks.
      const parts = (await s.run(() => svc.toNpy(s, s.resolve(grad ? `${name}.grad` : name)))) as unknown as Uint8Array[];
      return sendParts(reply, 'application/x-npy', parts);
    }
    const format = q.format ?? 'nested';
    return s.run(() => (grad ? svc.readGrad(s, name, format) : svc.describe(s, name, s.resolve(name), format)));
  };

  app.get('/v1/sessions/:sid/arrays/:name', {
    schema: { summary: 'Read an array (JSON, an OIP tensor with format=oip, or .npy with Accept: application/x-npy)', tags: ['arrays'], params: ArrayParams, querystring: ReadQuery, response: { 200: ReadAnswer, ...errors } },
  }, read(false));

  app.get('/v1/sessions/:sid/arrays/:name/grad', {
    schema: { summary: 'Read the gradient buffer of an array', tags: ['arrays'], params: ArrayParams, querystring: ReadQuery, response: { 200: ReadAnswer, ...errors } },
  }, read(true));

  app.put('/v1/sessions/:sid/arrays/:name', {
    schema: {
      summary: 'Rebind a name to new data (201 when the name was unbound)',
      tags: ['arrays'],
      params: ArrayParams,
      querystring: NpyQuery,
      body: ReplaceBody,
      response: { 200: ArrayDescriptor, 201: ArrayDescriptor, ...errors },
    },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    const { name } = req.params;
    const { existed, descriptor } = await s.run(() => (isOip(req) ? bindOip(s, req, name) : svc.bindUpload(s, name, req.body as Buffer | PutArrayBody, req.query.dtype)));
    return reply.code(existed ? 200 : 201).send(descriptor);
  });

  app.delete('/v1/sessions/:sid/arrays/:name', {
    schema: { summary: 'Unbind a name (its memory is freed when nothing else holds it)', tags: ['arrays'], params: ArrayParams, response: { 204: z.null(), ...errors } },
  }, async (req, reply) => {
    const s = sessionOf(S.store, req);
    await s.run(() => svc.deleteArray(s, req.params.name));
    return reply.code(204).send(null);
  });

  app.post('/v1/sessions/:sid/arrays/:name/attach-grad', {
    schema: { summary: 'Attach a gradient buffer (MXNet attach_grad)', tags: ['autograd'], params: ArrayParams, body: AttachGradBody.nullish(), response: { 200: ArrayDescriptor, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    return s.run(() => svc.attachGrad(s, req.params.name, req.body?.grad_req ?? 'write'));
  });

  app.post('/v1/sessions/:sid/arrays/:name/backward', {
    schema: { summary: 'Backward from one array (MXNet y.backward())', tags: ['autograd'], params: ArrayParams, body: ArrayBackwardBody.nullish(), response: { 200: Grads, ...errors } },
  }, async (req) => {
    const s = sessionOf(S.store, req);
    const b = req.body ?? {};
    return s.run(() => ({
      grads: svc.backwardHeads(s, {
        heads: [req.params.name],
        head_grads: [b.head_grad ?? null],
        retain_graph: b.retain_graph,
        train_mode: b.train_mode,
        detect_anomaly: b.detect_anomaly,
      }),
    }));
  });
};
