/**
 * What each endpoint does to a session, without HTTP: the route handlers call these inside
 * `session.run`, so they see the session alone and in arrival order.
 */
import { NDArray, sizeOf } from '../engine/ndarray.js';
import { itemSize, type DType } from '../engine/backend.js';
import { decodeBase64, npyHeader, parseNested, parseNpy, toFlat, toNested } from './codec.js';
import { ProgramRunner, type StatementValue } from './program.js';
import { NO_UPLOADS, type Session } from './session.js';
import type { AnyStatement, Arg, BindStatement, GradReq, ScopeKind, Statement } from '../program/format.js';
import { compiledBefore, compileExpression, needsInterpreter, parseProgram } from '../expr/index.js';
import type { Stmt } from '../expr/parser.js';
import { withInterpreter } from './python.js';
import { tapeToJson, tapeToDot } from '../autograd/render.js';
import { gradOf, gradReqOf, isFreshGrad, isRecorded, nodeOf } from '../autograd/slot.js';
import type { Scope } from '../autograd/scopes.js';
import { fail } from '../errors.js';
import { Deferred } from './deferred.js';
import { ChunkedCopy } from './chunked.js';
import { record } from '../lookup.js';

export type Format = 'nested' | 'flat' | 'base64';

export interface Descriptor {
  name: string;
  shape: number[];
  dtype: DType;
  grad_req: GradReq | null;
  /** For a variable: whether its gradient was written by a backward since last cleared. */
  fresh_grad?: boolean;
  recorded: boolean;
  /** The tape that recorded the array, while it has history (so a client can draw it). */
  tape?: string;
  data?: unknown;
  format?: Format;
}

export function encodeData(s: Session, a: NDArray, format: Format): unknown {
  const be = s.memory.backend;
  // A view may cover part of a larger storage only through reshape, which keeps the size.
  if (format === 'base64') {
    s.base64Bytes += a.size * itemSize(a.dtype);
    if (s.base64Bytes > s.limits.maxBase64Bytes) {
      throw fail('array_too_large', `this answer would write ${s.base64Bytes} bytes of arrays as base64; the limit is ${s.limits.maxBase64Bytes} (GRADSERVE_MAX_BASE64_BYTES), since encoding them stalls the server. The arrays are bound: read large ones as .npy (GET /arrays/{name} with Accept: application/x-npy), or fetch them in separate requests`, { limit: 'base64_bytes', value: s.base64Bytes });
    }
    return Buffer.from(be.readBytes(a.storage)).toString('base64');
  }
  s.jsonElements += a.size;
  if (s.jsonElements > s.limits.maxJsonElements) {
    throw fail('array_too_large', `this answer would write ${s.jsonElements} elements as JSON numbers; the limit is ${s.limits.maxJsonElements} (GRADSERVE_MAX_JSON_ELEMENTS), since encoding them stalls the server. The arrays are bound: read large ones with format=base64, or as .npy (GET /arrays/{name} with Accept: application/x-npy)`, { limit: 'json_elements', value: s.jsonElements });
  }
  const values = be.readNumbers(a.storage);
  return format === 'flat' ? toFlat(values, a.dtype) : toNested(values, a.shape, a.dtype);
}

