/**
 * Runs a program (the statements of POST /ops, from JSON or compiled from an expression) in a
 * session. Every statement is checked before the first one runs (op names, attributes, argument
 * kinds); a statement that fails at run time stops the program, and the error says which one and
 * which names the earlier ones bound.
 */
import { NDArray } from '../engine/ndarray.js';
import { applyParsed, parseAttrs } from '../autograd/apply.js';
import { lookupOp, suggestOps, type OpDef } from '../ops/index.js';
import type { Value } from '../ops/registry.js';
import type { Arg, Statement, OpStatement, ScopeStatement, BackwardStatement, AttachGradStatement, DeleteStatement } from '../http/schemas/program.js';
import { ApiError, fail } from '../errors.js';
import { parseNested } from './codec.js';
import { runBackward } from './autograd.js';
import type { Session } from './session.js';
import { sameShape, shapeStr } from '../engine/ndarray.js';

/** Executor-level statements: not ops of the table, because they are about bindings. */
const ALIAS = '_alias';
const FILL = '_fill';

interface Prepared {
  st: OpStatement;
  def: OpDef | null;
  inputs: Arg[];
  attrs: unknown;
}

/** Each body of the program (the top level and every scope's) with its statements prepared, by index. */
type PreparedBodies = Map<Statement[], (Prepared | undefined)[]>;

export interface ProgramOutcome {
  /** Names bound or written by the program, in order of first binding. */
  bound: string[];
  /** The value of a last bare expression (`result`), when asked for. */
  result?: { array: NDArray; scalar: boolean };
}

type Path = (number | string)[];

/** Statement i of the body at `path`, as errors name it: `0.body.3`. Built only for errors. */
function pathStr(path: Path, i: number): string {
  return [...path, i].join('.');
}

function atStatement(path: Path, i: number, op: string): { statement: string; op: string } {
  return { statement: pathStr(path, i), op };
}

/** Records the statement number as the last read of every temporary the statement reads. */
function noteTempReads(st: Statement, count: PrepareState): void {
  const { args, attrs, into } = st as { args?: unknown[]; attrs?: { head_grads?: unknown[] }; into?: string };
  if (args) for (const a of args) if (typeof a === 'string' && a.startsWith('%')) count.lastUse.set(a, count.n);
  const hg = attrs?.head_grads;
  if (Array.isArray(hg)) for (const a of hg) if (typeof a === 'string' && a.startsWith('%')) count.lastUse.set(a, count.n);
  if (into?.startsWith('%')) count.lastUse.set(into, count.n);
}

/** Checks and prepares every statement; throws before anything runs. */
/** What preparing counts: statements (numbered in execution order) and where temporaries are last read. */
interface PrepareState {
  n: number;
  max: number;
  /** Temporary name -> number of the last statement that reads it. */
  lastUse: Map<string, number>;
}

function prepare(body: Statement[], path: Path, out: PreparedBodies, count: PrepareState): void {
  const list = new Array<Prepared | undefined>(body.length);
  for (let i = 0; i < body.length; i++) list[i] = prepareOne(body[i], path, i, out, count);
  out.set(body, list);
}

