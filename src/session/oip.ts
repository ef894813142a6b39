/**
 * The Open Inference Protocol over a session: array uploads and reads in OIP's tensor form, and
 * `POST .../v2/models/{function}/infer`, which calls a def of the session on the request's tensors.
 *
 * An inference binds each input to a temporary name of the session, runs the one-line program
 * `f(param=temporary, ...)` in the interpreter, and unbinds the temporaries whatever happens. The
 * function's name and its parameters come from the session's definitions and the temporaries are
 * made here, so only names that pass the name rule ever reach the parser.
 */
import type { NDArray } from '../engine/ndarray.js';
import { NAME_RE } from '../program/format.js';
import type { Value } from '../expr/compile.js';
import { parseProgram } from '../expr/index.js';
import { fail } from '../errors.js';
import { Deferred } from './deferred.js';
import { withInterpreter } from './python.js';
import { bindDecoded, type Descriptor } from './service.js';
import type { Session } from './session.js';
import { binaryParts, binarySize, datatypeOf, decodeTensor, encodeTensor, type OipTensor } from './oip-codec.js';

export interface InferRequest {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: OipTensor[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
}

export interface InferResponse {
  model_name: string;
  id?: string;
  outputs: OipTensor[];
}

/** A JSON answer, or one whose tensors' bytes follow its JSON (the binary extension). */
export interface OipAnswer<T> {
  body: T;
  parts: Uint8Array[];
}

/** Binds an uploaded OIP tensor under `name`; `bytes` is its binary part, when it has one. */
export function bindTensor(s: Session, name: string, t: OipTensor, rest?: Buffer): { existed: boolean; descriptor: Descriptor } {
  const [bytes] = rest ? binaryParts([t], rest, '') : [undefined];
  if (!rest && binarySize(t) !== undefined) throw needsBinaryBody();
  return bindDecoded(s, decodeTensor(s, name, t, bytes));
}

const needsBinaryBody = () => fail('invalid_request', '`parameters.binary_data_size` announces bytes after the JSON: send the body as application/octet-stream with the header Inference-Header-Content-Length', { field: 'parameters.binary_data_size' });

/** An array (or gradient buffer) as an OIP tensor, JSON or binary, read when the answer is. */
export function readTensor(s: Session, ref: string, o: { binary?: boolean; datatype?: 'BOOL' }): Deferred<OipAnswer<OipTensor>> {
  const a = s.resolve(ref);
  return new Deferred(() => {
    const { tensor, bytes } = encodeTensor(s, ref, a, o);
    return { body: tensor, parts: bytes ? [bytes] : [] };
  });
}

interface Param { name: string; optional: boolean }

/** The def `name` of the session, or a 404 naming `model`. */
function functionOf(s: Session, name: string) {
  const d = s.definitions.get(name);
  if (!d || d.kind !== 'function') {
    throw fail('not_found', `the session has no function \`${name}\`; a model of this session is a def of its programs (POST /ops with \`def ${name}(x): ...\`)`, { field: 'model' });
  }
  return d;
}

/** The parameters of a def, from its signature as written (`a, b=...`). */
function paramsOf(signature: string): Param[] {
  return signature.split(',').map((p) => p.trim()).filter(Boolean)
    .map((p) => ({ name: p.replace(/=.*$/, '').trim(), optional: p.includes('=') }));
}

/** A def has one version, "1"; any other is a 404 naming `version`. */
export function checkVersion(version: string | undefined): void {
  if (version !== undefined && version !== '1') throw fail('not_found', `model version ${version.slice(0, 64)} does not exist; a def of the session has one version, "1"`, { field: 'version' });
}

export function modelMetadata(s: Session, model: string, version?: string) {
  const d = functionOf(s, model);
  checkVersion(version);
  const datatype = datatypeOf(s.defaultDtype);
  // A def declares no shapes or dtypes: every dimension is variable (-1), the datatype the session's default.
  return {
    name: model,
    versions: ['1'],
    platform: 'gradserve',
    inputs: paramsOf(d.signature).map((p) => ({ name: p.name, datatype, shape: [-1] })),
    outputs: [{ name: 'output0', datatype, shape: [-1] }],
  };
}

export function modelReady(s: Session, model: string) {
  functionOf(s, model);
  return { name: model, ready: true };
}

/** What the function returned, per output: an array, or a Python number or bool. */
type Result = { array: NDArray } | { scalar: number; datatype: 'FP64' | 'INT64' | 'BOOL' };

function resultsOf(v: Value | undefined, array: (ref: string) => NDArray, model: string): Result[] {
  const one = (x: Value): Result => {
    if (x.t === 'ref') return { array: array(x.ref) };
    if (x.t === 'num') return { scalar: x.v, datatype: x.isInt ? 'INT64' : 'FP64' };
    if (x.t === 'lit' && typeof x.v === 'boolean') return { scalar: x.v ? 1 : 0, datatype: 'BOOL' };
    throw fail('invalid_argument', `function \`${model}\` returned something other than arrays and numbers; an inference answers tensors`, { field: 'model' });
  };
  if (v?.t === 'list') return v.items.map(one);
  if (!v) throw fail('invalid_argument', `function \`${model}\` returned nothing`, { field: 'model' });
  return [one(v)];
}

/** A name no binding or def of the session has, for an input while the function runs. */
function tempName(s: Session, i: number): string {
  for (let k = 0; ; k++) {
    const name = `_oip_in${i}${k ? `_${k}` : ''}`;
    if (!s.names.has(name) && !s.definitions.has(name)) return name;
  }
}

/** Which results the answer carries, under which names: `outputs` selects or names them. */
function selectOutputs(req: InferRequest, n: number): { name: string; index: number; binary: boolean }[] {
  const all = req.parameters?.binary_data_output === true;
  const binaryOf = (p?: Record<string, unknown>) => (typeof p?.binary_data === 'boolean' ? p.binary_data : all);
  const asked = req.outputs;
  if (!asked?.length) return Array.from({ length: n }, (_, i) => ({ name: `output${i}`, index: i, binary: all }));
  const byIndex = asked.every((o) => /^output\d+$/.test(o.name));
  if (!byIndex && asked.length !== n) {
    throw fail('invalid_argument', `\`outputs\` names ${asked.length} outputs but the function returned ${n}: name all of them in order, or select by output0, output1, ...`, { field: 'outputs' });
  }
  return asked.map((o, i) => {
    const index = byIndex ? Number(o.name.slice(6)) : i;
    if (index >= n) throw fail('invalid_argument', `\`outputs.${i}.name\` ${o.name}: the function returned ${n} output(s), output0 to output${n - 1}`, { field: `outputs.${i}.name` });
    return { name: o.name, index, binary: binaryOf(o.parameters) };
  });
}

function checkInputs(req: InferRequest, params: Param[], model: string): void {
  const names = new Set(params.map((p) => p.name));
  const seen = new Set<string>();
  req.inputs.forEach((t, i) => {
    if (!names.has(t.name)) {
      throw fail('invalid_argument', `\`inputs.${i}.name\` ${t.name} is not a parameter of \`${model}(${params.map((p) => p.name).join(', ')})\``, { field: `inputs.${i}.name` });
    }
    if (seen.has(t.name)) throw fail('invalid_request', `\`inputs.${i}.name\` ${t.name} is given twice`, { field: `inputs.${i}.name` });
    seen.add(t.name);
  });
  const missing = params.filter((p) => !p.optional && !seen.has(p.name)).map((p) => p.name);
  if (missing.length) throw fail('invalid_argument', `\`inputs\` lacks ${missing.join(', ')}, parameter(s) of \`${model}\` without a default`, { field: 'inputs' });
}

/** Runs `model` on the request's tensors; `rest` is the binary part of the body, when it has one. */
export function infer(s: Session, model: string, req: InferRequest, rest?: Buffer): Deferred<OipAnswer<InferResponse>> {
  const d = functionOf(s, model);
  const params = paramsOf(d.signature);
  checkInputs(req, params, model);
  const bytes = rest ? binaryParts(req.inputs, rest, 'inputs') : req.inputs.map((t) => {
    if (binarySize(t) !== undefined) throw needsBinaryBody();
    return undefined;
  });
  const temps: string[] = [];
  let results: Result[];
  try {
    const args = req.inputs.map((t, i) => {
      const temp = tempName(s, i);
      const st = decodeTensor(s, temp, t, bytes[i], `inputs.${i}`);
      bindDecoded(s, st);
      temps.push(temp);
      return `${t.name}=${temp}`;
    });
    if (![model, ...req.inputs.map((t) => t.name), ...temps].every((n) => NAME_RE.test(n))) throw new Error('internal: a name outside the name rule');
    const src = `${model}(${args.join(', ')})`;
    const ast = parseProgram(src, { maxLength: s.limits.maxExprLength, maxDepth: s.limits.maxExprDepth, maxStatements: s.limits.maxStatements });
    results = withInterpreter(s, (interp, runner) => resultsOf(interp.run(ast, src).result, (ref) => runner.array(ref), model), false);
  } finally {
    // Not a delete statement: that drains, freeing the results, which no name holds, before they are read.
    for (const t of temps) s.names.delete(t);
  }
  const chosen = selectOutputs(req, results.length);
  // Released arrays stay readable until the answer is read (Session.run), which is when this runs.
  return new Deferred(() => {
    const parts: Uint8Array[] = [];
    const outputs = chosen.map(({ name, index, binary }) => {
      const r = results[index]!;
      if ('array' in r) {
        const { tensor, bytes: b } = encodeTensor(s, name, r.array, { binary });
        if (b) parts.push(b);
        return tensor;
      }
      return scalarTensor(name, r, binary, parts);
    });
    return { body: { model_name: model, ...(req.id !== undefined ? { id: req.id } : {}), outputs }, parts };
  });
}

function scalarTensor(name: string, r: { scalar: number; datatype: 'FP64' | 'INT64' | 'BOOL' }, binary: boolean, parts: Uint8Array[]): OipTensor {
  const t: OipTensor = { name, shape: [1], datatype: r.datatype };
  if (!binary) {
    t.data = [r.datatype === 'BOOL' ? r.scalar !== 0 : Number.isFinite(r.scalar) ? r.scalar : String(r.scalar)];
    return t;
  }
  const b = Buffer.alloc(r.datatype === 'BOOL' ? 1 : 8);
  if (r.datatype === 'BOOL') b[0] = r.scalar;
  else if (r.datatype === 'INT64') b.writeBigInt64LE(BigInt(r.scalar));
  else b.writeDoubleLE(r.scalar);
  parts.push(b);
  t.parameters = { binary_data_size: b.length };
  return t;
}
