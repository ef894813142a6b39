/**
 * Request bodies: JSON (checked for depth before any schema sees it; empty bodies allowed) and
 * the binary uploads (.npy), which are handed on as one Buffer, and programs with binary parts
 * (./multipart.ts).
 *
 * Both are read into one buffer of the declared Content-Length as the bytes arrive, rather than
 * kept as the socket's 64 KB reads and joined at the end (fastify's way): those reads are small
 * heap allocations, and a 60 MB body held a thousand of them until it was parsed, which the
 * allocator kept as resident memory after the body was gone (issue 15, finding 9). One large
 * buffer is mapped and unmapped whole, and each read is garbage as soon as it is copied.
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { STAGING_MIN_BYTES, type StagingPool } from './staging.js';

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
    throw new ApiError('invalid_request', `the body is not valid JSON: ${(e as Error).message}`);
  }
  if (jsonDepthOver(text, value, MAX_JSON_DEPTH)) {
    throw new ApiError('invalid_request', `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`, { limit: 'json_depth' });
  }
  return value;
}

/**
 * Reads a body of at most `limit` bytes into one Buffer. A chunked body (no Content-Length) grows
 * by doubling, so it is copied O(log n) times. Small bodies share node's buffer pool; a large one
 * gets memory of its own, returned whole when freed, or (with `staging`) a buffer of the pool,
 * which the caller gives back once nothing reads the body.
 */
export function readBody(req: FastifyRequest, payload: Readable, limit: number, staging?: StagingPool): Promise<Buffer> {
  const alloc = (n: number) => (n < STAGING_MIN_BYTES ? Buffer.allocUnsafe(n) : staging ? staging.take(n) : Buffer.allocUnsafeSlow(n));
  const declared = req.headers['content-length'] === undefined ? NaN : Number(req.headers['content-length']);
  const tooLarge = () => new ApiError('payload_too_large', `the request body is larger than the limit of ${limit} bytes (GRADSERVE_MAX_BODY_BYTES)`, { limit: 'body_bytes' });
  return new Promise((resolve, reject) => {
    if (declared > limit) return reject(tooLarge());
    let buf = alloc(Number.isNaN(declared) ? Math.min(limit, 64 * 1024) : declared);
    let n = 0;
    const finish = (err: Error | null) => {
      payload.off('data', onData);
      payload.off('end', onEnd);
      payload.off('error', finish);
      if (err || (!Number.isNaN(declared) && n !== declared)) {
        staging?.give(buf);
        return reject(err ?? new ApiError('invalid_request', 'the Content-Length does not match the body'));
      }
      resolve(n === buf.length ? buf : buf.subarray(0, n));
    };
    const onEnd = () => finish(null);
    const onData = (chunk: Buffer) => {
      if (n + chunk.length > buf.length) {
        if (!Number.isNaN(declared)) return finish(new ApiError('invalid_request', 'the Content-Length does not match the body'));
        if (n + chunk.length > limit) return finish(tooLarge());
        const grown = alloc(Math.min(limit, Math.max(2 * buf.length, n + chunk.length)));
        buf.copy(grown, 0, 0, n);
        staging?.give(buf);
        buf = grown;
      }
      chunk.copy(buf, n);
      n += chunk.length;
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', finish);
  });
}

/**
 * True when all `declared` bytes of a body are already buffered in its stream, as for almost every
 * small request (a client writes the headers and the body in one go): such a body cannot stall,
 * and is taken without the timers, counting stream, listeners and promise that a body still
 * arriving needs (together about a sixth of a small op's request).
 */
export function arrivedWhole(stream: Readable, declared: number): boolean {
  return declared > 0 && stream.readableLength >= declared && !stream.readableFlowing;
}

/** A small body that arrived whole, taken in one read; null otherwise (see arrivedWhole). */
function bufferedWhole(req: FastifyRequest, payload: Readable): Buffer | null {
  const declared = Number(req.headers['content-length']);
  // A large one gets a buffer of its own (readBody), not a view of the socket's reads.
  if (declared >= STAGING_MIN_BYTES || !arrivedWhole(payload, declared)) return null;
  const b = payload.read(declared) as Buffer | null;
  return b && b.length === declared ? b : null;
}

/**
 * A JSON body's parser; a body with the Open Inference Protocol's `Inference-Header-Content-Length`
 * (JSON, then raw bytes) is handed on as its bytes, for src/http/oip.ts to split.
 */
export function jsonParser(maxBodyBytes: number, staging?: StagingPool) {
  return (req: FastifyRequest, payload: Readable, done: (err: Error | null, body?: unknown) => void): void => {
    const oip = req.headers['inference-header-content-length'] !== undefined;
    const whole = oip ? null : bufferedWhole(req, payload);
    if (whole) {
      let value: unknown;
      try {
        value = parseJsonBody(whole.toString('utf8'));
      } catch (e) {
        return done(e as Error, undefined);
      }
      return done(null, value);
    }
    // An OIP body is handed on as its bytes, so it cannot be read into a buffer given back here.
    readBody(req, payload, maxBodyBytes, oip ? undefined : staging).then((buf) => {
      if (oip) return done(null, buf);
      let value: unknown;
      try {
        const text = buf.toString('utf8');
        staging?.give(buf);
        value = parseJsonBody(text);
      } catch (e) {
        return done(e as Error, undefined);
      }
      done(null, value);
    }, (err: Error) => done(err, undefined));
  };
}

export function registerBodyParsers(app: FastifyInstance, maxBodyBytes: number, staging: StagingPool): void {
  // Bodies whose fields are all optional may be empty, with or without a JSON content type.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', jsonParser(maxBodyBytes, staging));
  app.addContentTypeParser(['application/x-npy', 'application/octet-stream'], (req, payload, done) => {
    readBody(req, payload, maxBodyBytes).then((buf) => done(null, buf), (err: Error) => done(err, undefined));
  });
}
