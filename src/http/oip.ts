/**
 * The HTTP side of the Open Inference Protocol's binary tensor data extension: a body that is JSON
 * followed by raw tensor bytes, its JSON's length in the header Inference-Header-Content-Length,
 * and answers written the same way.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { parseJsonBody } from './body.js';
import { sendParts } from './responses.js';
import { splitBody } from '../session/oip-codec.js';
import type { OipAnswer } from '../session/oip.js';

export const HEADER_LENGTH = 'inference-header-content-length';

/** True when the request carries the binary extension (a raw body with the JSON length header). */
export const isBinaryTensorBody = (req: FastifyRequest) => Buffer.isBuffer(req.body) && req.headers[HEADER_LENGTH] !== undefined;

/** The JSON part of a binary-extension body checked against `schema` (a ZodError names the field), and the bytes after it. */
export function readBinaryBody<T extends z.ZodType>(req: FastifyRequest, schema: T): { json: z.infer<T>; rest: Buffer } {
  const { json, rest } = splitBody(req.body as Buffer, req.headers[HEADER_LENGTH]);
  return { json: schema.parse(parseJsonBody(json)), rest };
}

/** A JSON answer as JSON; one with binary tensors as its JSON, then their bytes. */
export function sendOip<T>(reply: FastifyReply, answer: OipAnswer<T>): FastifyReply | T {
  if (!answer.parts.length) return answer.body;
  const json = Buffer.from(JSON.stringify(answer.body));
  reply.header('Inference-Header-Content-Length', String(json.length));
  return sendParts(reply, 'application/octet-stream', [json, ...answer.parts]);
}
