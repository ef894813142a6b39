/**
 * Array data on the wire: nested or flat JSON lists (non-finite numbers as the strings "NaN",
 * "Infinity", "-Infinity"), little-endian base64, and NumPy's .npy format.
 *
 * JSON numbers are doubles: an int64 element beyond 2^53 has no exact JSON form, so a JSON answer
 * holding one is refused (422) with a pointer to base64 and .npy, which carry every bit.
 */
import { DTYPE_INFO, itemSize, type DType } from '../engine/backend.js';
import { halfValue, toDType } from '../engine/convert.js';
import { sizeOf, shapeStr } from '../engine/ndarray.js';
import { fail } from '../errors.js';

export type JsonNum = number | 'NaN' | 'Infinity' | '-Infinity';
export type Nested = JsonNum | Nested[];

const MAX_RANK = 32;

function toNumber(v: unknown, where: string): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw fail('invalid_request', `${where} holds ${JSON.stringify(v)?.slice(0, 40)}; expected a number or "NaN", "Infinity", "-Infinity"`);
}

/** The shape of nested lists, checking they are rectangular. */
function inferShape(data: unknown): number[] {
  const shape: number[] = [];
  let cur = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (shape.length > MAX_RANK) throw fail('invalid_request', `\`data\` is nested deeper than ${MAX_RANK} levels`);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

/** `data[1][0]`: the path of an element, built only for an error message. */
const pathOf = (index: readonly number[]) => `\`data${index.map((i) => `[${i}]`).join('')}\``;

/** Copies one innermost list into values at k; numbers take the fast path, the rest toNumber. */
function readRow(row: readonly unknown[], values: Float64Array, k: number, index: number[]): void {
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    values[k + i] = typeof v === 'number' ? v : toNumber(v, pathOf([...index, i]));
  }
}

/** Flattens nested lists (row-major) after checking they match `shape`: one pass, no copies. */
export function parseNested(data: unknown, shape?: readonly number[]): { values: Float64Array; shape: number[] } {
  if (!Array.isArray(data)) {
    // A bare number is a one-element array (there are no 0-d arrays).
    const v = toNumber(data, '`data`');
    if (shape && sizeOf(shape) !== 1) throw fail('shape_mismatch', `\`data\` is one number but \`shape\` is ${shapeStr(shape)}`);
    return { values: Float64Array.of(v), shape: shape ? [...shape] : [1] };
  }
  const inferred = inferShape(data);
  const isFlat = shape && inferred.length === 1 && shape.length !== 1;
  if (isFlat) {
    if (data.length !== sizeOf(shape)) throw fail('shape_mismatch', `flat \`data\` has ${data.length} values but \`shape\` ${shapeStr(shape)} needs ${sizeOf(shape)}`);
    const values = new Float64Array(data.length);
    readRow(data, values, 0, []);
    return { values, shape: [...shape] };
  }
  if (shape && (shape.length !== inferred.length || shape.some((d, i) => d !== inferred[i]))) {
    throw fail('shape_mismatch', `nested \`data\` has shape ${shapeStr(inferred)} but \`shape\` is ${shapeStr(shape)}`);
  }
  const n = sizeOf(inferred);
  const values = new Float64Array(n);
  const rank = inferred.length;
  // Recursion is bounded by the rank (at most MAX_RANK); every list must have the inferred length.
  const index: number[] = [];
  let k = 0;
  const walk = (node: unknown, depth: number): void => {
    if (!Array.isArray(node) || node.length !== inferred[depth]) {
      throw fail('invalid_request', `${pathOf(index)} should be a list of ${inferred[depth]} items (the lists are not rectangular)`);
    }
    if (depth === rank - 1) {
      readRow(node, values, k, index);
      k += node.length;
      return;
    }
    for (let i = 0; i < node.length; i++) {
      index.push(i);
      walk(node[i], depth + 1);
      index.pop();
    }
  };
  walk(data, 0);
  return { values, shape: rank ? inferred : [0] };
}

/** The shortest decimal that reads back as the same float32. */
function shortestF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

/** The shortest decimal that reads back as the same float16. */
function shortestF16(v: number): number {
  for (let p = 1; p <= 5; p++) {
    const s = Number(v.toPrecision(p));
    if (toDType.float16(s) === v) return s;
  }
  return v;
}

function jsonValue(v: number, dtype: DType): JsonNum {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Object.is(v, -0)) return 0;
  return dtype === 'float32' ? shortestF32(v) : dtype === 'float16' ? shortestF16(v) : v;
}

export function toFlat(values: Float64Array, dtype: DType): JsonNum[] {
  const out = new Array<JsonNum>(values.length);
  for (let i = 0; i < values.length; i++) out[i] = jsonValue(values[i], dtype);
  if (dtype === 'int64') {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isSafeInteger(values[i])) {
        throw fail('invalid_argument', `element ${i} of an int64 array is beyond 2^53 (about ${values[i]}), which a JSON number cannot hold exactly; read it with format=base64 or as .npy (Accept: application/x-npy)`, { arg: 'format' });
      }
    }
  }
  return out;
}

