/**
 * Programs with binary parts: `POST /ops` also takes multipart/form-data whose `program` part is
 * the JSON body and whose other parts are raw little-endian array bytes, named by `frombuffer`'s
 * `part` attribute. A batch of training data then travels as its bytes: base64 inside JSON costs
 * a third more bytes and, on the server, a UTF-8 decode, a parse and a decode of the whole text
 * (about 3 ms for a 256x784 float32 batch).
 */
import { Busboy } from '@fastify/busboy';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { parseJsonBody, readBody } from './body.js';
import type { StagingPool } from './staging.js';

/** The parts of a multipart request other than `program`, by name. */
export type Uploads = ReadonlyMap<string, Uint8Array>;

const NO_UPLOADS: Uploads = new Map();

/**
 * A request's parts, views of the pooled buffer its body was read into. The buffer goes back to
 * the pool when the request has been answered and no handler reads the parts any more.
 */
interface Form {
  parts: Uploads;
  body: Buffer | null;
  readers: number;
  answered: boolean;
  pool: StagingPool;
}
const forms = new WeakMap<FastifyRequest, Form>();

/** The binary parts sent with req (none for a JSON body). */
export function uploadsOf(req: FastifyRequest): Uploads {
  return forms.get(req)?.parts ?? NO_UPLOADS;
}

/**
 * Runs fn with req's parts; they stay valid until fn's promise settles. A handler that may wait
 * (a session's queue) reads the parts only through this, since the request can be answered (its
 * connection closed) before it runs.
 */
export async function withUploads<T>(req: FastifyRequest, fn: (parts: Uploads) => T | Promise<T>): Promise<T> {
  const form = forms.get(req);
  if (!form) return fn(NO_UPLOADS);
  form.readers++;
  try {
    return await fn(form.parts);
  } finally {
    form.readers--;
    settle(form);
  }
}

function settle(form: Form): void {
  if (form.readers > 0 || !form.answered || !form.body) return;
  // A handler that starts after this finds no parts (its client is gone) rather than another body's bytes.
  form.parts = NO_UPLOADS;
  form.pool.give(form.body);
  form.body = null;
}

/** Part names are array names' kin: short, and never a way to smuggle headers. */
const MAX_PARTS = 1001;

export function registerMultipart(app: FastifyInstance, maxBodyBytes: number, pool: StagingPool): void {
  // The body is read whole into a pooled buffer and parsed from it in one write, so that every part
  // is a view of that buffer (no copy, nothing allocated per request) and the socket's reads die
  // young: external memory is what drives V8's collections in a training loop.
  app.addContentTypeParser('multipart/form-data', (req, payload, done) => {
    // Only routes that say so read parts; elsewhere the form would be validated as an empty body.
    if (!(req.routeOptions.config as { multipart?: boolean } | undefined)?.multipart) {
      payload.resume();
      return done(new ApiError('unsupported_media_type', `${req.method} ${req.routeOptions.url ?? req.url} takes application/json, not multipart/form-data`), undefined);
    }
    readBody(req, payload, maxBodyBytes, pool)
      .then((body) => parseForm(req, body).then(
        ({ program, parts }) => {
          const form: Form = { parts, body, readers: 0, answered: false, pool };
          forms.set(req, form);
          done(null, parseJsonBody(program.toString('utf8')));
        },
        (e) => {
          pool.give(body);
          throw e;
        },
      ))
      .catch((e) => done(e as Error, undefined));
  });
  const answered = (req: FastifyRequest, _reply: unknown, next: () => void) => {
    const form = forms.get(req);
    if (form) {
      form.answered = true;
      settle(form);
    }
    next();
  };
  app.addHook('onResponse', answered);
  app.addHook('onRequestAbort', (req, next) => answered(req, null, next));
}

function parseForm(req: FastifyRequest, body: Buffer): Promise<{ program: Buffer; parts: Map<string, Uint8Array> }> {
  return new Promise((resolve, reject) => {
    let bb: ReturnType<typeof Busboy>;
    try {
      bb = Busboy({
        headers: req.headers as { 'content-type': string },
        // Every part is bytes: the program is decoded here as UTF-8, the arrays are never text.
        isPartAFile: () => true,
        limits: { parts: MAX_PARTS, files: MAX_PARTS, fields: 0, fieldNameSize: 256, headerPairs: 16 },
      });
    } catch (e) {
      return reject(new ApiError('invalid_request', `the multipart body is malformed: ${(e as Error).message}`));
    }
    const parts = new Map<string, Uint8Array>();
    let program: Buffer | undefined;
    let failed: Error | null = null;
    let settled = false;
    const finish = (e: Error | null) => {
      if (settled) return;
      settled = true;
      if (e) return reject(e);
      if (program === undefined) return reject(new ApiError('invalid_request', 'the multipart body has no `program` part (the JSON program)', { attribute: 'program' }));
      resolve({ program, parts });
    };
    bb.on('file', (name: string, stream: NodeJS.ReadableStream) => {
      const pieces: Buffer[] = [];
      stream.on('data', (c: Buffer) => pieces.push(c));
      stream.on('end', () => {
        const bytes = joined(pieces, body);
        if (name === 'program') program = bytes;
        else if (parts.has(name)) failed ??= new ApiError('invalid_request', `the multipart body has two parts named \`${name}\``, { attribute: name });
        else parts.set(name, bytes);
      });
    });
    bb.on('partsLimit', () => { failed ??= new ApiError('payload_too_large', `the multipart body has more than ${MAX_PARTS} parts`, { limit: 'multipart_parts', value: MAX_PARTS }); });
    bb.on('filesLimit', () => { failed ??= new ApiError('payload_too_large', `the multipart body has more than ${MAX_PARTS} parts`, { limit: 'multipart_parts', value: MAX_PARTS }); });
    bb.on('error', (e: Error) => finish(new ApiError('invalid_request', `the multipart body is malformed: ${e.message}`)));
    bb.on('finish', () => finish(failed));
    bb.end(body);
  });
}

/**
 * A part's pieces as one Buffer: a view of the body when they lie end to end in it (the parser
 * hands out slices of its input), a copy only when the parser kept some bytes of its own.
 */
function joined(pieces: Buffer[], body: Buffer): Buffer {
  if (pieces.length === 0) return Buffer.alloc(0);
  const first = pieces[0];
  let end = first.byteOffset + first.length;
  for (let i = 1; i < pieces.length; i++) {
    const p = pieces[i];
    if (p.buffer !== body.buffer || p.byteOffset !== end) return Buffer.concat(pieces);
    end += p.length;
  }
  if (pieces.length === 1) return first;
  return first.buffer === body.buffer ? Buffer.from(body.buffer, first.byteOffset, end - first.byteOffset) : Buffer.concat(pieces);
}
