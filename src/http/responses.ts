/**
 * The problem+json answers a route declares in openapi.yaml, so clients and the explorer see them;
 * and binary answers sent as the parts they were copied out in.
 */
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { Problem } from './schemas/api.js';

type ErrorStatus = 400 | 401 | 404 | 409 | 413 | 415 | 422 | 429 | 503;

/**
 * Any route may answer a malformed request (400), the rate limit (429) and back-pressure (503,
 * @fastify/under-pressure); `codes` adds the route's own.
 */
export function problems(...codes: ErrorStatus[]): Partial<Record<ErrorStatus, typeof Problem>> {
  const out: Partial<Record<ErrorStatus, typeof Problem>> = {};
  for (const c of [400, 429, 503, ...codes] as ErrorStatus[]) out[c] = Problem;
  return out;
}

/** Sends byte parts one after another (never joined into one Buffer), with their total length. */
export function sendParts(reply: FastifyReply, type: string, parts: readonly Uint8Array[]): FastifyReply {
  const length = parts.reduce((n, p) => n + p.length, 0);
  return reply.type(type).header('content-length', length).send(Readable.from(parts, { objectMode: false }));
}
