/**
 * Response serialization. Handlers build answers from typed values, and the response schemas
 * (zod, the same ones the OpenAPI document is generated from) describe them; encoding every
 * answer through zod would cost as much as the rest of a small request, so in production answers
 * are serialized as built. With GRADSERVE_CHECK_RESPONSES=1 (the test suite) each answer is also
 * encoded through its schema and must come out the same: a wrong type, or a field the schema does
 * not have (which zod would silently drop), fails the request with a 500 naming the route.
 */
import { isDeepStrictEqual } from 'node:util';
import type { FastifySerializerCompiler } from 'fastify';
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { ApiError } from '../errors.js';

/**
 * zod builds its output objects as plain `{}`, where a key `__proto__` (an array's name) sets the
 * prototype instead: compare the answer without such keys.
 */
const withoutProto = (key: string, value: unknown) => (key === '__proto__' ? undefined : value);

/**
 * The last guard of the answer size limits (json_elements, base64_bytes): an answer longer than
 * V8's largest string would otherwise leave as a 500 "Invalid string length".
 */
function stringify(data: unknown): string {
  try {
    return JSON.stringify(data);
  } catch (e) {
    if (e instanceof RangeError) throw new ApiError('payload_too_large', 'the answer is longer than the server can encode; fetch fewer or smaller arrays at once, or read large ones as .npy (Accept: application/x-npy)', { limit: 'answer_length' });
    throw e;
  }
}

export function responseSerializer(check: boolean): FastifySerializerCompiler<z.ZodType> {
  if (!check) return () => stringify;
  return (route) => {
    const encode = zodSerializerCompiler(route);
    return (data) => {
      const checked = encode(data);
      const plain = stringify(data);
      if (checked !== plain && !isDeepStrictEqual(JSON.parse(checked), JSON.parse(plain, withoutProto))) {
        throw new Error(`the response of ${route.method} ${route.url} (status ${route.httpStatus}) is not what its schema encodes: ${plain.slice(0, 300)}`);
      }
      return plain;
    };
  };
}
