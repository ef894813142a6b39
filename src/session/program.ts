/**
 * The one executor: runs a program in a session. POST /ops sends programs (JSON, or compiled from
 * an expression); every other endpoint that changes a session builds a program of one statement
 * (src/program/format.ts lists the kinds only endpoints build). Every statement is checked before
 * the first one runs (op names, attributes, argument kinds); a statement that fails at run time
 * stops the program, and the error says which one and which names the earlier ones bound.
 */
import { NDArray, sameShape, shapeStr } from '../engine/ndarray.js';
import { applyParsed, parseAttrs } from '../ops/dispatch.js';
import { lookupOp, suggestOps, type OpDef } from '../ops/index.js';
import type { Value } from '../ops/registry.js';
import type { Scope } from '../autograd/scopes.js';
import { gradOf, isVariable, setFreshGrad, setHistory, takeHistory, isRecorded } from '../autograd/slot.js';
import { release, retain } from '../autograd/refs.js';
import type {
  AnyStatement, Arg, AttachGradStatement, SetGradStateStatement, BackwardStatement, BindStatement, DeleteStatement, EnterStatement,
  GradStatement, OpStatement, ScopeStatement,
} from '../program/format.js';
import { ApiError, fail } from '../errors.js';
import { sourceLine } from '../program/site.js';
import { parseNested } from './codec.js';
import { runBackward, runGrad } from './autograd.js';
import type { Session } from './session.js';

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
type PreparedBodies = Map<AnyStatement[], (Prepared | undefined)[]>;

/** What a statement gives the endpoint that ran it alone. */
export interface StatementValue {
  /** backward: the variables whose gradient buffers were written. grad: one gradient per variable. */
  arrays?: NDArray[];
  /** bind: whether the name was bound before. */
  existed?: boolean;
  /** enter: the scope opened. */
  scope?: Scope;
}

export interface ProgramOutcome {
  /** Names bound or written by the program, in order of first binding. */
  bound: string[];
  /** The value of a last bare expression (`result`), when asked for. */
  result?: { array: NDArray; scalar: boolean };
  /** What the last top-level statement gave. */
  value: StatementValue;
}

export interface RunOptions {
  /** The name of an expression's value, kept to the end (`result`). */
  resultName?: string;
  /**
   * Errors name the failing statement and what the program changed before it (POST /ops). An
   * endpoint running one statement of its own answers the bare error.
   */
  nameStatements?: boolean;
}

type Path = (number | string)[];

/** Statement i of the body at `path`, as errors name it: `0.body.3`. Built only for errors. */
function pathStr(path: Path, i: number): string {
  return [...path, i].join('.');
}

/** Where statement i of the body at `path` is, as errors say it: its source line for an expression, its path for JSON. */
function where(st: object, path: Path, i: number): string {
  const line = sourceLine(st);
  return line === null ? `statement ${pathStr(path, i)}` : `line ${line}`;
}

function atStatement(st: object, path: Path, i: number, op: string): { statement: string; op: string } | { line: number; op: string } {
  const line = sourceLine(st);
  return line === null ? { statement: pathStr(path, i), op } : { line, op };
}