export function describe(s: Session, name: string, a: NDArray, format?: Format | null): Descriptor {
  const d: Descriptor = {
    name,
    shape: [...a.shape],
    dtype: a.dtype,
    grad_req: gradReqOf(a),
    ...(gradReqOf(a) !== null ? { fresh_grad: isFreshGrad(a) } : {}),
    recorded: isRecorded(a),
  };
  if (d.recorded) d.tape = nodeOf(a)!.tape.id;
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

/** Runs fn inside a detect_anomaly scope when the request asks for one (`"detect_anomaly": true`). */
function anomalyMode<T>(s: Session, on: boolean | undefined, fn: () => T): T {
  return on ? s.scopes.within('detect_anomaly', undefined, () => s.newTape(), fn) : fn();
}

/** A statement that runs one verb of the API through the program runner, whose value it answers. */
function runOne(s: Session, st: AnyStatement): StatementValue {
  return new ProgramRunner(s).run([st], { nameStatements: false }).value;
}

/** Decodes a JSON body (nested, flat + shape, or base64 + shape) into what `bind` writes. */
function decodeBody(s: Session, name: string, body: ArrayInput): BindStatement {
  const dtype = body.dtype ?? s.defaultDtype;
  if (body.data_base64 !== undefined) {
    const shape = body.shape!;
    if (sizeOf(shape) > s.limits.maxArrayElements) throw fail('array_too_large', `shape [${shape.join(', ')}] has more than ${s.limits.maxArrayElements} elements`, { limit: 'array_elements' });
    return { op: 'bind', out: name, dtype, shape, bytes: decodeBase64(body.data_base64, shape, dtype) };
  }
  const { values, shape } = parseNested(body.data, body.shape);
  return { op: 'bind', out: name, dtype, shape, values };
}

function decodeNpy(s: Session, name: string, buf: Buffer, dtype?: DType): BindStatement {
  const npy = parseNpy(buf);
  const dt = dtype ?? npy.dtype ?? s.defaultDtype;
  const data = npy.bytesFor(dt);
  return data instanceof Float64Array
    ? { op: 'bind', out: name, dtype: dt, shape: npy.shape, values: data }
    : { op: 'bind', out: name, dtype: dt, shape: npy.shape, bytes: data };
}

/** Binds `name` to a new array from a JSON body or a .npy file; answers whether it was bound before. */
export function bindUpload(s: Session, name: string, body: ArrayInput | Buffer, dtype?: DType): { existed: boolean; descriptor: Descriptor } {
  return bindDecoded(s, Buffer.isBuffer(body) ? decodeNpy(s, name, body, dtype) : decodeBody(s, name, body));
}

/** Binds what a decoder of another wire form made (an Open Inference Protocol tensor). */
export function bindDecoded(s: Session, st: BindStatement): { existed: boolean; descriptor: Descriptor } {
  const { existed } = runOne(s, st);
  return { existed: existed!, descriptor: describe(s, st.out, s.names.get(st.out)!) };
}

/** A .npy file of the array: its header, then its data in chunks (see chunked.ts). */
export function toNpy(s: Session, a: NDArray): Deferred<Promise<Uint8Array[]>> {
  return new Deferred(async () => {
    const out = new ChunkedCopy(s);
    out.push(npyHeader(a.shape, a.dtype));
    await out.array(a);
    return out.parts;
  });
}

export function deleteArray(s: Session, name: string): void {
  runOne(s, { op: 'delete', args: [name] });
}

export function listArrays(s: Session): Descriptor[] {
  return [...s.names].map(([n, a]) => describe(s, n, a));
}

export function readGrad(s: Session, name: string, format: Format | null): Descriptor {
  return describe(s, `${name}.grad`, s.resolve(`${name}.grad`), format);
}

export function attachGrad(s: Session, name: string, req: GradReq): Descriptor {
  runOne(s, { op: 'attach_grad', args: [name], attrs: { grad_req: req } });
  return describe(s, name, s.resolve(name));
}

function gradsAnswer(s: Session, leaves: NDArray[]): Record<string, Descriptor> {
  const out = record<Descriptor>();
  for (const leaf of leaves) {
    const name = s.nameOf(leaf);
    const g = gradOf(leaf);
    if (name && g) out[name] = describe(s, `${name}.grad`, g);
  }
  return out;
}

export interface BackwardInput {
  heads: string[];
  head_grads?: (Arg | null)[];
  retain_graph?: boolean;
  train_mode?: boolean;
  detect_anomaly?: boolean;
}

export function backwardHeads(s: Session, input: BackwardInput): Record<string, Descriptor> {
  const { arrays } = anomalyMode(s, input.detect_anomaly, () => runOne(s, {
    op: 'backward',
    args: input.heads,
    attrs: { head_grads: input.head_grads, retain_graph: input.retain_graph, train_mode: input.train_mode },
  }));
  return gradsAnswer(s, arrays!);
}

export interface GradInput extends BackwardInput {
  variables: string[];
  create_graph?: boolean;
  out?: string[];
}

export function gradOfHeads(s: Session, input: GradInput): Record<string, Descriptor> {
  const { arrays } = anomalyMode(s, input.detect_anomaly, () => runOne(s, {
    op: 'grad',
    args: input.heads,
    attrs: {
      variables: input.variables, head_grads: input.head_grads, create_graph: input.create_graph,
      retain_graph: input.retain_graph, train_mode: input.train_mode,
    },
    out: input.out,
  }));
  const answer = record<Descriptor>();
  arrays!.forEach((g, i) => {
    const name = input.out?.[i];
    answer[input.variables[i]] = describe(s, name ?? `${input.variables[i]}.grad`, g, name ? null : 'nested');
  });
  return answer;
}

/** Opens a scope that stays open across requests; answers it. */
export function enterScope(s: Session, kind: ScopeKind, trainMode?: boolean): Scope {
  return runOne(s, { op: 'enter', kind, train_mode: trainMode }).scope!;
}

export function exitScope(s: Session): void {
  runOne(s, { op: 'exit' });
}

export interface OpsInput {
  ops?: Statement[];
  expr?: string;
  record?: boolean;
  train_mode?: boolean;
  detect_anomaly?: boolean;
  fetch?: boolean | string[];
  format?: Format;
}

export interface OpsAnswer {
  outputs: Record<string, Descriptor>;
  result?: number | string | boolean | Descriptor;
  /** What print() wrote. */
  printed?: string;
  /** A last bare expression that is a tuple of arrays: each bound to a new name. */
  results?: Descriptor[];
}

function scalarJson(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return v;
}

/**
 * Runs a program; `uploads` are the binary parts sent with it (multipart), which `frombuffer`
 * reads by name while it runs.
 */
export function runOps(s: Session, input: OpsInput, uploads: ReadonlyMap<string, Uint8Array> = new Map()): OpsAnswer {
  if ((input.ops === undefined) === (input.expr === undefined)) {
    throw fail('invalid_request', 'give exactly one of `ops` (a JSON program) or `expr` (an expression)');
  }
  const exprLimits = { maxLength: s.limits.maxExprLength, maxDepth: s.limits.maxExprDepth, maxStatements: s.limits.maxStatements };
  // A training step sent again and again is compiled once: its source is known to need no interpreter.
  if (input.expr !== undefined && !(s.definitions.size === 0 && compiledBefore(input.expr, exprLimits))) {
    const ast = parseProgram(input.expr, exprLimits);
    if (needsInterpreter(ast, (n) => s.definitions.has(n))) {
      s.uploads = uploads;
      try {
        return anomalyMode(s, input.detect_anomaly, () => interpret(s, input, ast));
      } finally {
        s.uploads = NO_UPLOADS;
      }
    }
  }
  let program: Statement[];
  let resultName: string | undefined;
  if (input.expr !== undefined) {
    const c = compileExpression(input.expr, exprLimits);
    program = c.statements;
    resultName = c.result;
  } else {
    program = input.ops!;
  }
  if (input.record) program = [{ op: 'scope', kind: 'record', train_mode: input.train_mode, body: program }];
  else if (input.train_mode !== undefined) program = [{ op: 'scope', kind: input.train_mode ? 'train_mode' : 'predict_mode', body: program }];

  s.uploads = uploads;
  let outcome: ReturnType<ProgramRunner['run']>;
  try {
    // A scope around the runner, not a statement: the statements keep the paths the client sent.
    outcome = anomalyMode(s, input.detect_anomaly, () => new ProgramRunner(s).run(program, { resultName }));
  } finally {
    s.uploads = NO_UPLOADS;
  }
  const answer = answerOf(s, input, outcome.bound);
  if (outcome.result) {
    const { array, scalar } = outcome.result;
    answer.result = scalar ? scalarResult(s, array) : describe(s, resultName!.startsWith('%') ? 'result' : resultName!, array, input.format ?? 'nested');
  }
  return answer;
}

function scalarResult(s: Session, array: NDArray): number {
  return new Deferred(() => {
    const v = s.memory.backend.readNumbers(array.storage)[0];
    // toFlat writes the shortest decimal of float32 and float16, and refuses an int64 beyond 2^53.
    return Number.isFinite(v) ? toFlat(Float64Array.of(v), array.dtype)[0] : scalarJson(v);
  }) as unknown as number;
}

/** The outputs of a program: every name it bound, with data for those asked for. */
function answerOf(s: Session, input: OpsInput, bound: string[]): OpsAnswer {
  const format = input.format ?? 'nested';
  const fetch = new Set(input.fetch === true ? bound : Array.isArray(input.fetch) ? input.fetch : []);
  const outputs = record<Descriptor>();
  for (const name of bound) {
    const a = s.names.get(name);
    if (a) outputs[name] = describe(s, name, a, fetch.has(name) ? format : null);
  }
  for (const ref of fetch) {
    if (!outputs[ref]) outputs[ref] = describe(s, ref, s.resolve(ref), format);
  }
  return { outputs };
}

/** A program with control flow: run by the interpreter, statement by statement. */
function interpret(s: Session, input: OpsInput, ast: Stmt[]): OpsAnswer {
  return withInterpreter(s, (interp, runner) => {
    const run = () => interp.run(ast, input.expr!);
    const outcome = input.record ? s.scopes.within('record', input.train_mode, () => s.newTape(), run)
      : input.train_mode !== undefined ? s.scopes.within(input.train_mode ? 'train_mode' : 'predict_mode', undefined, () => s.newTape(), run)
        : run();
    const answer = answerOf(s, input, runner.boundNames());
    const r = outcome.result;
    if (r?.t === 'ref') {
      const array = runner.array(r.ref);
      answer.result = runner.isScalar(array) ? scalarResult(s, array) : describe(s, r.ref.startsWith('%') ? 'result' : r.ref, array, input.format ?? 'nested');
    } else if (r?.t === 'list' && r.items.length && r.items.every((x) => x.t === 'ref')) {
      // A tuple of arrays (a custom Function's outputs): each gets a name of its own to keep.
      answer.results = r.items.map((x) => {
        const array = runner.array((x as { ref: string }).ref);
        const name = s.autoName();
        s.names.set(name, array);
        return describe(s, name, array, input.fetch === true ? input.format ?? 'nested' : null);
      });
    } else if (r?.t === 'num') {
      answer.result = scalarJson(r.v);
    } else if (r?.t === 'str') {
      answer.result = r.v;
    } else if (r?.t === 'lit' && typeof r.v === 'boolean') {
      answer.result = r.v;
    }
    if (outcome.printed) answer.printed = outcome.printed;
    return answer;
  }, false);
}

export function autogradState(s: Session) {
  return {
    is_recording: s.scopes.isRecording,
    is_training: s.scopes.isTraining,
    scopes: s.scopes.describe(),
  };
}

/** What POST /v1/sessions (and a fork) answers: the session, and its token, which only this answer carries. */
export function createdAnswer(s: Session, token: string) {
  const info = sessionInfo(s);
  return { id: info.id, created_at: info.created_at, expires_at: info.expires_at, ttl_seconds: info.ttl_seconds, seed: info.seed, default_dtype: info.default_dtype, token, limits: info.limits };
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
    limits: { bytes: s.limits.maxSessionBytes, array_elements: s.limits.maxArrayElements, tape_nodes: s.limits.maxTapeNodes, statements: s.limits.maxStatements, body_bytes: s.limits.maxBodyBytes },
    definitions: [...s.definitions.values()].map((d) => ({ name: d.name, kind: d.kind, signature: d.signature, source: d.source })),
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

/** `labels` of GET /tapes/{tid}: names to what a drawing shows for them, checked. */
function parseLabels(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (text === undefined) return out;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw fail('invalid_request', '`labels` is not JSON: give an object of names to labels, {"_py2": "x"}', { arg: 'labels' });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw fail('invalid_request', '`labels` must be a JSON object of names to labels', { arg: 'labels' });
  for (const [k, l] of Object.entries(v)) {
    if (typeof l !== 'string' || l.length === 0 || l.length > 128) throw fail('invalid_request', `the label of \`${k.slice(0, 64)}\` in \`labels\` must be a string of 1 to 128 characters`, { arg: 'labels' });
    out.set(k, l);
  }
  return out;
}

export function getTape(s: Session, tid: string, format: 'json' | 'dot', labelsText?: string): unknown {
  const t = s.tapes.get(tid);
  if (!t) throw fail('not_found', `there is no tape \`${tid}\` in this session (GET /tapes lists them)`, { tape: tid });
  // JSON keeps the real names, which are references a client can use; drawings show labels.
  const labels = format === 'dot' ? parseLabels(labelsText) : new Map<string, string>();
  const names = new Map<number, string>();
  for (const [n, a] of s.names) if (!names.has(a.id)) names.set(a.id, n);
  // The client's names for its arrays, when it gave them, win over the server's (`_py2`); a
  // labelled name shows even where another name of the same array came first.
  for (const [n, a] of s.names) { const l = labels.get(n); if (l !== undefined) names.set(a.id, l); }
  const nameOf = (id: number) => names.get(id);
  if (format === 'dot') {
    // DOT, its SVG layout and its PNG are built on the event loop: bounded, so one big tape cannot
    // stall it.
    const live = t.nodes.filter((n) => !n.freed).length;
    const max = s.limits.maxRenderNodes;
    if (live > max) {
      throw fail('payload_too_large', `tape \`${tid}\` has ${live} live nodes; drawings (DOT, SVG, PNG) show at most ${max} (GRADSERVE_MAX_RENDER_NODES); ask for ?format=json`, { limit: 'render_nodes', value: live, max });
    }
  }
  return format === 'dot' ? tapeToDot(t, nameOf) : tapeToJson(t, nameOf);
}

export function deleteTape(s: Session, tid: string): void {
  const t = s.tapes.get(tid);
  if (!t) throw fail('not_found', `there is no tape \`${tid}\` in this session`, { tape: tid });
  for (const n of [...t.nodes]) n.free();
  if (!t.open) s.tapes.delete(tid);
}
