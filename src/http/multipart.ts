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
import { parseJsonBody } from './body.js';

/** The parts of a multipart request other than `program`, by name. */
export type Uploads = ReadonlyMap<string, Uint8Array>;

const NO_UPLOADS: Uploads = new Map();
const uploads = new WeakMap<FastifyRequest, Uploads>();

/** The binary parts sent with req (none for a JSON body). */
export function uploadsOf(req: FastifyRequest): Uploads {
  return uploads.get(req) ?? NO_UPLOADS;
}

/** Part names are array names' kin: short, and never a way to smuggle headers. */
const MAX_PARTS = 1001;

export function registerMultipart(app: FastifyInstance, maxBodyBytes: number): void {
  // The body streams into the parser: buffering it first would allocate it twice, and external
  // memory is what drives V8's collections in a training loop.
  app.addContentTypeParser('multipart/form-data', (req, payload, done) => {
    // Only routes that say so read parts; elsewhere the form would be validated as an empty body.
    if (!(req.routeOptions.config as { multipart?: boolean } | undefined)?.multipart) {
      payload.resume();
      return done(new ApiError('unsupported_media_type', `${req.method} ${req.routeOptions.url ?? req.url} takes application/json, not multipart/form-data`), undefined);
    }
    parseForm(req, payload, maxBodyBytes).then(
      ({ program, parts }) => {
        uploads.set(req, parts);
        try {
          done(null, parseJsonBody(program.toString('utf8')));
        } catch (e) {
          done(e as Error, undefined);
        }
      },
      (e) => done(e as Error, undefined),
    );
  });
}

function parseForm(req: FastifyRequest, payload: NodeJS.ReadableStream, maxBodyBytes: number): Promise<{ program: Buffer; parts: Map<string, Uint8Array> }> {
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
      payload.resume();
      return reject(new ApiError('invalid_request', `the multipart body is malformed: ${(e as Error).message}`));
    }
    const parts = new Map<string, Uint8Array>();
    let program: Buffer | undefined;
    let failed: Error | null = null;
    let settled = false;
    const finish = (e: Error | null) => {
      if (settled) return;
      settled = true;
      if (e) {
        payload.unpipe(bb as NodeJS.WritableStream);
        payload.resume();
        return reject(e);
      }
      if (program === undefined) return reject(new ApiError('invalid_request', 'the multipart body has no `program` part (the JSON program)', { attribute: 'program' }));
      resolve({ program, parts });
    };
    let received = 0;
    payload.on('data', (c: Buffer) => {
      received += c.length;
      if (received > maxBodyBytes) {
        const e = new ApiError('payload_too_large', `the request body is larger than ${maxBodyBytes} bytes (GRADSERVE_MAX_BODY_BYTES)`, { limit: 'body_bytes', value: maxBodyBytes });
        finish(e);
      }
    });
    payload.on('error', (e: Error) => finish(e));
    bb.on('file', (name: string, stream: NodeJS.ReadableStream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        if (name === 'program') program = bytes;
        else if (parts.has(name)) failed ??= new ApiError('invalid_request', `the multipart body has two parts named \`${name}\``, { attribute: name });
        else parts.set(name, bytes);
      });
    });
    bb.on('partsLimit', () => { failed ??= new ApiError('payload_too_large', `the multipart body has more than ${MAX_PARTS} parts`, { limit: 'multipart_parts', value: MAX_PARTS }); });
    bb.on('filesLimit', () => { failed ??= new ApiError('payload_too_large', `the multipart body has more than ${MAX_PARTS} parts`, { limit: 'multipart_parts', value: MAX_PARTS }); });
    bb.on('error', (e: Error) => finish(new ApiError('invalid_request', `the multipart body is malformed: ${e.message}`)));
    bb.on('finish', () => finish(failed));
    payload.pipe(bb as NodeJS.WritableStream);
  });
}
