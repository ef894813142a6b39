/**
 * Request bodies: JSON (checked for depth before any schema sees it; empty bodies allowed) and
 * the binary uploads (.npy), which are handed on as one Buffer, and programs with binary parts
 * (./multipart.ts).
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';

/**
 * Deeper bodies are refused before validation: recursive schemas would otherwise recurse once per
 * level. 64 leaves room for rank-32 arrays and nested scope blocks.
 */
const MAX_JSON_DEPTH = 64;

/**
 * True when the JSON text nests arrays or objects deeper than max. A text with at most max
 * brackets cannot (this settles a long flat list of numbers with a few indexOf scans); otherwise
 * the parsed value is walked, recursing at most max + 1 levels since it stops there.
 */
export function jsonDepthOver(text: string, value: unknown, max: number): boolean {
  let brackets = 0;
  for (const open of ['[', '{']) {
    for (let i = text.indexOf(open); i !== -1 && brackets <= max; i = text.indexOf(open, i + 1)) brackets++;
  }
  return brackets > max && nestsDeeper(value, 1, max);
}

function nestsDeeper(v: unknown, depth: number, max: number): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (depth > max) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x === 'object' && x !== null && nestsDeeper(x, depth + 1, max)) return true;
    }
    return false;
  }
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x === 'object' && x !== null && nestsDeeper(x, depth + 1, max)) return true;
  }
  return false;
}

/** A JSON body's value (undefined when empty), refused when it nests too deep. Throws with status 400. */
export function parseJsonBody(raw: string): unknown {
  const text = raw.trim();
  if (text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const err = e as Error & { statusCode?: number };
    err.statusCode = 400;
    throw err;
  }
  if (jsonDepthOver(text, value, MAX_JSON_DEPTH)) {
    throw new ApiError('invalid_request', `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`, { limit: 'json_depth' });
  }
  return value;
}

export function registerBodyParsers(app: FastifyInstance): void {
  // Bodies whose fields are all optional may be empty, with or without a JSON content type.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser(['application/x-npy', 'application/octet-stream'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
}