/** Records the statement number as the last read of every temporary the statement reads. */
function noteTempReads(st: AnyStatement, count: PrepareState): void {
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

function prepare(body: AnyStatement[], path: Path, out: PreparedBodies, count: PrepareState): void {
  const list = new Array<Prepared | undefined>(body.length);
  for (let i = 0; i < body.length; i++) list[i] = prepareOne(body[i], path, i, out, count);
  out.set(body, list);
}

/** An op statement's preparation; undefined for the other kinds of statement. */
function prepareOne(st: AnyStatement, path: Path, i: number, out: PreparedBodies, count: PrepareState): Prepared | undefined {
  if (++count.n > count.max) {
    throw fail('quota_exceeded', `the program has more than ${count.max} statements (GRADSERVE_MAX_STATEMENTS)`, { limit: 'statements', value: count.n });
  }
  noteTempReads(st, count);
  if (st.op === 'scope') {
    prepare((st as ScopeStatement).body, [...path, i, 'body'], out, count);
    return undefined;
  }
  if (STATEMENT_KINDS.has(st.op)) return undefined;
  const os = st as OpStatement;
  if (os.op === ALIAS || os.op === FILL) {
    return { st: os, def: null, inputs: os.args ?? [], attrs: os.attrs ?? {} };
  }
  const def = lookupOp(os.op);
  // Errors name the statement by its path; the string is built only when one is thrown.
  if (def?.internal) {
    // Internal ops serve gradient rules, which call them with attributes they derive; a client's
    // attributes could disagree with the data in ways only those rules rule out.
    throw fail('unknown_op', `${where(os, path, i)}: \`${os.op}\` is internal to the server's gradient rules and cannot be called (GET /v1/ops lists the ops)`, atStatement(os, path, i, os.op));
  }
  if (!def) {
    const near = suggestOps(os.op);
    throw fail('unknown_op', `${where(os, path, i)}: there is no op \`${os.op}\`${near.length ? `; did you mean ${near.map((n) => `\`${n}\``).join(', ')}?` : ''} (GET /v1/ops lists them)`, atStatement(os, path, i, os.op));
  }
  const args = os.args ?? [];
  const nIn = def.variadic ? args.length : Math.min(args.length, def.inputs.length);
  const nExtra = args.length - nIn;
  if (nExtra > def.positional.length) {
    throw fail('invalid_argument', `${where(os, path, i)}: \`${def.name}\` takes ${def.inputs.length} array argument(s)${def.positional.length ? ` and then ${def.positional.join(', ')}` : ''}; got ${args.length} positional arguments`, atStatement(os, path, i, os.op));
  }
  // Positional attrs are merged into a copy; without any, the statement's own attrs are parsed.
  let attrs: Record<string, unknown> | undefined = os.attrs;
  if (nExtra > 0) {
    attrs = { ...(os.attrs ?? {}) };
    for (let j = 0; j < nExtra; j++) {
      const key = def.positional[j];
      if (key in attrs) throw fail('invalid_argument', `${where(os, path, i)}: \`${key}\` of \`${def.name}\` is given both positionally and as a keyword`, atStatement(os, path, i, os.op));
      attrs[key] = args[nIn + j];
    }
  }
  if (!def.variadic && nIn < def.inputs.length) {
    throw fail('invalid_argument', `${where(os, path, i)}: \`${def.name}\` needs ${def.inputs.length} array argument(s) (${def.inputs.join(', ')}); got ${nIn}`, atStatement(os, path, i, os.op));
  }
  let parsed: unknown;
  try {
    parsed = parseAttrs(def, attrs);
  } catch (e) {
    if (e instanceof ApiError) throw new ApiError(e.code, `${where(os, path, i)}: ${e.message}`, { ...e.extra, ...atStatement(os, path, i, os.op) });
    throw e;
  }
  return { st: os, def, inputs: nIn === args.length ? args : args.slice(0, nIn), attrs: parsed };
}

/** Statements that are not op calls (the wire's, and those only endpoints build). */
const STATEMENT_KINDS: ReadonlySet<string> = new Set(['backward', 'attach_grad', 'set_grad_state', 'delete', 'grad', 'enter', 'exit', 'bind']);

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

  readonly deadline: number;
  /** Run piecewise by the interpreter, which says itself when a temporary dies (release). */
  private interactive = false;
  /** The interpreter's line for the statements it runs now (runMore). */
  private line: number | null = null;

  constructor(private readonly s: Session) {
    this.deadline = Date.now() + s.limits.requestTimeoutMs;
  }

  /** Temporaries by the number of the statement that last reads them: released after it. */
  private readonly dying = new Map<number, string[]>();
  /** Arrays the last top-level statement gave, held so that the endpoint can read them. */
  private held: NDArray[] = [];

  private nameStatements = true;
  private last: StatementValue = {};

  run(program: AnyStatement[], o: RunOptions = {}): ProgramOutcome {
    const { resultName } = o;
    this.nameStatements = o.nameStatements ?? true;
    prepare(program, [], this.prepared, { n: 0, max: this.s.limits.maxStatements, lastUse: this.lastUse });
    if (resultName) this.lastUse.set(resultName, Infinity);
    for (const [name, n] of this.lastUse) {
      const list = this.dying.get(n);
      if (list) list.push(name);
      else this.dying.set(n, [name]);
    }
    this.s.programDepth++;
    try {
      this.runBody(program, []);
      const outcome: ProgramOutcome = { bound: [...new Set(this.bound)], value: this.last };
      if (resultName) {
        const array = this.lookup(resultName);
        outcome.result = { array, scalar: this.scalars.has(array) };
      }
      return outcome;
    } finally {
      this.s.programDepth--;
      this.releaseAll();
    }
  }

  /**
   * Drops every temporary and what the last statement gave. What is released here stays readable
   * until the request's answer is read: the session frees it after that.
   */
  releaseAll(): void {
    const temps = [...this.temps.values()];
    this.temps.clear();
    for (const a of temps) release(a);
    const held = this.held;
    this.held = [];
    for (const a of held) release(a);
  }

  /** Drops the temporaries statement `seq` read last. */
  private releaseDying(seq: number): void {
    const names = this.dying.get(seq);
    if (!names) return;
    for (const name of names) {
      const a = this.temps.get(name);
      if (!a) continue;
      this.temps.delete(name);
      release(a);
    }
  }

  /** Holds what a top-level statement gave (the endpoint reads it after the program). */
  private hold(value: StatementValue): void {
    const prev = this.held;
    this.held = value.arrays ? [...value.arrays] : [];
    for (const a of this.held) retain(a);
    for (const a of prev) release(a);
  }

  /**
   * Runs statements now, sharing the temporaries of earlier calls: the interpreter's steps. Errors
   * are bare; the interpreter says where in the source they happened.
   */
  runMore(program: AnyStatement[], line: number | null = null): void {
    this.interactive = true;
    this.line = line;
    this.nameStatements = false;
    try {
      prepare(program, [], this.prepared, { n: 0, max: this.s.limits.maxStatements, lastUse: this.lastUse });
    } catch (e) {
      // Statement numbers mean nothing to the interpreter's source: it names the line instead.
      if (!(e instanceof ApiError) || (e.extra.statement === undefined && e.extra.line === undefined)) throw e;
      const { statement: _s, line: _l, ...extra } = e.extra;
      throw new ApiError(e.code, e.message.replace(/^(statement [^:]*|line \d+): /, ''), extra);
    }
    // Interpreted statements count as a program's: every array they use is held by a name or a
    // temporary, so a backward walk among them may reclaim everything else between nodes.
    this.s.programDepth++;
    try {
      this.runBody(program, []);
      // A kernel's failure belongs to the statement that queued it, not to a later read.
      this.s.memory.backend.drain?.();
    } finally {
      this.s.programDepth--;
      this.prepared.delete(program);
    }
  }

  /** Names bound or written so far, in order of first binding. */
  boundNames(): string[] {
    return [...new Set(this.bound)];
  }

  /** The array a temporary or a name refers to. */
  array(ref: string): NDArray {
    return this.lookup(ref);
  }

  /** The array is asscalar()'s value: an answer gives it as a number. */
  isScalar(a: NDArray): boolean {
    return this.scalars.has(a);
  }

  /** Binds the temporary `name` to `a`, holding it and releasing what it held before. */
  setTemp(name: string, a: NDArray): void {
    this.bind(name, a);
  }

  /** Drops (releases) temporaries `%n` with n above `mark` unless `keep` names them. */
  releaseTemps(mark: number, keep: Set<string>): void {
    const dropped: NDArray[] = [];
    for (const [name, a] of this.temps) {
      if (Number(name.slice(1)) > mark && !keep.has(name)) {
        this.temps.delete(name);
        dropped.push(a);
      }
    }
    for (const a of dropped) release(a);
  }

  private runBody(body: AnyStatement[], path: Path): void {
    const outer = this.s.site;
    try {
      this.runStatements(body, path);
    } finally {
      this.s.site = outer;
    }
  }

  private runStatements(body: AnyStatement[], path: Path): void {
    const prepared = this.prepared.get(body)!;
    for (let i = 0; i < body.length; i++) {
      const st = body[i];
      // Checked between statements, so a stopped program leaves every array whole.
      if (Date.now() > this.deadline) {
        throw fail('time_limit', `the program ran longer than ${this.s.limits.requestTimeoutMs} ms (GRADSERVE_REQUEST_TIMEOUT_MS) and stopped before ${where(st, path, i)}; split it into smaller requests`, {
          limit: 'request_time', ...atStatement(st, path, i, st.op), changed: [...new Set(this.bound)],
        });
      }
      const n = ++this.seq;
      // The interpreter's statement numbers mean nothing to its source: it gives the line.
      this.s.site = this.interactive ? { path: null, index: i, line: this.line } : { path, index: i, line: sourceLine(st) };
      try {
        const value = this.runStatement(st, prepared[i], path, i);
        // The kernels this statement queued run now, so a failure among them stops the program
        // here and is this statement's, not a later one's (or the batch end's).
        if (this.nameStatements && st.op !== 'scope') this.s.memory.backend.drain?.();
        if (path.length === 0) {
          this.last = value;
          this.hold(value);
        }
        this.releaseDying(n);
        // Everything the statement made and nothing holds is freed here, before the next one.
        this.s.memory.drain();
      } catch (e) {
        if (!this.nameStatements) throw e;
        // Labelled already, by the statement of a scope's body that failed.
        if (e instanceof ApiError && e.extra.changed !== undefined) throw e;
        const line = sourceLine(st);
        const changed = [...new Set(this.bound)];
        const at = line !== null ? { line, op: st.op, changed } : {
          statement: pathStr(path, i), statement_index: path.length === 0 ? i : (path[0] as number),
          statement_path: [...path, i], op: st.op, changed,
        };
        const here = where(st, path, i);
        // An anomaly names the op that made the value, which in a backward is not the statement's.
        if (e instanceof ApiError) throw new ApiError(e.code, `${here} (\`${st.op}\`): ${e.message}`, { ...e.extra, ...at, ...(e.code === 'anomaly_detected' ? { op: e.extra.op } : {}) });
        // A server fault (a kernel's failure included) still stops here and says where; the
        // original error is kept as the cause, which the error handler logs.
        const wrapped = new ApiError('internal', `${here} (\`${st.op}\`) failed in the server; it has been logged`, at);
        (wrapped as { cause?: unknown }).cause = e;
        throw wrapped;
      }
    }
  }

  private runStatement(st: AnyStatement, prepared: Prepared | undefined, path: Path, i: number): StatementValue {
    const s = this.s;
    switch (st.op) {
      case 'scope': {
        const sc = st as ScopeStatement;
        s.scopes.within(sc.kind, sc.train_mode, () => s.newTape(), () => this.runBody(sc.body, [...path, i, 'body']));
        return {};
      }
      case 'backward': {
        const b = st as BackwardStatement;
        const heads = b.args.map((a) => this.arrayArg(a, 'heads'));
        const headGrads = this.headGrads(b.attrs?.head_grads, heads);
        return { arrays: runBackward(s, { heads, headGrads, retainGraph: b.attrs?.retain_graph ?? false, trainMode: b.attrs?.train_mode ?? true }) };
      }
      case 'grad':
        return { arrays: this.grad(st as GradStatement) };
      case 'delete':
        for (const name of (st as DeleteStatement).args) {
          if (!s.names.delete(name)) throw fail('not_found', `array \`${name}\` is not bound in this session`, { array: name });
        }
        return {};
      case 'attach_grad': {
        const a = st as AttachGradStatement;
        s.attachGrad(this.lookup(a.args[0]), a.attrs?.grad_req ?? 'write');
        if (!a.args[0].startsWith('%')) this.bound.push(a.args[0]);
        return {};
      }
      case 'set_grad_state': {
        const g = st as SetGradStateStatement;
        const a = this.lookup(g.args[0]);
        if (!isVariable(a)) throw fail('no_grad', `array \`${g.args[0]}\` has no gradient buffer; call attach-grad on it first`, { array: g.args[0] });
        setFreshGrad(a, g.attrs.fresh);
        return {};
      }
      case 'enter': {
        const e = st as EnterStatement;
        return { scope: s.scopes.push(e.kind, e.train_mode, () => s.newTape()) };
      }
      case 'exit':
        return { scope: s.scopes.pop() };
      case 'bind':
        return { existed: this.bindData(st as BindStatement) };
      default:
        this.runOp(prepared!);
        return {};
    }
  }

  /** Head gradients: null (ones) or arrays; inline constants take their head's dtype. */
  private headGrads(given: (Arg | null)[] | undefined, heads: NDArray[]): (NDArray | null)[] {
    if (!given) return heads.map(() => null);
    return given.map((g, i) => (g === null ? null : this.arrayArg(g, 'head_grads', heads[i] ?? heads[0])));
  }

  /** autograd.grad: one new array per variable, bound to `out` when given. */
  private grad(st: GradStatement): NDArray[] {
    const { attrs } = st;
    const heads = st.args.map((a) => this.arrayArg(a, 'heads'));
    const headGrads = this.headGrads(attrs.head_grads, heads);
    const variables = attrs.variables.map((v) => this.lookup(v));
    if (st.out && st.out.length !== variables.length) {
      throw fail('invalid_argument', `\`out\` has ${st.out.length} names for ${variables.length} variables`, { arg: 'out' });
    }
    const createGraph = attrs.create_graph ?? false;
    const grads = runGrad(this.s, {
      heads, headGrads, variables, variableNames: attrs.variables, createGraph,
      retainGraph: attrs.retain_graph ?? createGraph, trainMode: attrs.train_mode ?? true,
    });
    if (st.out) st.out.forEach((name, i) => this.bind(name, grads[i]));
    return grads;
  }

  /** An upload: a new array holding the decoded data, bound to its name. */
  private bindData(st: BindStatement): boolean {
    const a = st.bytes ? this.s.k.fromBytes(st.dtype, st.shape, st.bytes) : this.s.k.fromNumbers(st.dtype, st.shape, st.values ?? []);
    const existed = this.s.names.has(st.out);
    this.bind(st.out, a);
    return existed;
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
      const target = this.lookup(st.into);
      this.checkInPlace(target, st.into);
      const value = Number((p.attrs as { value?: unknown }).value);
      if (!Number.isFinite(value) && !Number.isNaN(value)) throw fail('invalid_attribute', '`value` of `_fill` must be a number');
      this.s.k.fill(target, value);
      this.noteWritten(st.into);
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
    // Anomaly mode reads the inputs after the op ran: none may lend its buffer to the output.
    const lend = def.inPlace && !st.into && !this.s.scopes.detectAnomaly;
    const donated = lend ? this.dyingInput(def, p, inputs) : null;
    const replaced = lend && !donated ? this.replacedBinding(p, inputs) : null;
    if (donated) this.s.memory.donate(donated.cell);
    if (replaced) this.s.memory.donateReplaced(replaced);
    let outs: NDArray[];
    try {
      outs = applyParsed(def, inputs, p.attrs);
    } finally {
      if (donated) this.s.memory.donate(null);
      if (replaced) this.s.memory.donateReplaced(null);
    }
    if (def.visibleOutputs !== undefined && def.visibleOutputs < outs.length) outs = outs.slice(0, def.visibleOutputs);
    const stats = this.s.stats;
    stats.opsRun++;
    stats.byOp.set(def.name, (stats.byOp.get(def.name) ?? 0) + 1);
    if (def.name === 'asscalar') this.scalars.add(outs[0]);
    // A queued kernel that fails must leave its outputs unbound: run the queue before binding.
    if (this.nameStatements) this.s.memory.backend.drain?.();
    if (st.into) {
      this.writeInto(st.into, outs[0]);
      return;
    }
    const names = this.outNames(st, outs.length);
    for (let i = 0; i < names.length; i++) this.bind(names[i], outs[i]);
  }

  /**
   * An input of an elementwise op that dies with the statement, whose buffer the output may take
   * (`x = x * 2`, or a temporary read for the last time): the statement rebinds its name, or it
   * is a temporary no later statement reads; nothing else references the array or its buffer
   * (no other name, view, gradient slot or tape saving it); and, while recording, the op does not
   * save it for its vjp.
   */
  private dyingInput(def: OpDef, p: Prepared, inputs: Value[]): NDArray | null {
    const outs = p.st.out;
    const out = typeof outs === 'string' ? outs : Array.isArray(outs) && outs.length === 1 ? outs[0] : undefined;
    const saves = def.save.inputs;
    for (let i = 0; i < inputs.length; i++) {
      const a = inputs[i];
      const ref = p.inputs[i];
      if (!(a instanceof NDArray) || typeof ref !== 'string') continue;
      const temp = ref.startsWith('%');
      const holder = temp ? this.temps.get(ref) : this.s.names.get(ref);
      // A result kept to the end has its last use at Infinity.
      // The interpreter's temporaries die when it says (releaseTemps), not at a last read: a Python
      // value may still refer to one after the statement that reads it.
      const dies = holder === a && (ref === out || (temp && !this.interactive && this.lastUse.get(ref) === this.seq));
      if (!dies || a.refs !== 1 || a.cell.refs !== 1) continue;
      if (this.s.scopes.isRecording && (saves === true || (Array.isArray(saves) && saves.includes(i)))) continue;
      return a;
    }
    return null;
  }

  /**
   * The array the statement's output name holds, which dies as the statement rebinds it (`d = a + b`
   * in a loop), when the op does not read it and nothing else references it or its buffer: the
   * output may be written over it. Its buffer would otherwise go back to the cache only once the
   * kernels queued on it have run, after the next output was allocated, so a program of K such
   * statements kept K buffers in flight and wrote each output cold (16 of 4 MB are twice an L3).
   * The native stream runs the new write after every queued use of the buffer.
   */
  private replacedBinding(p: Prepared, inputs: Value[]): NDArray | null {
    const outs = p.st.out;
    const out = typeof outs === 'string' ? outs : Array.isArray(outs) && outs.length === 1 ? outs[0] : undefined;
    if (out === undefined || out.startsWith('%')) return null;
    const old = this.s.names.get(out);
    if (!old || old.refs !== 1 || old.cell.refs !== 1 || old.cell.saves !== 0 || old.autograd !== null) return null;
    for (const a of inputs) if (a instanceof NDArray && a.cell === old.cell) return null;
    return old;
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
      const prev = this.temps.get(name);
      if (prev === a) return;
      retain(a);
      this.temps.set(name, a);
      if (prev) release(prev);
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

  private noteWritten(ref: string): void {
    if (!ref.startsWith('%')) this.bound.push(ref.replace(/\.grad$/, ''));
  }

  private writeInto(ref: string, value: NDArray): void {
    const target = this.lookup(ref);
    if (!sameShape(target.shape, value.shape)) {
      throw fail('shape_mismatch', `cannot write a result of shape ${shapeStr(value.shape)} into \`${ref}\` of shape ${shapeStr(target.shape)}`, { arg: 'into' });
    }
    if (target.dtype !== value.dtype) throw fail('dtype_mismatch', `cannot write a ${value.dtype} result into \`${ref}\` (${target.dtype})`, { arg: 'into' });
    this.checkInPlace(target, ref);
    this.s.k.assign(value, target);
    // The array keeps its identity and gradient buffer; it takes the result's history, if any.
    if (isRecorded(value)) takeHistory(target, value);
    else if (!isVariable(target)) setHistory(target, null);
    this.noteWritten(ref);
  }

  private lookup(ref: string): NDArray {
    if (ref.startsWith('%')) {
      if (ref.endsWith('.grad')) {
        const g = gradOf(this.lookup(ref.slice(0, -5)));
        if (!g) throw fail('no_grad', 'this array has no gradient buffer; call attach_grad() on it before recording');
        return g;
      }
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
    return this.s.k.fromNumbers(like?.dtype ?? dtypeHint ?? this.s.defaultDtype, shape, values);
  }
}
