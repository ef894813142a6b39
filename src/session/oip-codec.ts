/**
 * The Open Inference Protocol's tensor form (KServe v2, Triton): `{name, shape, datatype, data}`,
 * or `parameters: {binary_data_size}` with the data as raw little-endian bytes after the JSON.
 *
 * OIP datatypes map onto ours; the narrow integer types widen exactly (INT8, INT16 and UINT16 to
 * int32, UINT32 to int64), BOOL is held as uint8 0/1. An answer's datatype is its array's dtype,
 * or BOOL when asked for. UINT64, BF16 and BYTES have no dtype here and are refused by name.
 */
import type { DType } from '../engine/backend.js';
import { itemSize } from '../engine/backend.js';
import { sizeOf, shapeStr, type NDArray } from '../engine/ndarray.js';
import type { BindStatement } from '../program/format.js';
import { ApiError, fail } from '../errors.js';
import { parseNested, type JsonNum } from './codec.js';
import { encodeData } from './service.js';
import type { Session } from './session.js';

export const OIP_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BF16', 'BYTES'] as const;
export type OipDatatype = typeof OIP_DATATYPES[number];

interface Wire {
  dtype: DType;
  /** Bytes per element on the wire. */
  size: number;
  /** Reads element i of wire bytes, for the types whose bytes are not our dtype's. */
  read?: (v: DataView, o: number) => number;
  /** The range of an integer type, so that a JSON value outside it is refused. */
  range?: [number, number];
}

const WIRE: Partial<Record<OipDatatype, Wire>> = {
  BOOL: { dtype: 'uint8', size: 1, range: [0, 1] },
  UINT8: { dtype: 'uint8', size: 1, range: [0, 255] },
  INT8: { dtype: 'int32', size: 1, read: (v, o) => v.getInt8(o), range: [-128, 127] },
  INT16: { dtype: 'int32', size: 2, read: (v, o) => v.getInt16(o, true), range: [-32768, 32767] },
  UINT16: { dtype: 'int32', size: 2, read: (v, o) => v.getUint16(o, true), range: [0, 65535] },
  INT32: { dtype: 'int32', size: 4, range: [-(2 ** 31), 2 ** 31 - 1] },
  UINT32: { dtype: 'int64', size: 4, read: (v, o) => v.getUint32(o, true), range: [0, 2 ** 32 - 1] },
  INT64: { dtype: 'int64', size: 8, range: [-(2 ** 63), 2 ** 63] },
  FP16: { dtype: 'float16', size: 2 },
  FP32: { dtype: 'float32', size: 4 },
  FP64: { dtype: 'float64', size: 8 },
};

const DATATYPE_OF: Record<DType, OipDatatype> = {
  float32: 'FP32', float64: 'FP64', float16: 'FP16', int32: 'INT32', int64: 'INT64', uint8: 'UINT8',
};

export const datatypeOf = (dtype: DType): OipDatatype => DATATYPE_OF[dtype];

export interface OipTensor {
  name: string;
  shape: number[];
  datatype: OipDatatype;
  data?: unknown;
  parameters?: Record<string, unknown>;
}

/** Where a tensor sits in its request (`inputs.1`), for the `field` of its errors; '' for a lone tensor. */
const at = (where: string, field: string) => (where ? `${where}.${field}` : field);

function wireOf(t: OipTensor, where: string): Wire {
  const w = WIRE[t.datatype];
  if (!w) {
    throw fail('invalid_argument', `\`${at(where, 'datatype')}\` ${t.datatype} has no dtype in gradserve; send BOOL, UINT8, INT8, INT16, UINT16, INT32, UINT32, INT64, FP16, FP32 or FP64`, { field: at(where, 'datatype') });
  }
  return w;
}

/** The binary size a tensor announces, or undefined when its data is JSON. */
export function binarySize(t: OipTensor): number | undefined {
  const n = t.parameters?.binary_data_size;
  return n === undefined ? undefined : (n as number);
}

/** BOOL data as JSON booleans, turned into the 0/1 that uint8 holds, at any nesting. */
function boolsToNumbers(v: unknown, path: string): unknown {
  if (Array.isArray(v)) return v.map((x, i) => boolsToNumbers(x, `${path}[${i}]`));
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw fail('invalid_request', `\`${path}\` holds ${JSON.stringify(v)?.slice(0, 40)}; BOOL data are true or false`, { field: path });
}

function checkRange(values: Float64Array, w: Wire, datatype: string, field: string): void {
  if (!w.range) return;
  const [lo, hi] = w.range;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isInteger(x) || x < lo || x > hi) {
      throw fail('invalid_argument', `element ${i} of \`${field}\` is ${x}, not a ${datatype} value`, { field });
    }
  }
}

/**
 * The bind statement of an OIP tensor: its JSON `data`, or `bytes` (the tensor's slice of the
 * binary body) when it announced `binary_data_size`. `where` names it in errors (`inputs.0`).
 */
