/**
 * fast-check arbitraries for hostile traffic: requests to every endpoint with valid, mutated and
 * random bodies; op programs built from the live op table (GET /v1/ops: inputs, positional
 * arguments, attrs JSON Schemas); expressions from the contract's grammar; .npy and base64
 * uploads; odd content types, tokens and paths.
 *
 * A request is generated symbolically (which session, which credentials) and resolved when it is
 * sent, so cases stay replayable and shrinkable while the harness recreates the sessions they
 * target. The witness session's token is never known to the generator: every request aimed at
 * the witness carries somebody else's credentials or none.
 */
import fc from 'fast-check';

// ---- JSON text with numbers JSON.stringify cannot write -----------------------------------

/** A number literal written verbatim into the JSON text (-0, 1e309, 40 digits, ...). */
export class Raw {
  constructor(readonly text: string) {}
  toJSON(): string { return `<raw ${this.text}>`; }
}

/** JSON.stringify, except that Raw values are emitted verbatim. */
export function toJson(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(',')}}`;
  }
  const s = JSON.stringify(v);
  return s === undefined ? 'null' : s;
}

// ---- the op table (from GET /v1/ops) -------------------------------------------------------

export interface OpInfo {
  name: string;
  aliases: string[];
  inputs: string[];
  variadic: boolean;
  positional: string[];
  attrs: JsonSchema;
}
export type JsonSchema = Record<string, any>;

/** Internal names hostile clients will try: the executor's own (_alias, _fill) and the table's internal ops, which it refuses. */
const INTERNAL_OPS: OpInfo[] = [
  { name: '_alias', aliases: [], inputs: ['data'], variadic: false, positional: [], attrs: { type: 'object', properties: {} } },
  { name: '_fill', aliases: [], inputs: [], variadic: false, positional: [], attrs: { type: 'object', properties: { value: { type: 'number' } } } },
  ...['_im2col', '_col2im'].map((name) => ({
    name, aliases: [], inputs: ['data'], variadic: false, positional: [],
    attrs: {
      type: 'object',
      properties: {
        kernel: { type: 'array', items: { type: 'integer', minimum: -2, maximum: 4 }, maxItems: 3 },
        stride: { type: 'array', items: { type: 'integer', minimum: -1, maximum: 3 }, maxItems: 3 },
        dilate: { type: 'array', items: { type: 'integer', minimum: -1, maximum: 3 }, maxItems: 3 },
        pad: { type: 'array', items: { type: 'integer', minimum: -2, maximum: 3 }, maxItems: 3 },
        padEnd: { type: 'array', items: { type: 'integer', minimum: -2, maximum: 3 }, maxItems: 3 },
        layout: { enum: ['kernel_first', 'kernel_last', 'other'] },
        fill: { enum: ['zero', 'edge', 'nan'] },
        shape: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 5 }, maxItems: 6 },
      },
    },
  })),
  {
    name: '_getitem_backward', aliases: [], inputs: ['data'], variadic: false, positional: [],
    attrs: {
      type: 'object',
      properties: {
        key: { type: 'array', maxItems: 4, items: { anyOf: [{ type: 'integer', minimum: -5, maximum: 5 }, { type: 'object', properties: { start: { type: ['integer', 'null'] }, stop: { type: ['integer', 'null'] }, step: { type: ['integer', 'null'] } } }] } },
        shape: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 5 }, maxItems: 6 },
      },
    },
  },
];

// ---- leaves ---------------------------------------------------------------------------------

/** Names the harness binds in every attacker session (see harness.ts ATTACKER_SETUP). */
export const KNOWN_NAMES = ['x', 'v', 'm', 'e', 's', 'w', 'r6', 'y', 'l', 'i3', 'b64'];

/** Keys every JavaScript object inherits: names that must stay plain data in maps and answers. */
export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'toJSON', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'valueOf', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__', 'then'];

const weirdName = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '_out1', 'grad', 'T', 'nd', 'autograd', 'None', 'True', 'result', '%r'),
  fc.constantFrom(...PROTO_KEYS),
  fc.constantFrom('a'.repeat(64), 'a'.repeat(65), 'é', '名前', 'x y', 'x.grad.grad', '.grad', '1x', '', ' x', 'x\u0000'),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
export const name = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...KNOWN_NAMES) },
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/) },
  { weight: 1, arbitrary: weirdName },
);
export const ref = fc.oneof(
  { weight: 6, arbitrary: name },
  { weight: 2, arbitrary: fc.constantFrom(...KNOWN_NAMES).map((n) => `${n}.grad`) },
);

/** Numbers as values: ordinary, boundary, and literals JSON.stringify cannot produce. */
export const number: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -4, max: 4 }) },
  { weight: 3, arbitrary: fc.constantFrom(0.5, -1.5, 1e308, -1e308, 1e39, -1e39, 3.4028235e38, 5e-324, 1e-45, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 31), 1e21, 65536, 4097) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 2, arbitrary: fc.constantFrom('-0', '1e309', '-1e309', '1e-400', '123456789012345678901234567890', '-0.0e0', '1E2', '0.1').map((t) => new Raw(t)) },
  { weight: 2, arbitrary: fc.constantFrom('NaN', 'Infinity', '-Infinity', 'nan', 'inf', '1', '') },
);

/** Any JSON value, including deep and wide ones. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: number },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }).map((k) => "x".repeat(10 ** k)) },
  { weight: 1, arbitrary: fc.constantFrom(50, 1000, 30000).map((d) => deepList(d)) },
  { weight: 1, arbitrary: fc.constantFrom(50, 1000, 10000).map((d) => deepObject(d)) },
);

/** Deep values are written as text: recursion in the generator would hit the stack first. */
export function deepList(depth: number): Raw {
  return new Raw(`${'['.repeat(depth)}1${']'.repeat(depth)}`);
}
function deepObject(depth: number): Raw {
  return new Raw(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
}

// ---- shapes and array data --------------------------------------------------------------------

/** Shapes with no elements but dimensions whose product (without the zero) overflows every integer type. */
export const HUGE_ZERO_SHAPES: number[][] = [[0, 2 ** 40], [2 ** 40, 0], [2 ** 31, 0, 2 ** 31], [0, 2 ** 53], [2 ** 53, 2 ** 53, 0], [0, 0, 2 ** 62], Array(32).fill(2 ** 31).map((d, i) => (i === 16 ? 0 : d))];

/** Small shapes, rank 0..6, zeros allowed. */
export const smallShape = fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 6 });
/** Shapes a client may send: mostly small, sometimes absurd. */
export const shape: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: smallShape },
  {
    weight: 1, arbitrary: fc.oneof(
      fc.constantFrom([-1], [2 ** 31], [2 ** 31 - 1, 2 ** 31 - 1], [65536, 65536, 65536], [1.5], ['2'], [null], Array(33).fill(1), [0, 2 ** 31 - 1], [4097], [1e300]),
      fc.constantFrom(...HUGE_ZERO_SHAPES),
      fc.array(number, { maxLength: 4 }),
    ),
  },
);
const dtype = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('float32', 'float64') }, { weight: 1, arbitrary: fc.constantFrom('float16', 'int32', 'FLOAT32', '', 'bool') });

const element: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -9, max: 9 }) },
  { weight: 2, arbitrary: fc.double({ min: -1e6, max: 1e6, noNaN: true }) },
  { weight: 2, arbitrary: number },
);

function nestedFor(shape: number[], el: () => unknown): unknown {
  if (shape.length === 0) return el();
  return Array.from({ length: shape[0] }, () => nestedFor(shape.slice(1), el));
}

/** Nested data of a small shape, sometimes ragged or with a foreign element. */
export const nestedData: fc.Arbitrary<unknown> = fc.tuple(smallShape, fc.array(element, { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 9 }), anyJson)
  .map(([sh, els, twist, junk]) => {
    let i = 0;
    const data = nestedFor(sh, () => els[i++ % els.length]);
    if (twist === 0 && Array.isArray(data)) (data as unknown[]).push(junk);           // ragged / foreign
    if (twist === 1 && Array.isArray(data) && data.length) (data as unknown[])[0] = [];  // ragged
    if (twist === 2) return [];                                                            // empty
    return data;
  });

export const base64Data = fc.oneof(
  fc.uint8Array({ maxLength: 96 }).map((b) => Buffer.from(b).toString('base64')),
  fc.constantFrom('', '====', 'AAAA', 'AAA', '!!!!', 'AAAAAAAA\n', 'A'.repeat(4097), 'AA==AA==', '////////', 'AAAAAA=='),
);

/** A .npy file: valid, or with the header, dtype, shape, order or data length twisted. */
export const npyBody: fc.Arbitrary<Buffer> = fc.record({
  descr: fc.constantFrom('<f4', '<f8', '>f4', '>f8', '<i4', '|b1', '<f2', '|u1', '<c8', 'O', "'); import os; ('"),
  fortran: fc.boolean(),
  shape: fc.oneof(smallShape, fc.constantFrom([-1], [2 ** 40], [3, 2 ** 31]), fc.constantFrom(...HUGE_ZERO_SHAPES)),
  extra: fc.integer({ min: -8, max: 8 }),
  version: fc.constantFrom(1, 2, 3, 9),
  mangle: fc.integer({ min: 0, max: 20 }),
  bytes: fc.uint8Array({ maxLength: 16 }),
}).map((o) => {
  const shp = (o.shape as number[]);
  const tuple = shp.length === 1 ? `(${shp[0]},)` : `(${shp.join(', ')})`;
  let header = `{'descr': '${o.descr}', 'fortran_order': ${o.fortran ? 'True' : 'False'}, 'shape': ${tuple}, }`;
  if (o.mangle === 0) header = header.replace('shape', 'shap');
  if (o.mangle === 1) header = header.slice(0, header.length / 2);
  if (o.mangle === 2) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'shape': (100,), }`;
  // Hostile headers: Python that is not a literal, keys that are JavaScript's, numbers numpy would reject.
  if (o.mangle === 13) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (2,), '__proto__': {'polluted': 1}, }`;
  if (o.mangle === 14) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (1e3,), }`;
  if (o.mangle === 15) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${'('.repeat(500)}1${')'.repeat(500)},), }`;
  if (o.mangle === 16) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (2, -0), 'descr': '<f8', }`;
  if (o.mangle === 17) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${Array(40).fill(1).join(', ')}), }`;
  if (o.mangle === 18) header = `{'descr': '<f4', 'fortran_order': __import__('os'), 'shape': (2,), }`;
  if (o.mangle === 19) header = `{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }`;
  if (o.mangle === 20) header = `{"descr": "<f4", "fortran_order": false, "shape": [2], }`;
  const lenBytes = o.version >= 2 ? 4 : 2;
  const pre = 6 + 2 + lenBytes;
  const total = Math.ceil((pre + header.length + 1) / 64) * 64;
  header = header.padEnd(total - pre - 1, ' ') + '\n';
  const magic = Buffer.from([0x93, ...Buffer.from('NUMPY'), o.version, 0]);
  const len = Buffer.alloc(lenBytes);
  if (lenBytes === 2) len.writeUInt16LE(o.mangle === 3 ? 0xffff : header.length); else len.writeUInt32LE(o.mangle === 3 ? 0xffffffff : header.length);
  const item = /8/.test(o.descr) ? 8 : /4/.test(o.descr) ? 4 : /2/.test(o.descr) ? 2 : 1;
  const n = shp.every((d) => d >= 0 && d < 100) ? shp.reduce((a, b) => a * b, 1) : 1;
  const dataLen = Math.max(0, n * item + o.extra);
  const data = Buffer.alloc(dataLen);
  for (let i = 0; i < dataLen; i++) data[i] = o.bytes.length ? o.bytes[i % o.bytes.length] : 0;
  let file = Buffer.concat([magic, len, Buffer.from(header, 'latin1'), data]);
  if (o.mangle === 4) file = file.subarray(0, 5);
  if (o.mangle === 5) file = Buffer.concat([Buffer.from('PK\x03\x04'), file]);
  return file;
});

/**
 * A safetensors file: valid, or with its header length, JSON header, dtypes, shapes, offsets or
 * data twisted (lengths past the file or past 2^53, overlapping and reversed offsets, keys that
 * are JavaScript's, gradients without their array, metadata that is not strings).
 */
export const safetensorsBody: fc.Arbitrary<Buffer> = fc.record({
  tensors: fc.array(fc.record({
    name: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('a', 'b', 'x', 'w', 'x.grad', 'w.grad', 'q.grad') }, { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS) }, { weight: 1, arbitrary: weirdName }),
    dtype: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('F32', 'F64') }, { weight: 1, arbitrary: fc.constantFrom('F16', 'BF16', 'I32', 'U8', 'BOOL', 'f32', '', 'C64', 'F8_E4M3') }),
    shape: fc.oneof({ weight: 5, arbitrary: smallShape }, { weight: 1, arbitrary: fc.constantFrom<unknown[]>(...HUGE_ZERO_SHAPES, [-1], [1.5], ['2'], [2 ** 40], Array(33).fill(1), [null]) }),
  }), { maxLength: 4 }),
  metadata: fc.option(fc.oneof(fc.constant({ format: 'pt' }), fc.constant({ n: 1 }), fc.constant('x'), fc.constant({ __proto__: 'x' }), anyJson), { nil: undefined }),
  twist: fc.integer({ min: 0, max: 16 }),
  at: fc.nat(),
}).map(({ tensors, metadata, twist, at }) => {
  const header: Record<string, unknown> = Object.create(null);
  let off = 0;
  const data: Buffer[] = [];
  for (const t of tensors) {
    const dims = t.shape as unknown[];
    const n = dims.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0) ? (dims as number[]).reduce((a, b) => a * b, 1) : 1;
    const bytes = Math.min(Number.isFinite(n) ? n : 1, 64) * (t.dtype === 'F64' ? 8 : t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    data.push(Buffer.alloc(bytes, 0x3f));
    off += bytes;
  }
  if (metadata !== undefined) header.__metadata__ = metadata;
  const entries = Object.values(header).filter((v): v is { data_offsets: number[] } => !!v && typeof v === 'object' && 'data_offsets' in v);
  const first = entries[at % Math.max(1, entries.length)];
  if (first && twist === 1) first.data_offsets = [0, off + 8];                    // past the data
  if (first && twist === 2) first.data_offsets = [4, 0];                          // reversed
  if (first && twist === 3) first.data_offsets = [-4, 4];
  if (first && twist === 4) first.data_offsets = [0, 2 ** 53 + 2];
  if (first && twist === 5) first.data_offsets = [0.5, 4];
  if (first && twist === 6) first.data_offsets = [0] as number[];
  if (entries.length > 1 && twist === 7) entries[1].data_offsets = entries[0].data_offsets; // overlapping
  let text = JSON.stringify(header);
  if (twist === 8) text = text.slice(0, Math.max(1, text.length - 3));            // truncated JSON
  if (twist === 9) text = `${text.slice(0, -1)},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`; // duplicate key
  if (twist === 10) text = '[]';
  if (twist === 11) text = `${text}${' '.repeat(7)}`;                                // padded, as the format allows
  if (twist === 12) text = '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  const head = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  if (twist === 13) len.writeBigUInt64LE(2n ** 64n - 1n);                         // a length no file has
  if (twist === 14) len.writeBigUInt64LE(BigInt(head.length + 1_000_000));
  if (twist === 15) len.writeBigUInt64LE(0n);
  let file = Buffer.concat([len, head, ...data]);
  if (twist === 16) file = file.subarray(0, Math.min(file.length, 5));
  return file;
});

// ---- attrs from JSON Schema -------------------------------------------------------------------

/** A value for a JSON Schema: valid most of the time, the wrong kind of value otherwise. */
export function fromSchema(s: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const wrong = fc.oneof(number, fc.constantFrom(null, true, 'x', [], {}, [1, 2, 3], [[1]], -1, 2 ** 53, 1e300), anyJson);
  if (!s || depth > 4) return wrong;
  const valid = validFromSchema(s, depth);
  return fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: wrong });
}

function validFromSchema(s: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (Array.isArray(s.enum)) return fc.constantFrom(...s.enum);
  const alts = s.anyOf ?? s.oneOf;
  if (Array.isArray(alts) && alts.length) return fc.oneof(...alts.map((a: JsonSchema) => validFromSchema(a, depth + 1)));
  const types: string[] = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length > 1) return fc.oneof(...types.map((t) => validFromSchema({ ...s, type: t }, depth)));
  switch (types[0]) {
    case 'null': return fc.constant(null);
    case 'boolean': return fc.boolean();
    case 'integer': {
      // Small values are where the interesting shape logic is; the extremes test the checks.
      const lo = Math.max(s.minimum ?? -4, -4);
      const hi = Math.min(s.maximum ?? 6, 6);
      return fc.oneof({ weight: 6, arbitrary: fc.integer({ min: Math.min(lo, hi), max: Math.max(lo, hi) }) }, { weight: 1, arbitrary: fc.constantFrom(s.minimum ?? -(2 ** 31), s.maximum ?? 2 ** 31, 2 ** 31 - 1, -1, 0, 4096) });
    }
    case 'number': return fc.oneof(fc.double({ min: -3, max: 3, noNaN: true }), number);
    case 'string': return fc.oneof(fc.string({ maxLength: 8 }), fc.constant('x'.repeat(5000)));
    case 'array': {
      const max = Math.min(s.maxItems ?? 6, 6);
      return fc.array(s.items ? validFromSchema(s.items, depth + 1) : anyJson, { maxLength: max });
    }
    case 'object': {
      const props = Object.entries((s.properties ?? {}) as Record<string, JsonSchema>);
      if (!props.length) return fc.constant({});
      return fc.record(Object.fromEntries(props.map(([k, v]) => [k, validFromSchema(v, depth + 1)])), { requiredKeys: [] });
    }
    default: return anyJson;
  }
}

/** An attrs object for an op: a random subset of its properties, sometimes unknown keys. */
export function attrsFor(op: OpInfo): fc.Arbitrary<Record<string, unknown> | undefined> {
  const props = Object.entries((op.attrs?.properties ?? {}) as Record<string, JsonSchema>);
  const rec = props.length
    ? fc.record(Object.fromEntries(props.map(([k, v]) => [k, fromSchema(v)])), { requiredKeys: [] })
    : fc.constant({});
  return fc.oneof(
    { weight: 6, arbitrary: rec as fc.Arbitrary<Record<string, unknown>> },
    { weight: 1, arbitrary: fc.tuple(rec, fc.constantFrom('bogus', '__proto__', 'constructor', 'out', 'dtype', 'shape', 'axis'), anyJson).map(([r, k, v]) => ({ ...(r as object), [k]: v })) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

// ---- op programs ------------------------------------------------------------------------------

/** An op argument: a reference, a scalar, or an inline constant. */
export const arg: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: ref },
  { weight: 3, arbitrary: number },
  { weight: 3, arbitrary: nestedData },
  { weight: 1, arbitrary: anyJson },
);

export function programArb(ops: OpInfo[]): fc.Arbitrary<unknown[]> {
  const all = [...ops, ...INTERNAL_OPS];
  const opStatement = fc.constantFrom(...all).chain((op) => {
    const opName = fc.oneof({ weight: 8, arbitrary: fc.constant(op.name) }, { weight: op.aliases.length ? 2 : 0, arbitrary: fc.constantFrom(op.name, ...op.aliases) }, { weight: 1, arbitrary: fc.constantFrom(op.name.toUpperCase(), `${op.name} `, 'nd.' + op.name, 'eval', '') });
    const nArgs = op.variadic ? fc.integer({ min: 0, max: 5 }) : fc.integer({ min: Math.max(0, op.inputs.length - 1), max: op.inputs.length + op.positional.length + 1 });
    const args = nArgs.chain((n) => fc.array(arg, { minLength: n, maxLength: n }));
    const out = fc.oneof(
      { weight: 5, arbitrary: name },
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.array(name, { minLength: 1, maxLength: 4 }) },
      { weight: 1, arbitrary: anyJson },
    );
    return fc.record({
      op: opName,
      args: fc.oneof({ weight: 9, arbitrary: args }, { weight: 1, arbitrary: anyJson }),
      attrs: attrsFor(op),
      target: fc.oneof({ weight: 6, arbitrary: out.map((o) => ({ out: o })) }, { weight: 2, arbitrary: ref.map((r) => ({ into: r })) }, { weight: 1, arbitrary: fc.tuple(name, ref).map(([o, r]) => ({ out: o, into: r })) }),
    }).map(({ op, args, attrs, target }) => ({ op, args, ...(attrs === undefined ? {} : { attrs }), ...target }));
  });
  const backward = fc.record({
    op: fc.constant('backward'),
    args: fc.array(ref, { minLength: 0, maxLength: 3 }),
    attrs: fc.option(fc.record({ head_grads: fc.array(fc.oneof(fc.constant(null), arg), { maxLength: 3 }), retain_graph: fc.oneof(fc.boolean(), anyJson), train_mode: fc.boolean() }, { requiredKeys: [] }), { nil: undefined }),
  });
  const del = fc.record({ op: fc.constant('delete'), args: fc.oneof({ weight: 4, arbitrary: fc.array(name, { maxLength: 3 }) }, { weight: 1, arbitrary: anyJson }) }, { requiredKeys: ['op'] });
  const dtypeArg = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('float32', 'float64') }, { weight: 1, arbitrary: anyJson });
  // An upload inside the program: data and shape that agree, disagree, or describe no elements at all.
  const frombuffer = fc.record({
    shape: fc.oneof({ weight: 4, arbitrary: smallShape }, { weight: 1, arbitrary: fc.constantFrom<unknown[]>(...HUGE_ZERO_SHAPES) }, { weight: 1, arbitrary: shape }),
    dtype: dtypeArg,
    data: fc.option(base64Data, { nil: undefined }),
    out: name,
  }).map(({ shape: sh, dtype: dt, data, out }) => {
    const dims = sh as unknown[];
    const n = dims.every((d) => typeof d === 'number' && d >= 0 && d < 100) ? (dims as number[]).reduce((a, b) => a * b, 1) : 0;
    const fitting = Buffer.alloc(n * (dt === 'float64' ? 8 : 4), 0x40).toString('base64');
    return { op: 'frombuffer', attrs: { data: data ?? fitting, shape: sh, dtype: dt }, out };
  });
  const keyItem = fc.oneof(
    fc.integer({ min: -4, max: 4 }),
    fc.record({ start: fc.option(fc.integer({ min: -5, max: 5 })), stop: fc.option(fc.integer({ min: -5, max: 5 })), step: fc.option(fc.integer({ min: -2, max: 2 })) }, { requiredKeys: [] }),
    fc.constantFrom(null, 2 ** 31, -(2 ** 53), 1.5, 'x', [], { start: 2 ** 40 }, { step: 0 }),
  );
  const sliceAssign = fc.record({
    opName: fc.constantFrom('slice_assign', 'setitem', '__setitem__'),
    args: fc.oneof({ weight: 5, arbitrary: fc.tuple(ref, fc.oneof(ref, number, nestedData)) }, { weight: 1, arbitrary: fc.array(arg, { maxLength: 3 }) }),
    key: fc.oneof({ weight: 5, arbitrary: fc.array(keyItem, { maxLength: 4 }) }, { weight: 1, arbitrary: anyJson }),
    target: fc.oneof(ref.map((r) => ({ into: r })), name.map((o) => ({ out: o }))),
  }).map(({ opName, args, key, target }) => ({ op: opName, args, attrs: { key }, ...target }));
  // The runner's own statements, which a client must not be able to send.
  const internal = fc.oneof(
    fc.record({ op: fc.constant('enter'), kind: fc.constantFrom('record', 'pause', 'x') }),
    fc.constant({ op: 'exit' }),
    fc.record({ op: fc.constant('bind'), out: name, dtype: dtypeArg, shape: smallShape, values: fc.array(number, { maxLength: 4 }) }),
  );
  const attach = fc.record({ op: fc.constant('attach_grad'), args: fc.oneof(fc.tuple(name), fc.array(name, { maxLength: 3 })), attrs: fc.option(fc.record({ grad_req: fc.oneof(fc.constantFrom('write', 'add', 'null'), anyJson) }), { nil: undefined }) });
  const tree = fc.letrec<{ st: unknown; body: unknown[] }>((tie) => ({
    st: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 8, arbitrary: opStatement },
      { weight: 2, arbitrary: backward },
      { weight: 1, arbitrary: attach },
      { weight: 1, arbitrary: del },
      { weight: 2, arbitrary: frombuffer },
      { weight: 2, arbitrary: sliceAssign },
      { weight: 1, arbitrary: internal },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant('scope'),
          kind: fc.oneof(fc.constantFrom('record', 'pause', 'train_mode', 'predict_mode'), fc.constantFrom('Record', 'none', '')),
          train_mode: fc.option(fc.boolean(), { nil: undefined }),
          body: tie('body'),
        }),
      },
      { weight: 1, arbitrary: anyJson },
    ),
    body: fc.array(tie('st'), { maxLength: 5 }),
  }));
  return fc.oneof(
    { weight: 10, arbitrary: fc.array(tree.st, { minLength: 1, maxLength: 6 }) },
    // Deep scope nesting: recursion in validation, preparation and the runner.
    { weight: 1, arbitrary: fc.constantFrom(10, 200, 3000).map((d) => [deepScope(d)]) },
    // Many statements: the statement quota.
    { weight: 1, arbitrary: fc.integer({ min: 50, max: 300 }).map((n) => Array.from({ length: n }, () => ({ op: 'add', args: ['x', 1], out: 'q' }))) },
    // A deep recorded chain, then backward through all of it (the tape-node limit, recursion in backward).
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(20, 60, 62, 63, 200), fc.boolean()).map(([n, retain]) => [deepRecordedChain(n), { op: 'backward', args: ['q'], attrs: { retain_graph: retain } }]) },
  );
}

function deepRecordedChain(n: number): unknown {
  const body: unknown[] = [{ op: 'multiply', args: ['x', 1], out: 'q' }];
  for (let i = 1; i < n; i++) body.push({ op: i % 2 ? 'tanh' : 'multiply', args: i % 2 ? ['q'] : ['q', 1.01], out: 'q' });
  return { op: 'scope', kind: 'record', body };
}

function deepScope(depth: number): Raw {
  let open = '';
  for (let i = 0; i < depth; i++) open += `{"op":"scope","kind":"${i % 2 ? 'record' : 'pause'}","body":[`;
  return new Raw(`${open}{"op":"multiply","args":["x",2],"out":"d"}${']}'.repeat(depth)}`);
}

// ---- expressions from the grammar -------------------------------------------------------------

const BINOPS = ['+', '-', '*', '/', '**', '@', '==', '!=', '<', '<=', '>', '>='];
const METHODS = ['sum', 'mean', 'norm', 'reshape', 'asscalar', 'astype', 'detach', 'copy', 'exp', 'log', 'transpose', 'max', 'argmax', 'flatten', 'expand_dims', 'squeeze', 'softmax', 'abs', 'clip', 'tile', 'repeat', 'broadcast_to', 'take', 'pick', 'one_hot', 'zeros_like', 'split', 'slice_axis', 'sqrt', 'relu', 'attach_grad', 'backward', '__class__', '__init__', 'constructor'];

const numLit = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 9 }).map(String) },
  { weight: 2, arbitrary: fc.constantFrom('0.5', '1e309', '1e-400', '-0', '0.0', '3.4e38', '1e39', '123456789012345678901234567890', '.5', '5.', '1_000', '0x10', '1e', '2**1024', '9007199254740993', 'NaN', 'inf', 'nan', '1j', '0b1') },
);

const kwName = fc.constantFrom('axis', 'keepdims', 'shape', 'dtype', 'out', 'ord', 'transpose_a', 'head_grads', 'train_mode', 'retain_graph', 'num_outputs', 'depth', 'repeats', 'reps', 'a_min', 'a_max', 'loc', 'scale', 'p', 'mode', 'bogus', 'ctx');

export function exprArb(ops: OpInfo[]): fc.Arbitrary<string> {
  const opNames = [...new Set(ops.flatMap((o) => [o.name, ...o.aliases])), 'random.normal', 'random.uniform', 'nope', 'eval', '__import__', 'exec', 'open'];
  const e = fc.letrec<{ expr: string; atom: string; list: string }>((tie) => ({
    atom: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...KNOWN_NAMES) },
      { weight: 2, arbitrary: fc.constantFrom(...KNOWN_NAMES).map((n) => `${n}.grad`) },
      { weight: 4, arbitrary: numLit },
      { weight: 1, arbitrary: fc.constantFrom('None', 'True', 'False', '"str"', "'s'", '...', '√', 'é', 'x.grad.grad', 'nd', 'autograd', 'nd.nd', 'x.__class__', 'lambda: 1') },
    ),
    list: fc.oneof(
      fc.array(tie('expr'), { maxLength: 4 }).map((xs) => `[${xs.join(', ')}]`),
      fc.array(numLit, { maxLength: 4 }).map((xs) => `(${xs.join(', ')}${xs.length === 1 ? ',' : ''})`),
    ),
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 6, arbitrary: tie('atom') },
      { weight: 3, arbitrary: fc.tuple(tie('expr'), fc.constantFrom(...BINOPS), tie('expr')).map(([a, o, b]) => `${a} ${o} ${b}`) },
      { weight: 1, arbitrary: tie('expr').map((a) => `-${a}`) },
      { weight: 1, arbitrary: tie('expr').map((a) => `(${a})`) },
      { weight: 1, arbitrary: tie('list') },
      {
        weight: 3,
        arbitrary: fc.tuple(fc.constantFrom(...opNames), fc.boolean(), fc.array(tie('expr'), { maxLength: 3 }), fc.array(fc.tuple(kwName, tie('expr')), { maxLength: 2 }))
          .map(([op, prefix, args, kws]) => `${prefix ? 'nd.' : ''}${op}(${[...args, ...kws.map(([k, v]) => `${k}=${v}`)].join(', ')})`),
      },
      {
        weight: 2,
        arbitrary: fc.tuple(tie('atom'), fc.constantFrom(...METHODS), fc.array(tie('expr'), { maxLength: 2 }), fc.array(fc.tuple(kwName, tie('expr')), { maxLength: 1 }))
          .map(([a, m, args, kws]) => `${a}.${m}(${[...args, ...kws.map(([k, v]) => `${k}=${v}`)].join(', ')})`),
      },
      { weight: 1, arbitrary: tie('atom').map((a) => `${a}.T`) },
      {
        weight: 2,
        arbitrary: fc.tuple(tie('atom'), fc.array(fc.oneof(fc.integer({ min: -4, max: 4 }).map(String), fc.constantFrom(':', '1:3', '::-1', '::0', '-1:', ':, 1:3', '10**9', '2**63', 'None', '...', 'x', '1.5', ':::')), { minLength: 1, maxLength: 3 }))
          .map(([a, ks]) => `${a}[${ks.join(', ')}]`),
      },
    ),
  }));
  const target = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KNOWN_NAMES, 'q', 'z') }, { weight: 1, arbitrary: weirdName.filter((n) => !/[\n\r]/.test(n)) });
  const statement = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(target, e.expr).map(([t, x]) => `${t} = ${x}`) },
    { weight: 2, arbitrary: e.expr },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...KNOWN_NAMES), fc.constantFrom('[:]', '[0]', '[:, 1]', '[...]', ''), e.expr).map(([t, k, x]) => `${t}${k} = ${x}`) },
    { weight: 1, arbitrary: fc.constantFrom(...KNOWN_NAMES).map((n) => `${n}.backward()`) },
    { weight: 1, arbitrary: fc.constantFrom(...KNOWN_NAMES).map((n) => `${n}.attach_grad()`) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...KNOWN_NAMES), e.expr).map(([n, g]) => `autograd.backward([${n}], head_grads=[${g}])`) },
    { weight: 1, arbitrary: fc.array(target, { minLength: 0, maxLength: 3 }).map((ns) => `del ${ns.join(', ')}`) },
    { weight: 1, arbitrary: fc.tuple(target, fc.constantFrom('+=', '-=', '*=', '/=', '**=', '@=', '//='), e.expr).map(([t, o, x]) => `${t} ${o} ${x}`) },
    { weight: 1, arbitrary: fc.tuple(target, target, e.expr).map(([a, b, x]) => `${a} = ${b} = ${x}`) },
  );
  const block = fc.tuple(fc.constantFrom('autograd.record()', 'autograd.record(train_mode=False)', 'autograd.pause()', 'autograd.train_mode()', 'autograd.predict_mode()', 'record()', 'autograd.nope()', 'open("x")'), fc.array(statement, { minLength: 0, maxLength: 3 }), fc.constantFrom('    ', '\t', '  ', ''))
    .map(([w, body, ind]) => `with ${w}:\n${body.map((b) => ind + b).join('\n')}`);
  // Control flow, definitions and the builtins: loops that end, loops that only a budget ends,
  // recursion, custom Functions, and attribute probes that must lead nowhere.
  const cond = fc.oneof(e.expr, fc.constantFrom('True', 'False', 'x.sum().asscalar() > 0', 'x', 'not x', 'x and 0 or 1', '1 if x else 0', 'len(x) == 2', 'x.shape', 'i3 < 3'));
  const iterable = fc.constantFrom('range(3)', 'range(-2)', 'range(10**9)', 'range(0, 10, 0)', '[1, 2]', '(x, y)', 'x', '"ab"', 'enumerate([x])', 'zip([1], [x])', 'f', 'None');
  const py = fc.constantFrom('pass', 'break', 'continue', 'return x', 'return', 'print(x, len([1]))', 'assert x', 'assert False, "m"', 'i3 = i3 + 1', 'q = f(x)', 'q = f(q)',
    'q = g(3)', 'q = S()(x)', 'x.__class__', 'f.__globals__', 'print.__self__', 'q = super()', 'del f', 'q = isinstance(x, tuple)', 'q, z = (x, 1)', 'q.a = 1', 'q = abs(-1) + max(1, 2) + min([3])');
  const line = fc.oneof({ weight: 3, arbitrary: statement }, { weight: 2, arbitrary: py });
  const indent = (xs: string[], ind: string) => xs.map((b) => ind + b.replace(/\n/g, `\n${ind}`)).join('\n');
  const control = fc.oneof(
    fc.tuple(cond, fc.array(line, { minLength: 1, maxLength: 2 }), fc.array(line, { maxLength: 2 })).map(([c, a, b]) => `if ${c}:\n${indent(a, '    ')}${b.length ? `\nelif ${c}:\n${indent(b, '    ')}\nelse:\n    pass` : ''}`),
    fc.tuple(cond, fc.array(line, { minLength: 1, maxLength: 2 })).map(([c, body]) => `while ${c}:\n${indent(body, '  ')}`),
    fc.array(line, { minLength: 1, maxLength: 2 }).map((body) => `while True:\n${indent(body, '  ')}`),
    fc.tuple(iterable, fc.array(line, { minLength: 1, maxLength: 2 })).map(([it, body]) => `for i3 in ${it}:\n${indent(body, '\t')}`),
    fc.tuple(fc.constantFrom('f', 'g', 'x', 'print', 'range'), fc.constantFrom('a', 'a, b=2', 'a=x', '*a', 'a, a'), fc.array(line, { minLength: 1, maxLength: 3 }))
      .map(([n, ps, body]) => `def ${n}(${ps}):\n${indent(body, '    ')}`),
    fc.constantFrom('def g(n):\n    return g(n + 1)', 'def g(n):\n    return 1 if n < 1 else n * g(n - 1)',
      'class S(autograd.Function):\n    def forward(self, a):\n        self.save_for_backward(a)\n        return a * 2\n    def backward(self, d):\n        a, = self.saved_tensors\n        return d * a',
      'class S(object):\n    def __init__(self):\n        self.k = 1', 'class S(os.Thing):\n    pass'),
  );
  const program = fc.array(fc.oneof({ weight: 5, arbitrary: statement }, { weight: 1, arbitrary: block }, { weight: 3, arbitrary: control }), { minLength: 1, maxLength: 5 })
    .chain((sts) => fc.constantFrom('\n', '; ', '\r\n', ';;', '\n\n  ').map((sep) => sts.join(sep)));
  const hugeZero = fc.tuple(fc.constantFrom('nd.zeros', 'nd.ones', 'nd.random.normal', 'x.reshape', 'x.broadcast_to', 'nd.full'), fc.constantFrom(...HUGE_ZERO_SHAPES.slice(0, 6)))
    .map(([f, sh]) => `q = ${f}(${f === 'nd.random.normal' ? 'shape=' : ''}(${sh.join(', ')})${f === 'nd.full' ? ', 2' : ''})\nq.sum()`);
  const deepChain = fc.tuple(fc.constantFrom(10, 60, 130, 300), fc.constantFrom('q * 1.01', 'nd.tanh(q)', 'q + x', 'q.sum() * x', 'q[:]')).map(([n, step]) => [
    'x.attach_grad()', 'with autograd.record():', '    q = x * 1', ...Array.from({ length: n }, () => `    q = ${step}`), 'q.backward()', 'x.grad',
  ].join('\n'));
  const programStatements = fc.tuple(fc.constantFrom(...PROTO_KEYS.filter((k) => /^[A-Za-z_]\w*$/.test(k))), fc.constantFrom(0, 1, 2, 3)).map(([k, how]) => [
    `${k} = nd.ones((2, 3))`,
    [`${k}[0] = 5`, `${k}[:, 1:] = x[:, :2]`, `del ${k}`, `with autograd.record():\n    ${k} = ${k} * 2\n${k}.backward()`][how],
    `${k}.sum()`,
  ].join('\n'));
  return fc.oneof(
    { weight: 12, arbitrary: program },
    { weight: 1, arbitrary: hugeZero },
    { weight: 1, arbitrary: deepChain },
    { weight: 1, arbitrary: programStatements },
    // Deep nesting and long inputs: the parser's limits and its recursion.
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('(', '[', '-', 'nd.exp(', 'x[', '+'), fc.constantFrom(10, 31, 32, 33, 64, 255, 256, 257, 3000, 50000)).map(([o, d]) => `q = ${o.repeat(d)}1${closer(o).repeat(d)}`) },
    { weight: 1, arbitrary: fc.constantFrom(100, 5000, 200000).map((n) => `q = ${Array.from({ length: n }, () => '1').join(' + ')}`) },
    // Mutations of a valid program: a character dropped, duplicated or replaced by anything.
    { weight: 2, arbitrary: fc.tuple(program, fc.nat(), fc.string({ unit: 'binary', maxLength: 3 }), fc.constantFrom(0, 1, 2)).map(([p, i, c, how]) => mutate(p, i, c, how)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  );
}

function closer(o: string): string {
  return o === '(' || o === 'nd.exp(' ? ')' : o === '[' || o === 'x[' ? ']' : '';
}

function mutate(p: string, i: number, c: string, how: number): string {
  const at = p.length ? i % p.length : 0;
  if (how === 0) return p.slice(0, at) + p.slice(at + 1);
  if (how === 1) return p.slice(0, at) + p[at] + p.slice(at);
  return p.slice(0, at) + c + p.slice(at + 1);
}
