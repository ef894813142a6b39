/**
 * What each endpoint does to a session, without HTTP: the route handlers call these inside
 * `session.run`, so they see the session alone and in arrival order.
 */
import { NDArray, sizeOf, type GradReq } from '../engine/ndarray.js';
import { itemSize, type DType } from '../engine/backend.js';
import { decodeBase64, parseNested, parseNpy, toFlat, toNested, writeNpy } from './codec.js';
import { ProgramRunner } from './program.js';
import { runBackward, runGrad } from './autograd.js';
import type { Session } from './session.js';
import type { Statement, Arg } from '../http/schemas/program.js';
import { compileExpression } from '../expr/index.js';
import { tapeToJson, tapeToDot } from '../autograd/render.js';
import { fail } from '../errors.js';
import { Deferred } from './deferred.js';

export type Format = 'nested' | 'flat' | 'base64';

export interface Descriptor {
  name: string;
  shape: number[];
  dtype: DType;
  grad_req: GradReq | null;
  recorded: boolean;
  /** The tape that recorded the array, while it has history (so a client can draw it). */
  tape?: string;
  data?: unknown;
  format?: Format;
}

export function encodeData(s: Session, a: NDArray, format: Format): unknown {
  const be = s.memory.backend;
  // A view may cover part of a larger storage only through reshape, which keeps the size.
  if (format === 'base64') return Buffer.from(be.readBytes(a.storage)).toString('base64');
  const values = be.readNumbers(a.storage);
  return format === 'flat' ? toFlat(values, a.dtype) : toNested(values, a.shape, a.dtype);
}

export function describe(s: Session, name: string, a: NDArray, format?: Format | null): Descriptor {
  const d: Descriptor = {
    name,
    shape: [...a.shape],
    dtype: a.dtype,
    grad_req: a.gradReq,
    recorded: a.recorded,
  };
  if (a.recorded) d.tape = a.node!.tape.id;
  if (format) {
    d.data = new Deferred(() => encodeData(s, a, format));
    d.format = format;
  }
  return d;
}

export interface ArrayInput {
  data?: unknown;
  data_base64?: string;
  shape?: number[];
  dtype?: DType;
}

/** Builds a new array from a JSON body (nested, flat + shape, or base64 + shape). */
export function arrayFromBody(s: Session, body: ArrayInput): NDArray {
  const dtype = body.dtype ?? s.defaultDtype;
  if (body.data_base64 !== undefined) {
    const shape = body.shape!;
    if (sizeOf(shape) > s.limits.maxArrayElements) throw fail('array_too_large', `shape [${shape.join(', ')}] has more than ${s.limits.maxArrayElements} elements`, { limit: 'array_elements' });
    const bytes = decodeBase64(body.data_base64, shape, dtype);
    const a = s.k.alloc(dtype, shape);
    s.memory.backend.writeBytes(a.storage, bytes);
    return a;
  }
  const { values, shape } = parseNested(body.data, body.shape);
  const a = s.k.alloc(dtype, shape);
  s.memory.backend.writeNumbers(a.storage, values);
  return a;
}

export function arrayFromNpy(s: Session, buf: Buffer, dtype?: DType): NDArray {
  const npy = parseNpy(buf);
  const dt = dtype ?? npy.dtype ?? s.defaultDtype;
  const a = s.k.alloc(dt, npy.shape);
  const data = npy.bytesFor(dt);
  if (data instanceof Float64Array) s.memory.backend.writeNumbers(a.storage, data);
  else s.memory.backend.writeBytes(a.storage, data);
  return a;
}

export function toNpy(s: Session, a: NDArray): Deferred<Buffer> {
  return new Deferred(() => writeNpy(s.memory.backend.readBytes(a.storage), a.shape, a.dtype));
}

/** Binds name to a; answers whether the name was bound before. */
export function bindArray(s: Session, name: string, a: NDArray): boolean {
  const existed = s.names.has(name);
  s.names.set(name, a);
  return existed;
}

export function deleteArray(s: Session, name: string): void {
  if (!s.names.delete(name)) throw fail('not_found', `array \`${name}\` is not bound in this session`, { array: name });
}