export function decodeTensor(s: Session, out: string, t: OipTensor, bytes: Uint8Array | undefined, where = ''): BindStatement {
  const w = wireOf(t, where);
  // OIP has 0-d tensors (shape []); gradserve has none: one element is shape [1].
  const shape = t.shape.length ? [...t.shape] : [1];
  const n = sizeOf(shape);
  if (n > s.limits.maxArrayElements) throw fail('array_too_large', `\`${at(where, 'shape')}\` ${shapeStr(shape)} has more than ${s.limits.maxArrayElements} elements`, { limit: 'array_elements', field: at(where, 'shape') });
  if (bytes) {
    if (t.data !== undefined) throw fail('invalid_request', `\`${at(where, 'data')}\` and \`parameters.binary_data_size\` exclude each other`, { field: at(where, 'data') });
    if (bytes.length !== n * w.size) {
      throw fail('shape_mismatch', `\`${at(where, 'parameters.binary_data_size')}\` is ${bytes.length} bytes but ${t.datatype} of shape ${shapeStr(shape)} needs ${n * w.size}`, { field: at(where, 'parameters.binary_data_size') });
    }
    if (t.datatype === 'BOOL') return { op: 'bind', out, dtype: w.dtype, shape, bytes: Uint8Array.from(bytes, (b) => (b ? 1 : 0)) };
    if (!w.read) return { op: 'bind', out, dtype: w.dtype, shape, bytes };
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const values = new Float64Array(n);
    for (let i = 0; i < n; i++) values[i] = w.read(view, i * w.size);
    return { op: 'bind', out, dtype: w.dtype, shape, values };
  }
  if (t.data === undefined) throw fail('invalid_request', `\`${at(where, 'data')}\` is missing: give the values, or \`parameters.binary_data_size\` and the bytes after the JSON`, { field: at(where, 'data') });
  const field = at(where, 'data');
  const data = t.datatype === 'BOOL' ? boolsToNumbers(t.data, field) : t.data;
  let values: Float64Array;
  try {
    values = parseNested(data, shape).values;
  } catch (e) {
    // The codec's message names `data` and `shape`; the tensor's place in the request goes first.
    if (e instanceof ApiError && where) throw new ApiError(e.code, `${where}: ${e.message}`, { ...e.extra, field });
    if (e instanceof ApiError) throw new ApiError(e.code, e.message, { ...e.extra, field });
    throw e;
  }
  checkRange(values, w, t.datatype, field);
  return { op: 'bind', out, dtype: w.dtype, shape, values };
}

export interface Encoded {
  tensor: OipTensor;
  /** The tensor's bytes, when it travels binary. */
  bytes?: Uint8Array;
}

/**
 * An array as an OIP tensor: a flat `data` list (JSON elements counted against the answer's
 * limit, as every JSON answer's are), or its bytes with `binary_data_size`. Call it when the
 * answer is read (inside a Deferred), since it reads the array's data.
 */
export function encodeTensor(s: Session, name: string, a: NDArray, o: { binary?: boolean; datatype?: 'BOOL' } = {}): Encoded {
  const datatype = o.datatype ?? datatypeOf(a.dtype);
  const tensor: OipTensor = { name, shape: [...a.shape], datatype };
  if (o.binary) {
    const be = s.memory.backend;
    let bytes: Uint8Array;
    if (datatype === 'BOOL') {
      const values = be.readNumbers(a.storage);
      bytes = Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
    } else {
      bytes = a.size * itemSize(a.dtype) ? be.readBytes(a.storage) : new Uint8Array(0);
    }
    tensor.parameters = { binary_data_size: bytes.length };
    return { tensor, bytes };
  }
  let flat: JsonNum[];
  try {
    flat = encodeData(s, a, 'flat') as JsonNum[];
  } catch (e) {
    // An int64 beyond 2^53: the codec points to base64 and .npy; OIP's own way is binary data.
    if (e instanceof ApiError && e.extra.arg === 'format') {
      throw new ApiError(e.code, `${e.message.replace(/; read it with .*$/, '')}; ask for \`${name}\` as binary data (binary_data)`, { field: 'binary_data' });
    }
    throw e;
  }
  tensor.data = datatype === 'BOOL' ? flat.map((v) => v !== 0) : flat;
  return { tensor };
}

/** Splits a binary-extension body into its JSON text and the bytes after it. */
export function splitBody(buf: Buffer, headerLength: string | string[] | undefined): { json: string; rest: Buffer } {
  const n = Number(Array.isArray(headerLength) ? headerLength[0] : headerLength);
  if (headerLength === undefined || !Number.isSafeInteger(n) || n < 0 || n > buf.length) {
    throw fail('invalid_request', `a binary tensor body needs the header Inference-Header-Content-Length: the byte length of its JSON part (at most the body's ${buf.length} bytes)`, { field: 'Inference-Header-Content-Length' });
  }
  return { json: buf.subarray(0, n).toString('utf8'), rest: buf.subarray(n) };
}

/** Cuts the bytes after the JSON into each tensor's part, in order; `null` for JSON tensors. */
export function binaryParts(tensors: OipTensor[], rest: Buffer, where: string): (Buffer | undefined)[] {
  let off = 0;
  const parts = tensors.map((t, i) => {
    const n = binarySize(t);
    if (n === undefined) return undefined;
    if (off + n > rest.length) {
      throw fail('invalid_request', `\`${where}${where ? `.${i}.` : ''}parameters.binary_data_size\` runs past the end of the body: ${rest.length - off} bytes are left for ${n}`, { field: `${where}${where ? `.${i}.` : ''}parameters.binary_data_size` });
    }
    off += n;
    return rest.subarray(off - n, off);
  });
  if (off !== rest.length) throw fail('invalid_request', `the body has ${rest.length - off} bytes after the tensors' binary data`, { field: 'binary_data_size' });
  return parts;
}