/** An op statement's preparation; undefined for the other kinds of statement. */
function prepareOne(st: Statement, path: Path, i: number, out: PreparedBodies, count: PrepareState): Prepared | undefined {
  if (++count.n > count.max) {
    throw fail('quota_exceeded', `the program has more than ${count.max} statements (GRADSERVE_MAX_STATEMENTS)`, { limit: 'statements', value: count.n });
  }
  noteTempReads(st, count);
  if (st.op === 'scope') {
    prepare((st as { body: Statement[] }).body, [...path, i, 'body'], out, count);
    return undefined;
  }
  if (st.op === 'backward' || st.op === 'attach_grad' || st.op === 'delete') return undefined;
  const os = st as OpStatement;
  if (os.op === ALIAS || os.op === FILL) {
    return { st: os, def: null, inputs: os.args ?? [], attrs: os.attrs ?? {} };
  }
  const def = lookupOp(os.op);
  // Errors name the statement by its path; the string is built only when one is thrown.
  if (!def || def.internal && !os.op.startsWith('_')) {
    const near = suggestOps(os.op);
    throw fail('unknown_op', `statement ${pathStr(path, i)}: there is no op \`${os.op}\`${near.length ? `; did you mean ${near.map((n) => `\`${n}\``).join(', ')}?` : ''} (GET /v1/ops lists them)`, atStatement(path, i, os.op));
  }
  const args = os.args ?? [];
  const nIn = def.variadic ? args.length : Math.min(args.length, def.inputs.length);
  const nExtra = args.length - nIn;
  if (nExtra > def.positional.length) {
    throw fail('invalid_argument', `statement ${pathStr(path, i)}: \`${def.name}\` takes ${def.inputs.length} array argument(s)${def.positional.length ? ` and then ${def.positional.join(', ')}` : ''}; got ${args.length} positional arguments`, atStatement(path, i, os.op));
  }
  // Positional attrs are merged into a copy; without any, the statement's own attrs are parsed.
  let attrs: Record<string, unknown> | undefined = os.attrs;
  if (nExtra > 0) {
    attrs = { ...(os.attrs ?? {}) };
    for (let j = 0; j < nExtra; j++) {
      const key = def.positional[j];
      if (key in attrs) throw fail('invalid_argument', `statement ${pathStr(path, i)}: \`${key}\` of \`${def.name}\` is given both positionally and as a keyword`, atStatement(path, i, os.op));
      attrs[key] = args[nIn + j];
    }
  }
  if (!def.variadic && nIn < def.inputs.length) {
    throw fail('invalid_argument', `statement ${pathStr(path, i)}: \`${def.name}\` needs ${def.inputs.length} array argument(s) (${def.inputs.join(', ')}); got ${nIn}`, atStatement(path, i, os.op));
  }
  let parsed: unknown;
  try {
    parsed = parseAttrs(def, attrs);
  } catch (e) {
    if (e instanceof ApiError) throw new ApiError(e.code, `statement ${pathStr(path, i)}: ${e.message}`, { ...e.extra, ...atStatement(path, i, os.op) });
    throw e;
  }
  return { st: os, def, inputs: nIn === args.length ? args : args.slice(0, nIn), attrs: parsed };
}

/** The name of input i of an op, as errors give it (`data[2]` for variadic ops). */
function argName(def: OpDef, i: number): string {
  return def.variadic ? `${def.inputs[0] ?? 'data'}[${i}]` : def.inputs[i];
}

export class ProgramRunner {
  private readonly temps = new Map<string, NDArray>();
  private readonly scalars = new Set<NDArray>();
  private readonly bound: string[] = [];
  private readonly prepared: PreparedBodies = new Map();
  private readonly lastUse = new Map<string, number>();
  /** The number of the statement running (execution order, as prepare numbers them). */
  private seq = 0;

  private readonly deadline: number;

  constructor(private readonly s: Session) {
    this.deadline = Date.now() + s.limits.requestTimeoutMs;
  }

  /** The temporaries later statements still read (what a reclaim must keep besides the names). */
  private liveTemps(): NDArray[] {
    const live: NDArray[] = [];
    for (const [name, a] of this.temps) if ((this.lastUse.get(name) ?? 0) > this.seq) live.push(a);
    return live;
  }

  run(program: Statement[], resultName?: string): ProgramOutcome {
    prepare(program, [], this.prepared, { n: 0, max: this.s.limits.maxStatements, lastUse: this.lastUse });
    if (resultName) this.lastUse.set(resultName, Infinity);
    this.s.withRoots(() => this.liveTemps(), () => this.runBody(program, []));
    const outcome: ProgramOutcome = { bound: [...new Set(this.bound)] };
    if (resultName) {
      const array = this.lookup(resultName);
      outcome.result = { array, scalar: this.scalars.has(array) };
    }
    return outcome;
  }