export function toNested(values: Float64Array, shape: readonly number[], dtype: DType): Nested {
  const flat = toFlat(values, dtype);
  const build = (depth: number, offset: number): Nested => {
    if (depth === shape.length) return flat[offset];
    const stride = sizeOf(shape.slice(depth + 1));
    const out: Nested[] = new Array(shape[depth]);
    for (let i = 0; i < shape[depth]; i++) out[i] = build(depth + 1, offset + i * stride);
    return out;
  };
  return build(0, 0);
}

export { decodeBase64 } from '../engine/base64.js';

// .npy: magic, version, little-endian header length, then a Python dict literal padded to 64 bytes.
const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

type TypedArrayOf = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayLike<number> | BigInt64Array;

interface NpyType {
  size: number;
  /** Reads element o of b: the portable path (big-endian files, unaligned data, a big-endian host). */
  read: (b: Buffer, o: number) => number;
  /** The typed array of a little-endian type, to convert it in one pass on a little-endian host. */
  view?: TypedArrayOf;
  /** The dtype that holds this type's elements as they are. */
  held?: DType;
}

const NPY_TYPES: Record<string, NpyType> = {
  '<f4': { size: 4, read: (b, o) => b.readFloatLE(o), view: Float32Array, held: 'float32' },
  '<f8': { size: 8, read: (b, o) => b.readDoubleLE(o), view: Float64Array, held: 'float64' },
  '<f2': { size: 2, read: (b, o) => halfValue(b.readUInt16LE(o)), held: 'float16' },
  '>f4': { size: 4, read: (b, o) => b.readFloatBE(o) },
  '>f8': { size: 8, read: (b, o) => b.readDoubleBE(o) },
  '|u1': { size: 1, read: (b, o) => b.readUInt8(o), view: Uint8Array, held: 'uint8' },
  '|i1': { size: 1, read: (b, o) => b.readInt8(o), view: Int8Array },
  '<i4': { size: 4, read: (b, o) => b.readInt32LE(o), view: Int32Array, held: 'int32' },
  '<u4': { size: 4, read: (b, o) => b.readUInt32LE(o), view: Uint32Array },
  '<i8': { size: 8, read: (b, o) => Number(b.readBigInt64LE(o)), view: BigInt64Array, held: 'int64' },
  '<i2': { size: 2, read: (b, o) => b.readInt16LE(o), view: Int16Array },
  '<u2': { size: 2, read: (b, o) => b.readUInt16LE(o), view: Uint16Array },
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The n elements of type in data as float64 values. */
function toFloat64(type: NpyType, data: Buffer, n: number): Float64Array {
  if (type.view && LITTLE_ENDIAN_HOST && data.byteOffset % type.size === 0) {
    const view = new type.view(data.buffer, data.byteOffset, n);
    if (!(view instanceof BigInt64Array)) return new Float64Array(view);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = Number(view[i]);
    return out;
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = type.read(data, i * type.size);
  return out;
}

export interface NpyArray {
  shape: number[];
  /** The dtype that holds the file's elements as they are, when there is one. */
  dtype: DType | null;
  /** Raw little-endian bytes when the file's dtype is the one asked for; otherwise values. */
  bytesFor(dtype: DType): Uint8Array | Float64Array;
}

export function parseNpy(buf: Buffer): NpyArray {
  const bad = (why: string) => fail('invalid_request', `the .npy body is malformed: ${why}`);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad('it does not start with \\x93NUMPY');
  const major = buf[6];
  if (major < 1 || major > 3) throw bad(`version ${major} is not 1, 2 or 3`);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > buf.length) throw bad('the header runs past the end of the body');
  const header = buf.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw bad('the header lacks descr, fortran_order or shape');
  const type = NPY_TYPES[descr];
  if (!type) throw fail('unsupported_media_type', `.npy dtype ${descr} is not supported; send float32 (<f4), float64 (<f8), float16 (<f2) or an integer type`);
  if (fortran === 'True') throw fail('invalid_request', '.npy arrays in Fortran order are not supported; save a C-contiguous array');
  const dims = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0) || dims.length > MAX_RANK) throw bad(`shape (${shapeText}) is not a tuple of sizes`);
  const shape = dims.length ? dims : [1];
  const n = sizeOf(shape);
  const data = buf.subarray(start + headerLen);
  if (data.length !== n * type.size) throw bad(`shape ${shapeStr(shape)} of ${descr} needs ${n * type.size} bytes of data, the body has ${data.length}`);
  return {
    shape,
    dtype: type.held ?? null,
    bytesFor(dtype) {
      if (type.held === dtype) return data;
      return toFloat64(type, data, n);
    },
  };
}

export function writeNpy(bytes: Uint8Array, shape: readonly number[], dtype: DType): Buffer {
  return Buffer.concat([npyHeader(shape, dtype), bytes]);
}

/** The magic, version, header length and header of a .npy file: what precedes its data. */
export function npyHeader(shape: readonly number[], dtype: DType): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${DTYPE_INFO[dtype].npy}', 'fortran_order': False, 'shape': (${dims}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1')]);
}