export function listArrays(s: Session): Descriptor[] {
  return [...s.names].map(([n, a]) => describe(s, n, a));
}

export function readGrad(s: Session, name: string, format: Format | null): Descriptor {
  const a = s.resolve(name);
  if (!a.grad) throw fail('no_grad', `array \`${name}\` has no gradient buffer; call attach-grad on it first`, { array: name });
  return describe(s, `${name}.grad`, a.grad, format);
}

export function attachGrad(s: Session, name: string, req: GradReq): Descriptor {
  const a = s.resolve(name);
  s.attachGrad(a, req);
  return describe(s, name, a);
}

/** Resolves a head gradient argument: null, a reference, or an inline constant. */
function headGradArg(s: Session, g: Arg | null | undefined, head: NDArray): NDArray | null {
  if (g === null || g === undefined) return null;
  if (typeof g === 'string') return s.resolve(g);
  const { values, shape } = parseNested(g);
  const a = s.k.alloc(head.dtype, shape);
  s.memory.backend.writeNumbers(a.storage, values);
  return a;
}

function gradsAnswer(s: Session, leaves: NDArray[], hints: string[] = []): Record<string, Descriptor> {
  const out: Record<string, Descriptor> = {};
  for (const leaf of leaves) {
    const name = s.nameOf(leaf, hints.find((h) => s.names.get(h) === leaf));
    if (name && leaf.grad) out[name] = describe(s, `${name}.grad`, leaf.grad);
  }
  return out;
}

export interface BackwardInput {
  heads: string[];
  head_grads?: (Arg | null)[];
  retain_graph?: boolean;
  train_mode?: boolean;
}

export function backwardHeads(s: Session, input: BackwardInput): Record<string, Descriptor> {
  const heads = input.heads.map((h) => s.resolve(h));
  const headGrads = (input.head_grads ?? heads.map(() => null)).map((g, i) => headGradArg(s, g, heads[i] ?? heads[0]));
  const leaves = runBackward(s, { heads, headGrads, retainGraph: input.retain_graph ?? false, trainMode: input.train_mode ?? true });
  return gradsAnswer(s, leaves);
}

export interface GradInput extends BackwardInput {
  variables: string[];
  create_graph?: boolean;
  out?: string[];
}

export function gradOf(s: Session, input: GradInput): Record<string, Descriptor> {
  const heads = input.heads.map((h) => s.resolve(h));
  const headGrads = (input.head_grads ?? heads.map(() => null)).map((g, i) => headGradArg(s, g, heads[i] ?? heads[0]));
  const variables = input.variables.map((v) => s.resolve(v));
  if (input.out && input.out.length !== variables.length) {
    throw fail('invalid_argument', `\`out\` has ${input.out.length} names for ${variables.length} variables`, { arg: 'out' });
  }
  const createGraph = input.create_graph ?? false;
  const grads = runGrad(s, {
    heads, headGrads, variables, variableNames: input.variables, createGraph,
    retainGraph: input.retain_graph ?? createGraph, trainMode: input.train_mode ?? true,
  });
  const answer: Record<string, Descriptor> = {};
  grads.forEach((g, i) => {
    const name = input.out?.[i];
    if (name) s.names.set(name, g);
    answer[input.variables[i]] = describe(s, name ?? `${input.variables[i]}.grad`, g, name ? null : 'nested');
  });
  return answer;
}

export interface OpsInput {
  ops?: Statement[];
  expr?: string;
  record?: boolean;
  train_mode?: boolean;
  fetch?: boolean | string[];
  format?: Format;
}

export interface OpsAnswer {
  outputs: Record<string, Descriptor>;
  result?: number | string | Descriptor;
}