  private runBody(body: Statement[], path: Path): void {
    const prepared = this.prepared.get(body)!;
    for (let i = 0; i < body.length; i++) {
      const st = body[i];
      // Checked between statements, so a stopped program leaves every array whole.
      if (Date.now() > this.deadline) {
        throw fail('time_limit', `the program ran longer than ${this.s.limits.requestTimeoutMs} ms (GRADSERVE_REQUEST_TIMEOUT_MS) and stopped before statement ${pathStr(path, i)}; split it into smaller requests`, {
          limit: 'request_time', statement: pathStr(path, i), changed: [...new Set(this.bound)],
        });
      }
      this.seq++;
      try {
        this.runStatement(st, prepared[i], path, i);
        this.s.maybeReclaim();
      } catch (e) {
        if (e instanceof ApiError && e.extra.statement === undefined) {
          const here = pathStr(path, i);
          throw new ApiError(e.code, `statement ${here} (\`${st.op}\`): ${e.message}`, {
            ...e.extra, statement: here, op: st.op, changed: [...new Set(this.bound)],
          });
        }
        throw e;
      }
    }
  }

  private runStatement(st: Statement, prepared: Prepared | undefined, path: Path, i: number): void {
    const s = this.s;
    if (st.op === 'scope') {
      const sc = st as ScopeStatement;
      s.scopes.within(sc.kind, sc.train_mode, () => s.newTape(), () => this.runBody(sc.body, [...path, i, 'body']));
    } else if (st.op === 'backward') {
      const b = st as BackwardStatement;
      const heads = b.args.map((a) => this.arrayArg(a, 'heads'));
      const hg = b.attrs?.head_grads ?? heads.map(() => null);
      const headGrads = hg.map((g, i) => (g === null ? null : this.arrayArg(g, 'head_grads', heads[i])));
      runBackward(s, { heads, headGrads, retainGraph: b.attrs?.retain_graph ?? false, trainMode: b.attrs?.train_mode ?? true });
    } else if (st.op === 'delete') {
      for (const name of (st as DeleteStatement).args) {
        if (!s.names.delete(name)) throw fail('not_found', `array \`${name}\` is not bound in this session`, { array: name });
      }
    } else if (st.op === 'attach_grad') {
      const a = st as AttachGradStatement;
      s.attachGrad(s.resolve(a.args[0]), a.attrs?.grad_req ?? 'write');
      this.bound.push(a.args[0]);
    } else {
      this.runOp(prepared!);
    }
  }

