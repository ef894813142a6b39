/** Little-endian base64 array bytes, checked against their shape: uploads, files and the frombuffer op. */
import { fail } from '../errors.js';
import { itemSize, type DType } from './backend.js';
import { shapeStr, sizeOf } from './ndarray.js';

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** The bytes of `data_base64`, checked against the shape; one decode, no other copy. */
export function decodeBase64(b64: string, shape: readonly number[], dtype: DType, field = 'data_base64'): Uint8Array {
  const bytes = Buffer.from(b64, 'base64');
  // Buffer.from skips characters outside the alphabet, so the text must be checked. Canonical
  // base64 (what encoders write) re-encodes to itself, which proves it is only alphabet and
  // padding, at a fraction of the cost of the regex on a long string; only a text that is not
  // canonical (unpadded, or not base64) is left to the regex.
  if (bytes.toString('base64') !== b64 && !BASE64_RE.test(b64)) throw fail('invalid_request', `\`${field}\` is not valid base64`, { attribute: field });
  const want = sizeOf(shape) * itemSize(dtype);
  if (bytes.length !== want) {
    throw fail('shape_mismatch', `\`${field}\` holds ${bytes.length} bytes but shape ${shapeStr(shape)} of ${dtype} needs ${want}`, { attribute: field });
  }
  return bytes;
}