function scalarJson(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

export function runOps(s: Session, input: OpsInput): OpsAnswer {
  if ((input.ops === undefined) === (input.expr === undefined)) {
    throw fail('invalid_request', 'give exactly one of `ops` (a JSON program) or `expr` (an expression)');
  }
  let program: Statement[];
  let resultName: string | undefined;
  if (input.expr !== undefined) {
    const c = compileExpression(input.expr, { maxLength: s.limits.maxExprLength, maxDepth: s.limits.maxExprDepth, maxStatements: s.limits.maxStatements });
    program = c.statements;
    resultName = c.result;
  } else {
    program = input.ops!;
  }
  if (input.record) program = [{ op: 'scope', kind: 'record', train_mode: input.train_mode, body: program }];
  else if (input.train_mode !== undefined) program = [{ op: 'scope', kind: input.train_mode ? 'train_mode' : 'predict_mode', body: program }];

  const outcome = new ProgramRunner(s).run(program, resultName);
  const format = input.format ?? 'nested';
  const fetch = new Set(input.fetch === true ? outcome.bound : Array.isArray(input.fetch) ? input.fetch : []);
  const outputs: Record<string, Descriptor> = {};
  for (const name of outcome.bound) {
    const a = s.names.get(name);
    if (a) outputs[name] = describe(s, name, a, fetch.has(name) ? format : null);
  }
  for (const ref of fetch) {
    if (!outputs[ref]) outputs[ref] = describe(s, ref, s.resolve(ref), format);
  }
  const answer: OpsAnswer = { outputs };
  if (outcome.result) {
    const { array, scalar } = outcome.result;
    if (scalar) {
      answer.result = new Deferred(() => {
        const v = s.memory.backend.readNumbers(array.storage)[0];
        return scalarJson(array.dtype === 'float32' ? (toFlat(Float64Array.of(v), 'float32')[0] as number) : v);
      }) as unknown as number;
    } else {
      answer.result = describe(s, resultName!.startsWith('%') ? 'result' : resultName!, array, format);
    }
  }
  return answer;
}

export function autogradState(s: Session) {
  return {
    is_recording: s.scopes.isRecording,
    is_training: s.scopes.isTraining,
    scopes: s.scopes.describe(),
  };
}

export function sessionInfo(s: Session) {
  let nodes = 0;
  for (const t of s.tapes.values()) nodes += t.nodes.filter((n) => !n.freed).length;
  return {
    id: s.id,
    created_at: s.createdAt.toISOString(),
    expires_at: s.expiresAt.toISOString(),
    ttl_seconds: s.ttlMs / 1000,
    seed: s.seed,
    default_dtype: s.defaultDtype,
    arrays: s.names.size,
    bytes: s.memory.bytes,
    peak_bytes: s.memory.peakBytes,
    buffers: s.memory.buffers,
    tapes: s.tapes.size,
    tape_nodes: nodes,
    is_recording: s.scopes.isRecording,
    is_training: s.scopes.isTraining,
    limits: { bytes: s.limits.maxSessionBytes, array_elements: s.limits.maxArrayElements, tape_nodes: s.limits.maxTapeNodes, statements: s.limits.maxStatements },
  };
}

export function listTapes(s: Session) {
  return [...s.tapes.values()].map((t) => {
    const live = t.nodes.filter((n) => !n.freed);
    let saved = 0;
    for (const n of live) {
      for (const v of [...n.x, ...n.y]) if (v instanceof NDArray) saved += v.size * itemSize(v.dtype);
    }
    return { id: t.id, created_at: t.createdAt.toISOString(), open: t.open, nodes: live.length, saved_bytes: saved };
  });
}

export function getTape(s: Session, tid: string, format: 'json' | 'dot'): unknown {
  const t = s.tapes.get(tid);
  if (!t) throw fail('not_found', `there is no tape \`${tid}\` in this session (GET /tapes lists them)`, { tape: tid });
  const names = new Map<number, string>();
  for (const [n, a] of s.names) if (!names.has(a.id)) names.set(a.id, n);
  const nameOf = (id: number) => names.get(id);
  return format === 'dot' ? tapeToDot(t, nameOf) : tapeToJson(t, nameOf);
}

export function deleteTape(s: Session, tid: string): void {
  const t = s.tapes.get(tid);
  if (!t) throw fail('not_found', `there is no tape \`${tid}\` in this session`, { tape: tid });
  for (const n of t.nodes) n.free();
  if (!t.open) s.tapes.delete(tid);
}