  private runOp(p: Prepared): void {
    const { st } = p;
    if (st.op === ALIAS) {
      const src = this.arrayArg(p.inputs[0], 'data');
      this.bind(this.outNames(st, 1)[0], src);
      return;
    }
    if (st.op === FILL) {
      if (!st.into) throw fail('invalid_argument', '`_fill` writes in place: give `into`');
      const target = this.s.resolve(st.into);
      this.checkInPlace(target, st.into);
      const value = Number((p.attrs as { value?: unknown }).value);
      if (!Number.isFinite(value) && !Number.isNaN(value)) throw fail('invalid_attribute', '`value` of `_fill` must be a number');
      this.s.memory.backend.fill(target.storage, value);
      this.bound.push(st.into.replace(/\.grad$/, ''));
      return;
    }
    const def = p.def!;
    const args = p.inputs;
    const inputs = new Array<Value>(args.length);
    // Inline constants take the dtype of the first named input: resolve names first.
    let dtypeHint: NDArray['dtype'] | undefined;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (typeof a !== 'string') continue;
      const arr = this.lookup(a);
      inputs[i] = arr;
      dtypeHint ??= arr.dtype;
    }
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (typeof a === 'number') {
        if (!def.scalarInputs) throw fail('invalid_argument', `\`${argName(def, i)}\` of \`${def.name}\` must be an array, got the number ${a}`, { arg: argName(def, i) });
        inputs[i] = a;
      } else if (typeof a !== 'string') {
        inputs[i] = this.arrayArg(a, argName(def, i), undefined, dtypeHint);
      }
    }
    if (def.mutates) this.checkMutations(def, p, inputs);
    let outs = applyParsed(def, inputs, p.attrs);
    if (def.visibleOutputs !== undefined && def.visibleOutputs < outs.length) outs = outs.slice(0, def.visibleOutputs);
    this.s.stats.opsRun++;
    if (def.name === 'asscalar') this.scalars.add(outs[0]);
    if (st.into) {
      this.writeInto(st.into, outs[0]);
      return;
    }
    const names = this.outNames(st, outs.length);
    for (let i = 0; i < names.length; i++) this.bind(names[i], outs[i]);
  }

  /** An op that updates inputs in place may not touch what recording or a live tape needs. */
  private checkMutations(def: OpDef, p: Prepared, inputs: Value[]): void {
    for (const i of def.mutates!) {
      const target = inputs[i];
      const ref = typeof p.inputs[i] === 'string' ? (p.inputs[i] as string) : def.inputs[i];
      if (!(target instanceof NDArray) || typeof p.inputs[i] !== 'string') {
        throw fail('invalid_argument', `\`${def.inputs[i]}\` of \`${def.name}\` is updated in place: pass the name of an array`, { arg: def.inputs[i] });
      }
      if (this.s.scopes.isRecording && !def.mutatesWhileRecording) {
        throw fail('inplace_on_recorded', `\`${def.name}\` updates \`${ref}\` in place; run it outside record scopes`, { arg: def.inputs[i] });
      }
      if (this.s.neededByTape(target)) {
        throw fail('inplace_on_recorded', `\`${def.name}\` would update \`${ref}\` in place, but a live tape still needs it; run backward first (or delete the tape)`, { arg: def.inputs[i] });
      }
    }
  }

  private outNames(st: OpStatement, n: number): string[] {
    // A copy: statements may be shared (compiled expressions are cached) and are never written.
    const out = st.out === undefined ? [] : Array.isArray(st.out) ? [...st.out] : [st.out];
    if (out.length > n) throw fail('invalid_argument', `\`out\` names ${out.length} outputs but \`${st.op}\` has ${n}`, { arg: 'out' });
    while (out.length < n) out.push(this.s.autoName());
    return out;
  }

  private bind(name: string, a: NDArray): void {
    if (name.startsWith('%')) {
      this.temps.set(name, a);
      return;
    }
    this.s.names.set(name, a);
    this.bound.push(name);
  }

  private checkInPlace(target: NDArray, ref: string): void {
    if (this.s.scopes.isRecording && this.s.neededByTape(target)) {
      throw fail('inplace_on_recorded', `\`${ref}\` is needed by a live tape; writing it in place while recording would corrupt the gradient. Bind a new name instead, or write after backward`, { arg: ref });
    }
  }

  private writeInto(ref: string, value: NDArray): void {
    const target = this.s.resolve(ref);
    if (!sameShape(target.shape, value.shape)) {
      throw fail('shape_mismatch', `cannot write a result of shape ${shapeStr(value.shape)} into \`${ref}\` of shape ${shapeStr(target.shape)}`, { arg: 'into' });
    }
    if (target.dtype !== value.dtype) throw fail('dtype_mismatch', `cannot write a ${value.dtype} result into \`${ref}\` (${target.dtype})`, { arg: 'into' });
    this.checkInPlace(target, ref);
    if (value.storage !== target.storage) this.s.memory.backend.cast(value.storage, target.storage);
    // The array keeps its identity and gradient buffer; it takes the result's history, if any.
    if (value.recorded) {
      target.node = value.node;
      target.outputIndex = value.outputIndex;
    } else if (!target.isVariable) {
      target.node = null;
    }
    this.bound.push(ref.replace(/\.grad$/, ''));
  }

  private lookup(ref: string): NDArray {
    if (ref.startsWith('%')) {
      const t = this.temps.get(ref);
      if (!t) throw new Error(`internal: temporary ${ref} used before it was bound`);
      return t;
    }
    return this.s.resolve(ref);
  }

  /** An argument that must be an array: a reference, or an inline constant. */
  private arrayArg(a: Arg | null, name: string, like?: NDArray, dtypeHint?: NDArray['dtype']): NDArray {
    if (typeof a === 'string') return this.lookup(a);
    if (a === null) throw fail('invalid_argument', `\`${name}\` must be an array`, { arg: name });
    const { values, shape } = parseNested(a);
    const arr = this.s.k.alloc(like?.dtype ?? dtypeHint ?? this.s.defaultDtype, shape);
    this.s.memory.backend.writeNumbers(arr.storage, values);
    return arr;
  }
}
