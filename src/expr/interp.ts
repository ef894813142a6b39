/**
 * The interpreter: runs a program with Python's control flow (def, if, while, for, classes and
 * autograd.Function) by walking its AST. Array work still goes through the compiler (./compile.ts),
 * which emits program statements; the interpreter runs them through its Machine whenever a value
 * must be known: a truth test, a call, the end of a statement. Python values live here only, as
 * plain data: no name or attribute reaches a JavaScript object of the host.
 */
import { ApiError, fail } from '../errors.js';
import type { ScopeKind, Statement } from '../program/format.js';
import { Compiler, describeValue, type Host, type PyObj, type Value } from './compile.js';
import { syntaxError, type Pos } from './lexer.js';
import { Functional, type CheckReport, type FunctionalEnv } from './functional.js';
import type { Expr, Param, Stmt } from './parser.js';

/** An array the machine keeps beyond the request's temporaries: opaque here. */
export type Held = object;

/** What the interpreter may know of an array without reading it: `variable` when it has a gradient buffer. */
export interface ArrayInfo { shape: readonly number[]; dtype: string; variable: boolean }

/** A custom Function's node, as the interpreter hands it to the machine to record. */
export interface FunctionRecord {
  name: string;
  inputs: string[];
  outputs: string[];
  saved: Held[];
  /** Gradients of the outputs -> gradients of the inputs (null: none), run by an interpreter of the machine's choice. */
  backward(interp: Interpreter, grads: Held[]): (Held | null)[];
}

/** What the interpreter runs on: the session side implements it (src/session/python.ts). */
export interface Machine {
  /** Runs statements compiled from `line` of the source. */
  run(statements: Statement[], line: number): void;
  info(ref: string): ArrayInfo;
  /** The array's numbers; waits for the kernels that write it. */
  read(ref: string): Float64Array;
  /** Drops the temporaries numbered above `mark` that `keep` does not name. */
  release(mark: number, keep: Set<string>): void;
  scope<T>(kind: ScopeKind, trainMode: boolean | undefined, fn: () => T): T;
  /** Runs fn with recording paused and the training flag kept (Function.forward). */
  unrecorded<T>(fn: () => T): T;
  isRecording(): boolean;
  hold(ref: string): Held;
  /** Binds a held array to the temporary `name`. */
  adopt(h: Held, name: string): void;
  recordFunction(r: FunctionRecord): void;
  /** Definitions that outlive the request (the session's), by name. */
  readonly defs: Map<string, Definition>;
  /** Milliseconds since the epoch when the request's time budget ends. */
  readonly deadline: number;
  /** What a new array may take: the elements of one, and the session's bytes left. */
  budget(): { maxArrayElements: number; bytesFree: number };
}

export interface InterpLimits {
  maxLength: number;
  maxDepth: number;
  maxStatements: number;
  /** Statements, loop iterations and calls one request may take. */
  maxSteps: number;
  maxCallDepth: number;
  /** Definitions one session may hold. */
  maxDefinitions: number;
  requestTimeoutMs: number;
}

// --- Python objects ---

interface FunctionObj extends PyObj {
  kind: 'function';
  params: Param[];
  defaults: (Value | undefined)[];
  body: Stmt[];
  /** Names the body binds: local to each call, as Python decides at definition time. */
  locals: Set<string>;
  source: Source;
}
interface ClassObj extends PyObj {
  kind: 'class';
  methods: Map<string, FunctionObj>;
  /** A subclass of autograd.Function. */
  isFunction: boolean;
  source: Source;
}
interface InstanceObj extends PyObj {
  kind: 'object';
  cls: ClassObj;
  attrs: Map<string, Value>;
  used: boolean;
}
interface MethodObj extends PyObj { kind: 'method'; self: InstanceObj; fn: FunctionObj }
interface BuiltinObj extends PyObj {
  kind: 'builtin';
  call(args: Value[], kwargs: [string, Value][], at: Pos): Value;
}
interface RangeObj extends PyObj { kind: 'range'; start: number; stop: number; step: number }

/** Where a definition's statements came from, for tracebacks and listings. */
export interface Source { lines: string[]; firstLine: number }

/** What a session keeps of a def or class. */
export interface Definition {
  name: string;
  kind: 'function' | 'class';
  /** Parameters as written (`a, b=2`); methods for a class. */
  signature: string;
  source: string;
  obj: PyObj;
}

type Signal = undefined | { k: 'break' } | { k: 'continue' } | { k: 'return'; v: Value };

interface Frame {
  name: string;
  /** null at the top level, whose names are the program's globals and the session's arrays. */
  locals: Map<string, Value> | null;
  localNames: Set<string>;
  line: number;
  source: Source;
  /** The last temporary made before the frame was entered. */
  mark: number;
}

const NONE: Value = { t: 'lit', v: null };
const num = (v: number, isInt = Number.isInteger(v)): Value => ({ t: 'num', v, isInt });
const FUNCTION_BASES = new Set(['Function', 'autograd.Function', 'mx.autograd.Function', 'mxnet.autograd.Function']);
/** Elements a range or a list may materialise; loops over a range never do. */
const MAX_ITEMS = 1_000_000;
const MAX_PRINT = 1 << 20;
const MAX_TRACEBACK = 20;

export interface InterpOutcome {
  /** The value of a last bare expression. */
  result?: Value;
  printed: string;
}

function programError(exception: string, message: string, extra: Record<string, unknown> = {}): ApiError {
  return fail('program_error', `${exception}: ${message}`, { exception, ...extra });
}

export class Interpreter implements Host {
  readonly compiler: Compiler;
  private readonly frames: Frame[] = [];
  private readonly globals = new Map<string, Value>();
  private steps = 0;
  private printed = '';
  private readonly builtins = new Map<string, BuiltinObj>();
  /** Values a running for loop still iterates over. */
  private readonly pinned: Value[] = [];

  constructor(private readonly m: Machine, private readonly limits: InterpLimits) {
    this.compiler = new Compiler({ maxStatements: limits.maxStatements }, this);
    this.defineBuiltins();
  }

  // --- running ---

  run(stmts: Stmt[], src: string): InterpOutcome {
    const source: Source = { lines: src.split(/\r\n|\r|\n/), firstLine: 1 };
    this.frames.push({ name: '<module>', locals: null, localNames: new Set(), line: 1, source, mark: this.compiler.mark });
    let result: Value | undefined;
    try {
      for (let i = 0; i < stmts.length; i++) {
        const s = stmts[i]!;
        if (i === stmts.length - 1 && s.k === 'expr') {
          result = this.traced(s, () => this.simple(s, true));
          continue;
        }
        const sig = this.exec(s);
        if (sig) throw this.traceback(syntaxError(`'${sig.k}' outside ${sig.k === 'return' ? 'a function' : 'a loop'}`, s.pos));
      }
    } finally {
      this.frames.pop();
    }
    return result === undefined || result.t === 'void' ? { printed: this.printed } : { result, printed: this.printed };
  }

  /** Runs a custom Function's backward (MXNet's Function.backward) on gradients the walk hands over. */
  functionBackward(inst: InstanceObj, saved: Held[], grads: Held[]): (Held | null)[] {
    const adopt = (h: Held): Value => {
      const name = this.compiler.fresh();
      this.m.adopt(h, name);
      return { t: 'ref', ref: name };
    };
    inst.attrs.set('saved_tensors', { t: 'list', items: saved.map(adopt), tuple: true });
    const fn = this.method(inst, 'backward', inst.cls.source.firstLine);
    const out = this.callFunction(fn, [{ t: 'obj', o: inst }, ...grads.map(adopt)], [], { line: fn.source.firstLine, column: 1 });
    this.flush();
    const items = out.t === 'list' ? out.items : [out];
    return items.map((v) => {
      if (v.t === 'lit' && v.v === null) return null;
      if (v.t !== 'ref') throw programError('TypeError', `${inst.cls.name}.backward must return NDArrays (or None), not ${describeValue(v)}`);
      return this.m.hold(v.ref);
    });
  }

  private flush(): void {
    const pending = this.compiler.take();
    if (pending.length) this.m.run(pending, this.frame.line);
  }

  private step(at: Pos): void {
    if (++this.steps > this.limits.maxSteps) {
      throw fail('quota_exceeded', `the program took more than ${this.limits.maxSteps} steps (statements, loop iterations and calls; GRADSERVE_MAX_STEPS) and stopped at line ${at.line}`, {
        limit: 'steps', value: this.steps, line: at.line,
      });
    }
    // The clock is read every 64 steps: a step is cheap, Date.now is not free.
    if ((this.steps & 63) === 0 && Date.now() > this.m.deadline) {
      throw fail('time_limit', `the program ran longer than ${this.limits.requestTimeoutMs} ms (GRADSERVE_REQUEST_TIMEOUT_MS) and stopped at line ${at.line}`, {
        limit: 'request_time', line: at.line,
      });
    }
  }

  private get frame(): Frame {
    return this.frames[this.frames.length - 1]!;
  }

  private block(body: Stmt[]): Signal {
    for (const s of body) {
      const sig = this.exec(s);
      if (sig) return sig;
    }
    return undefined;
  }

  /** Runs fn for statement s; an error leaving it gets the traceback of where it happened. */
  private traced<T>(s: Stmt, fn: () => T): T {
    this.frame.line = s.pos.line;
    try {
      return fn();
    } catch (e) {
      throw this.traceback(e);
    }
  }

  private exec(s: Stmt): Signal {
    this.traced(s, () => this.step(s.pos));
    switch (s.k) {
      case 'if':
        for (const b of s.branches) {
          if (this.traced(s, () => this.truthOf(b.test))) return this.block(b.body);
          this.frame.line = b.pos.line;
        }
        return s.orelse ? this.block(s.orelse) : undefined;
      case 'while':
        for (;;) {
          if (!this.traced(s, () => this.truthOf(s.test))) return undefined;
          const sig = this.block(s.body);
          if (sig?.k === 'break') return undefined;
          if (sig?.k === 'return') return sig;
          this.traced(s, () => this.step(s.pos));
        }
      case 'for':
        return this.forLoop(s);
      case 'with':
        return this.traced(s, () => this.withBlock(s.items, 0, s.body));
      case 'break': case 'continue':
        return { k: s.k };
      case 'pass':
        return undefined;
      case 'return':
        return this.traced(s, () => {
          const v = s.value ? this.compiler.value(s.value) : NONE;
          this.flush();
          this.release([v]);
          return { k: 'return' as const, v };
        });
      case 'assert':
        this.traced(s, () => {
          if (this.truthOf(s.test)) return;
          const msg = s.msg ? this.str(this.compiler.value(s.msg)) : '';
          throw fail('assertion_failed', `AssertionError${msg ? `: ${msg}` : ''} (line ${s.pos.line})`, { exception: 'AssertionError', line: s.pos.line });
        });
        return undefined;
      case 'def':
        this.traced(s, () => this.define(s));
        return undefined;
      case 'class':
        this.traced(s, () => this.defineClass(s));
        return undefined;
      default:
        this.traced(s, () => this.simple(s, false));
        return undefined;
    }
  }

  /** Expression, assignment, augmented assignment, del: compiled, then run at once. */
  private simple(s: Stmt, keepValue: boolean): Value | undefined {
    let v: Value | undefined;
    if (s.k === 'assign' && s.targets.some((t) => this.isAttrTarget(t))) {
      v = this.compiler.value(s.value);
      for (const t of s.targets) {
        if (this.isAttrTarget(t)) this.setAttr(t as Extract<Expr, { k: 'postfix' }>, v);
        else this.compiler.assignValue(t, v, s.pos);
      }
    } else {
      v = this.compiler.simple(s);
    }
    this.flush();
    this.release(keepValue && v ? [v] : []);
    return v;
  }

  private truthOf(e: Expr): boolean {
    const b = this.truth(this.compiler.value(e), e.pos);
    this.release([]);
    return b;
  }

  private forLoop(s: Extract<Stmt, { k: 'for' }>): Signal {
    const iter = this.traced(s, () => {
      const v = this.compiler.value(s.iter);
      this.flush();
      return v;
    });
    const each = (item: Value): Signal | 'stop' => {
      this.traced(s, () => {
            this.compiler.assignValue(s.target, item, s.pos);
        this.flush();
        this.release([]);
      });
      const sig = this.block(s.body);
      if (sig?.k === 'break') return 'stop';
      if (sig?.k === 'return') return sig;
      this.traced(s, () => this.step(s.pos));
      return undefined;
    };
    if (iter.t === 'obj' && iter.o.kind === 'range') {
      const r = iter.o as RangeObj;
      for (let i = r.start; r.step > 0 ? i < r.stop : i > r.stop; i += r.step) {
        const sig = each(num(i, true));
        if (sig === 'stop') return undefined;
        if (sig) return sig;
      }
      return undefined;
    }
    const items = this.traced(s, () => this.items(iter, s.iter.pos));
    this.pinned.push({ t: 'list', items });
    try {
      for (const item of items) {
        const sig = each(item);
        if (sig === 'stop') return undefined;
        if (sig) return sig;
      }
      return undefined;
    } finally {
      this.pinned.pop();
    }
  }

  private withBlock(items: Expr[], i: number, body: Stmt[]): Signal {
    if (i === items.length) return this.block(body);
    const scope = this.compiler.scopeOf(items[i]!);
    this.flush();
    return this.m.scope(scope.kind, scope.train_mode, () => this.withBlock(items, i + 1, body));
  }

  // --- temporaries ---

  /**
   * Frees the temporaries nothing holds any more, once a statement is done. Only those made since
   * the current frame was entered are candidates: the statements of outer frames that are still
   * running (the call in `y = g(a) + f(x)`) may hold older ones on the JavaScript stack. A loop
   * pins what it iterates over.
   */
  private release(keep: Value[], mark = this.frame.mark): void {
    const names = new Set<string>();
    const seen = new Set<object>();
    const visit = (v: Value | undefined): void => {
      if (!v) return;
      if (v.t === 'ref') names.add(v.ref.replace(/\.grad$/, ''));
      else if (v.t === 'list') {
        if (seen.has(v)) return;
        seen.add(v);
        v.items.forEach(visit);
      } else if (v.t === 'obj') {
        if (seen.has(v.o)) return;
        seen.add(v.o);
        const o = v.o as InstanceObj | MethodObj;
        if (o.kind === 'object') for (const x of (o as InstanceObj).attrs.values()) visit(x);
        if (o.kind === 'method') visit({ t: 'obj', o: (o as MethodObj).self });
      }
    };
    keep.forEach(visit);
    this.pinned.forEach(visit);
    for (const f of this.frames) if (f.locals) for (const v of f.locals.values()) visit(v);
    for (const v of this.globals.values()) visit(v);
    this.m.release(mark, names);
  }

  // --- Host: autograd's transforms ---

  /** The report of the program's last gradcheck, for POST /gradcheck to answer. */
  lastCheck: CheckReport | undefined;

  functional(name: string, args: Value[], kwargs: [string, Value][], at: Pos): Value {
    const fx = new Functional(this.functionalEnv());
    switch (name) {
      case 'vjp': return fx.vjp(args, kwargs, at);
      case 'jvp': return fx.jvp(args, kwargs, at);
      case 'jacobian': return fx.jacobian(args, kwargs, at);
      case 'hessian': return fx.hessian(args, kwargs, at);
      case 'hvp': return fx.hvp(args, kwargs, at);
      case 'vhp': return fx.hvp(args, kwargs, at, 'autograd.vhp');
      case 'gradcheck': case 'gradgradcheck': {
        const { value, report } = name === 'gradcheck' ? fx.gradcheck(args, kwargs, at) : fx.gradgradcheck(args, kwargs, at);
        this.lastCheck = report;
        return value;
      }
      case 'per_sample_grad': {
        const a = new Map(kwargs);
        const list = (v: Value | undefined) => (v === undefined ? [] : v.t === 'list' ? v.items : [v]);
        const hg = a.get('head_grads');
        const headGrads = hg === undefined || (hg.t === 'lit' && hg.v === null) ? undefined : list(hg).map((g) => (g.t === 'lit' && g.v === null ? null : g));
        const cg = a.get('create_graph');
        return fx.perSample(list(a.get('heads')), list(a.get('variables')), headGrads, cg?.t === 'lit' && cg.v === true, at);
      }
      default: throw programError('AttributeError', `module 'autograd' has no attribute '${name}'`, { line: at.line });
    }
  }

  private functionalEnv(): FunctionalEnv {
    const c = this.compiler;
    return {
      call: (f, args, at) => {
        const v = this.call(f, args, [], at);
        this.flush();
        return v;
      },
      op: (name, args, attrs, at) => c.op(name, args, at, attrs),
      grad: (heads, vars, o, at) => {
        const out = c.grad(heads, vars, o, at);
        this.flush();
        return out;
      },
      attachGrad: (v) => {
        if (v.t !== 'ref') throw new Error('attachGrad: not an array');
        c.attachGradTo(v.ref);
        this.flush();
      },
      scope: (kind, fn) => {
        this.flush();
        return this.m.scope(kind, undefined, () => {
          const r = fn();
          this.flush();
          return r;
        });
      },
      info: (v) => {
        this.flush();
        return this.m.info((v as { ref: string }).ref);
      },
      read: (v) => {
        this.flush();
        return this.m.read((v as { ref: string }).ref);
      },
      step: (at) => this.step(at),
      mark: () => c.mark,
      release: (mark, keep) => {
        this.flush();
        this.release(keep, mark);
      },
      budget: () => this.m.budget(),
    };
  }

  // --- Host: names ---

  lookup(id: string, at: Pos): Value | undefined {
    const f = this.frame;
    if (f.locals) {
      const v = f.locals.get(id);
      if (v) return v;
      if (f.localNames.has(id)) throw programError('UnboundLocalError', `local variable '${id}' referenced before assignment`, { line: at.line });
    }
    const g = this.globals.get(id);
    if (g) return g;
    const d = this.m.defs.get(id);
    if (d) return { t: 'obj', o: d.obj };
    const b = this.builtins.get(id);
    return b ? { t: 'obj', o: b } : undefined;
  }

  /**
   * A value about to be held by a Python name, list or attribute: references to session names in
   * it become references to the arrays they name now, as Python's names hold objects, not names.
   */
  private own(v: Value, seen = new Set<Value>()): Value {
    if (v.t === 'ref' && !v.ref.startsWith('%')) {
      const name = this.compiler.fresh();
      this.compiler.emitAlias(v.ref, name);
      return { t: 'ref', ref: name };
    }
    if (v.t === 'list' && !seen.has(v)) {
      seen.add(v);
      for (let i = 0; i < v.items.length; i++) v.items[i] = this.own(v.items[i]!, seen);
    }
    return v;
  }

  bind(id: string, v: Value): boolean {
    const f = this.frame;
    if (v.t === 'void') return false;
    if (f.locals) {
      f.locals.set(id, this.own(v));
      return true;
    }
    if (this.m.defs.has(id) && !(v.t === 'obj' && this.m.defs.get(id)!.obj === v.o)) this.m.defs.delete(id);
    if (v.t === 'ref') {
      this.globals.delete(id);
      return false;
    }
    this.globals.set(id, this.own(v));
    return true;
  }

  unbind(id: string): boolean {
    const f = this.frame;
    if (f.locals) {
      if (!f.locals.delete(id)) throw programError('UnboundLocalError', `local variable '${id}' referenced before assignment`);
      return true;
    }
    const d = this.m.defs.delete(id);
    return this.globals.delete(id) || d;
  }

  // --- Host: values ---

  truth(v: Value, at: Pos): boolean {
    switch (v.t) {
      case 'num': return v.v !== 0;
      case 'str': return v.v.length > 0;
      case 'lit': return v.v === true;
      case 'list': return v.items.length > 0;
      case 'obj': return v.o.kind === 'range' ? this.rangeLength(v.o as RangeObj) > 0 : true;
      case 'void': throw syntaxError('this call has no value', at);
      case 'ref': {
        this.flush();
        const { shape } = this.m.info(v.ref);
        const size = shape.reduce((a, b) => a * b, 1);
        if (size !== 1) {
          throw programError('ValueError', `The truth value of an NDArray with ${size} elements is ambiguous (line ${at.line}): reduce it first, e.g. with .sum() or .asscalar()`, { line: at.line });
        }
        return this.m.read(v.ref)[0] !== 0;
      }
    }
  }

  scalar(v: Value, at: Pos): Value {
    return num(this.toNumber(v, 'asscalar()', at), false);
  }

  attr(obj: Value, name: string, at: Pos): Value {
    if (obj.t === 'ref') {
      this.flush();
      const { shape, dtype } = this.m.info(obj.ref);
      switch (name) {
        case 'shape': return { t: 'list', items: shape.map((d) => num(d, true)), tuple: true };
        case 'ndim': return num(shape.length, true);
        case 'size': return num(shape.reduce((a, b) => a * b, 1), true);
        case 'dtype': return { t: 'str', v: dtype };
        default: break;
      }
    }
    if (obj.t === 'obj') {
      const o = obj.o;
      if (o.kind === 'object') {
        const inst = o as InstanceObj;
        const own = inst.attrs.get(name);
        if (own) return own;
        const fn = inst.cls.methods.get(name);
        if (fn) return { t: 'obj', o: { kind: 'method', name: `${inst.cls.name}.${name}`, self: inst, fn } as MethodObj };
        if (inst.cls.isFunction) {
          if (name === 'saved_tensors') return { t: 'list', items: [], tuple: true };
          if (name === 'save_for_backward') {
            return this.builtin('save_for_backward', (args) => {
              inst.attrs.set('saved_tensors', this.own({ t: 'list', items: args, tuple: true }));
              return NONE;
            });
          }
        }
      }
      if (o.kind === 'super' && name === '__init__') return this.builtin('__init__', () => NONE);
    }
    if (obj.t === 'list' && !obj.tuple && name === 'append') {
      return this.builtin('append', (args, kw, pos) => {
        this.arity('append', args, kw, 1, 1, pos);
        if (obj.items.length >= MAX_ITEMS) throw programError('MemoryError', `a list holds at most ${MAX_ITEMS} items`);
        obj.items.push(this.own(args[0]!));
        return NONE;
      });
    }
    throw programError('AttributeError', `${describeValue(obj)} has no attribute '${name}' (line ${at.line})`, { line: at.line });
  }

  call(callee: Value, args: Value[], kwargs: [string, Value][], at: Pos): Value {
    this.step(at);
    this.flush();
    if (callee.t !== 'obj') throw programError('TypeError', `${describeValue(callee)} is not callable (line ${at.line})`, { line: at.line });
    const o = callee.o;
    switch (o.kind) {
      case 'builtin': return (o as BuiltinObj).call(args, kwargs, at);
      case 'function': return this.callFunction(o as FunctionObj, args, kwargs, at);
      case 'method': return this.callFunction((o as MethodObj).fn, [{ t: 'obj', o: (o as MethodObj).self }, ...args], kwargs, at);
      case 'class': return this.instantiate(o as ClassObj, args, kwargs, at);
      case 'object': {
        const inst = o as InstanceObj;
        if (inst.cls.isFunction) return this.callCustomFunction(inst, args, kwargs, at);
        break;
      }
      default: break;
    }
    throw programError('TypeError', `${describeValue(callee)} is not callable (line ${at.line})`, { line: at.line });
  }

  // --- functions and classes ---

  private define(s: Extract<Stmt, { k: 'def' }>): void {
    const fn = this.makeFunction(s, this.sourceOf(s.pos.line, s.lastLine));
    this.bindDefinition(s.name, fn, s.params.map(paramText).join(', '));
  }

  private sourceOf(first: number, last: number): Source {
    const own = this.frame.source;
    const lines = own.lines.slice(first - own.firstLine, last - own.firstLine + 1);
    return { lines, firstLine: first };
  }

  private makeFunction(s: Extract<Stmt, { k: 'def' }>, source: Source): FunctionObj {
    const defaults = s.params.map((p) => {
      if (!p.default) return undefined;
      const v = this.compiler.value(p.default);
      if (holdsArray(v)) throw syntaxError('a default value must be a Python constant, not an array: default to None and create the array in the body', p.default.pos);
      return v;
    });
    const locals = new Set(s.params.map((p) => p.name));
    collectLocals(s.body, locals);
    return { kind: 'function', name: s.name, params: s.params, defaults, body: s.body, locals, source };
  }

  private bindDefinition(name: string, obj: FunctionObj | ClassObj, signature: string): void {
    const v: Value = { t: 'obj', o: obj };
    if (this.frame.locals) {
      this.frame.locals.set(name, v);
      return;
    }
    if (!this.m.defs.has(name) && this.m.defs.size >= this.limits.maxDefinitions) {
      throw fail('quota_exceeded', `this session holds ${this.limits.maxDefinitions} definitions, the limit (GRADSERVE_MAX_DEFINITIONS); del one first`, {
        limit: 'definitions', value: this.limits.maxDefinitions, line: this.frame.line,
      });
    }
    this.globals.delete(name);
    this.m.defs.set(name, { name, kind: obj.kind, signature, source: obj.source.lines.join('\n'), obj });
  }

  private defineClass(s: Extract<Stmt, { k: 'class' }>): void {
    let isFunction = false;
    for (const b of s.bases) {
      const path = dottedPath(b);
      if (path && FUNCTION_BASES.has(path)) isFunction = true;
      else if (path !== 'object') throw syntaxError('a class may derive from autograd.Function (or nothing) only', b.pos);
    }
    const source = this.sourceOf(s.pos.line, s.lastLine);
    const methods = new Map<string, FunctionObj>();
    for (const st of s.body) {
      if (st.k === 'def') methods.set(st.name, this.makeFunction(st, source));
      else if (st.k === 'pass' || (st.k === 'expr' && st.expr.k === 'str')) continue;
      else throw syntaxError('a class body holds method definitions only', st.pos);
    }
    if (isFunction) {
      for (const m of ['forward', 'backward']) {
        if (!methods.has(m)) throw syntaxError(`a subclass of autograd.Function defines ${m}(self, ...)`, s.pos);
      }
    }
    const cls: ClassObj = { kind: 'class', name: s.name, methods, isFunction, source };
    this.bindDefinition(s.name, cls, [...methods.keys()].join(', '));
  }

  private method(inst: InstanceObj, name: string, line: number): FunctionObj {
    const fn = inst.cls.methods.get(name);
    if (!fn) throw programError('AttributeError', `'${inst.cls.name}' object has no attribute '${name}'`, { line });
    return fn;
  }

  private instantiate(cls: ClassObj, args: Value[], kwargs: [string, Value][], at: Pos): Value {
    const inst: InstanceObj = { kind: 'object', name: cls.name, cls, attrs: new Map(), used: false };
    const init = cls.methods.get('__init__');
    if (init) this.callFunction(init, [{ t: 'obj', o: inst }, ...args], kwargs, at);
    else this.arity(cls.name, args, kwargs, 0, 0, at);
    return { t: 'obj', o: inst };
  }

  callFunction(fn: FunctionObj, args: Value[], kwargs: [string, Value][], at: Pos): Value {
    if (this.frames.length > this.limits.maxCallDepth) {
      throw fail('quota_exceeded', `calls nest deeper than ${this.limits.maxCallDepth} (GRADSERVE_MAX_CALL_DEPTH) at line ${at.line}, calling ${fn.name}`, {
        limit: 'call_depth', value: this.limits.maxCallDepth, line: at.line,
      });
    }
    const locals = new Map<string, Value>();
    const params = fn.params;
    if (args.length > params.length) {
      throw programError('TypeError', `${fn.name}() takes ${params.length} positional argument${params.length === 1 ? '' : 's'} but ${args.length} were given`, { line: at.line });
    }
    args.forEach((a, i) => locals.set(params[i]!.name, a));
    for (const [k, v] of kwargs) {
      if (!params.some((p) => p.name === k)) throw programError('TypeError', `${fn.name}() got an unexpected keyword argument '${k}'`, { line: at.line });
      if (locals.has(k)) throw programError('TypeError', `${fn.name}() got multiple values for argument '${k}'`, { line: at.line });
      locals.set(k, v);
    }
    params.forEach((p, i) => {
      if (locals.has(p.name)) return;
      const d = fn.defaults[i];
      if (!d) throw programError('TypeError', `${fn.name}() missing required argument '${p.name}'`, { line: at.line });
      locals.set(p.name, d);
    });
    // Arrays passed in are the caller's: a local that holds a session name holds its array.
    for (const [k, v] of locals) {
      if (v.t === 'ref' && !v.ref.startsWith('%')) {
        const name = this.compiler.fresh();
        this.compiler.emitAlias(v.ref, name);
        locals.set(k, { t: 'ref', ref: name });
      }
    }
    this.flush();
    this.frames.push({ name: fn.name, locals, localNames: fn.locals, line: fn.source.firstLine, source: fn.source, mark: this.compiler.mark });
    try {
      const sig = this.block(fn.body);
      if (sig?.k === 'break' || sig?.k === 'continue') throw syntaxError(`'${sig.k}' outside a loop`, at);
      return sig?.k === 'return' ? sig.v : NONE;
    } finally {
      this.frames.pop();
    }
  }

  /** MXNet 1.x Function.__call__: forward with recording paused, then one node for the whole call. */
  private callCustomFunction(inst: InstanceObj, args: Value[], kwargs: [string, Value][], at: Pos): Value {
    if (kwargs.length) throw programError('TypeError', `${inst.cls.name}() takes NDArrays positionally only`, { line: at.line });
    if (inst.used) {
      throw programError('AssertionError', 'Each Function instance can only be called once. Please create another instance.', { line: at.line });
    }
    inst.used = true;
    const inputs = args.map((a) => {
      if (a.t !== 'ref') throw programError('TypeError', `the inputs of ${inst.cls.name} must be NDArrays, not ${describeValue(a)}`, { line: at.line });
      return a.ref;
    });
    const recording = this.m.isRecording();
    const forward = this.method(inst, 'forward', at.line);
    const out = this.m.unrecorded(() => {
      const v = this.callFunction(forward, [{ t: 'obj', o: inst }, ...args], [], at);
      this.flush();
      return v;
    });
    if (!recording) return out;
    const outs = out.t === 'list' ? out.items : [out];
    const outputs = outs.map((v) => {
      if (v.t !== 'ref') throw programError('TypeError', `${inst.cls.name}.forward must return NDArrays, not ${describeValue(v)}`, { line: at.line });
      return v.ref;
    });
    const savedValue = inst.attrs.get('saved_tensors');
    const saved = (savedValue?.t === 'list' ? savedValue.items : []).map((v) => {
      if (v.t !== 'ref') throw programError('TypeError', `save_for_backward takes NDArrays, not ${describeValue(v)}`, { line: at.line });
      return this.m.hold(v.ref);
    });
    this.m.recordFunction({
      name: inst.cls.name,
      inputs,
      outputs,
      saved,
      backward: (interp, grads) => interp.functionBackward(inst, saved, grads),
    });
    return out;
  }

  private isAttrTarget(t: Expr): boolean {
    if (t.k !== 'postfix' || t.trailers[t.trailers.length - 1]!.t !== 'attr') return false;
    const name = (t.trailers[t.trailers.length - 1] as { name: string }).name;
    return name !== 'grad';
  }

  /** `self.x = v`: attributes of instances only. */
  private setAttr(t: Extract<Expr, { k: 'postfix' }>, v: Value): void {
    const last = t.trailers[t.trailers.length - 1] as { name: string; pos: Pos };
    const base = t.trailers.length === 1 ? this.compiler.value(t.base) : this.compiler.value({ ...t, trailers: t.trailers.slice(0, -1) });
    if (base.t !== 'obj' || base.o.kind !== 'object') throw programError('AttributeError', `cannot set attribute '${last.name}' of ${describeValue(base)}`, { line: last.pos.line });
    (base.o as InstanceObj).attrs.set(last.name, this.own(v));
  }

  // --- builtins ---

  private builtin(name: string, call: BuiltinObj['call']): Value {
    return { t: 'obj', o: { kind: 'builtin', name, call } as BuiltinObj };
  }

  private arity(name: string, args: Value[], kwargs: [string, Value][], min: number, max: number, at: Pos): void {
    if (kwargs.length) throw programError('TypeError', `${name}() takes no keyword arguments`, { line: at.line });
    if (args.length < min || args.length > max) {
      throw programError('TypeError', `${name}() takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'} (${args.length} given)`, { line: at.line });
    }
  }

  private int(v: Value, what: string, at: Pos): number {
    if (v.t === 'num' && v.isInt) return v.v;
    if (v.t === 'lit' && typeof v.v === 'boolean') return v.v ? 1 : 0;
    throw programError('TypeError', `${what} must be an int, not ${describeValue(v)}`, { line: at.line });
  }

  private toNumber(v: Value, what: string, at: Pos): number {
    if (v.t === 'num') return v.v;
    if (v.t === 'lit' && typeof v.v === 'boolean') return v.v ? 1 : 0;
    if (v.t === 'ref') {
      this.flush();
      const { shape } = this.m.info(v.ref);
      if (shape.reduce((a, b) => a * b, 1) !== 1) throw programError('TypeError', `${what} needs an NDArray of one element`, { line: at.line });
      return this.m.read(v.ref)[0]!;
    }
    if (v.t === 'str' && what.startsWith('float')) {
      if (/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(v.v)) return Number(v.v);
      // Python's spellings of the IEEE specials: float('inf'), float('-Infinity'), float('nan').
      const special = /^\s*([-+]?)(inf|infinity|nan)\s*$/i.exec(v.v);
      if (special) return special[2].toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
      throw programError('ValueError', `could not convert string to float: ${JSON.stringify(v.v)}`, { line: at.line });
    }
    if (v.t === 'str' && what.startsWith('int')) {
      if (/^\s*[-+]?\d+\s*$/.test(v.v)) return Number(v.v);
      throw programError('ValueError', `invalid literal for int() with base 10: ${JSON.stringify(v.v)}`, { line: at.line });
    }
    throw programError('TypeError', `${what} needs a number, not ${describeValue(v)}`, { line: at.line });
  }

  private rangeLength(r: RangeObj): number {
    return Math.max(0, Math.ceil((r.stop - r.start) / r.step));
  }

  /** The items of an iterable, materialised (bounded). */
  private items(v: Value, at: Pos): Value[] {
    if (v.t === 'list') return [...v.items];
    if (v.t === 'str') return [...v.v].map((c) => ({ t: 'str', v: c }));
    if (v.t === 'obj' && v.o.kind === 'range') {
      const r = v.o as RangeObj;
      const n = this.rangeLength(r);
      if (n > MAX_ITEMS) throw programError('MemoryError', `a list holds at most ${MAX_ITEMS} items; loop over the range instead`, { line: at.line });
      return Array.from({ length: n }, (_, i) => num(r.start + i * r.step, true));
    }
    throw programError('TypeError', `${describeValue(v)} is not iterable here: loop over a list, a tuple or a range (over an NDArray: range(len(x)) and x[i])`, { line: at.line });
  }

  private defineBuiltins(): void {
    const def = (name: string, call: BuiltinObj['call']) => this.builtins.set(name, { kind: 'builtin', name, call });
    def('len', (args, kw, at) => {
      this.arity('len', args, kw, 1, 1, at);
      const v = args[0]!;
      if (v.t === 'list') return num(v.items.length, true);
      if (v.t === 'str') return num(v.v.length, true);
      if (v.t === 'obj' && v.o.kind === 'range') return num(this.rangeLength(v.o as RangeObj), true);
      if (v.t === 'ref') {
        const { shape } = this.m.info(v.ref);
        return num(shape[0] ?? 1, true);
      }
      throw programError('TypeError', `object of type ${describeValue(v)} has no len()`, { line: at.line });
    });
    def('range', (args, kw, at) => {
      this.arity('range', args, kw, 1, 3, at);
      const n = args.map((a) => this.int(a, 'a range bound', at));
      const [start, stop, step] = n.length === 1 ? [0, n[0]!, 1] : [n[0]!, n[1]!, n[2] ?? 1];
      if (step === 0) throw programError('ValueError', 'range() arg 3 must not be zero', { line: at.line });
      return { t: 'obj', o: { kind: 'range', name: 'range', start, stop, step } as RangeObj };
    });
    def('abs', (args, kw, at) => {
      this.arity('abs', args, kw, 1, 1, at);
      const v = args[0]!;
      if (v.t === 'ref') return this.compiler.op('abs', [v], at);
      return num(Math.abs(this.toNumber(v, 'abs()', at)), v.t === 'num' ? v.isInt : true);
    });
    const extreme = (name: 'min' | 'max') => def(name, (args, kw, at) => {
      if (kw.length) throw programError('TypeError', `${name}() takes no keyword arguments here`, { line: at.line });
      if (args.length === 1 && args[0]!.t === 'ref') return this.compiler.op(name, [args[0]!], at);
      const items = args.length === 1 ? this.items(args[0]!, at) : args;
      if (!items.length) throw programError('ValueError', `${name}() arg is an empty sequence`, { line: at.line });
      let best = items[0]!;
      for (const x of items.slice(1)) {
        const a = this.toNumber(x, `${name}()`, at), b = this.toNumber(best, `${name}()`, at);
        if (name === 'max' ? a > b : a < b) best = x;
      }
      return best;
    });
    extreme('min');
    extreme('max');
    def('print', (args, kw, at) => {
      let sep = ' ', end = '\n';
      for (const [k, v] of kw) {
        if ((k === 'sep' || k === 'end') && (v.t === 'str' || (v.t === 'lit' && v.v === null))) {
          const s = v.t === 'str' ? v.v : k === 'sep' ? ' ' : '\n';
          if (k === 'sep') sep = s; else end = s;
        } else {
          throw programError('TypeError', `print() takes sep= and end= (strings) only, not '${k}'`, { line: at.line });
        }
      }
      const text = args.map((a) => this.str(a)).join(sep) + end;
      if (this.printed.length + text.length > MAX_PRINT) {
        throw fail('quota_exceeded', `print wrote more than ${MAX_PRINT} characters at line ${at.line}`, { limit: 'print', value: MAX_PRINT, line: at.line });
      }
      this.printed += text;
      return NONE;
    });
    def('int', (args, kw, at) => {
      this.arity('int', args, kw, 1, 1, at);
      return num(Math.trunc(this.toNumber(args[0]!, 'int()', at)), true);
    });
    def('float', (args, kw, at) => {
      this.arity('float', args, kw, 1, 1, at);
      return num(this.toNumber(args[0]!, 'float()', at), false);
    });
    def('bool', (args, kw, at) => {
      this.arity('bool', args, kw, 0, 1, at);
      return { t: 'lit', v: args.length ? this.truth(args[0]!, at) : false };
    });
    def('str', (args, kw, at) => {
      this.arity('str', args, kw, 0, 1, at);
      return { t: 'str', v: args.length ? this.str(args[0]!) : '' };
    });
    def('list', (args, kw, at) => {
      this.arity('list', args, kw, 0, 1, at);
      return { t: 'list', items: args.length ? this.items(args[0]!, at) : [] };
    });
    def('tuple', (args, kw, at) => {
      this.arity('tuple', args, kw, 0, 1, at);
      return { t: 'list', items: args.length ? this.items(args[0]!, at) : [], tuple: true };
    });
    def('enumerate', (args, kw, at) => {
      this.arity('enumerate', args, kw, 1, 1, at);
      return { t: 'list', items: this.items(args[0]!, at).map((x, i) => ({ t: 'list', items: [num(i, true), x], tuple: true })) };
    });
    def('zip', (args, kw, at) => {
      if (kw.length) throw programError('TypeError', 'zip() takes no keyword arguments', { line: at.line });
      const lists = args.map((a) => this.items(a, at));
      const n = lists.length ? Math.min(...lists.map((l) => l.length)) : 0;
      return { t: 'list', items: Array.from({ length: n }, (_, i): Value => ({ t: 'list', items: lists.map((l) => l[i]!), tuple: true })) };
    });
    def('super', () => ({ t: 'obj', o: { kind: 'super', name: 'super' } }));
    def('isinstance', (args, kw, at) => {
      this.arity('isinstance', args, kw, 2, 2, at);
      const [v, types] = args as [Value, Value];
      const wanted = types.t === 'list' && types.tuple ? types.items : [types];
      return { t: 'lit', v: wanted.some((ty) => ty.t === 'obj' && ty.o.kind === 'builtin' && isInstance(v, ty.o.name)) };
    });
  }

  /** Python's str() of a value; an NDArray prints as MXNet prints it. A list inside itself is `[...]`. */
  private str(v: Value, open = new Set<Value>()): string {
    switch (v.t) {
      case 'num':
        if (v.isInt) return String(v.v);
        if (Number.isInteger(v.v) && Math.abs(v.v) < 1e16) return `${v.v}.0`;
        return Number.isNaN(v.v) ? 'nan' : v.v === Infinity ? 'inf' : v.v === -Infinity ? '-inf' : String(v.v);
      case 'str': return v.v;
      case 'lit': return v.v === null ? 'None' : v.v ? 'True' : 'False';
      case 'list': {
        if (open.has(v)) return v.tuple ? '(...)' : '[...]';
        open.add(v);
        const inner = v.items.map((x) => (x.t === 'str' ? `'${x.v}'` : this.str(x, open))).join(', ');
        open.delete(v);
        return v.tuple ? `(${inner}${v.items.length === 1 ? ',' : ''})` : `[${inner}]`;
      }
      case 'obj':
        return v.o.kind === 'range' ? `range(${(v.o as RangeObj).start}, ${(v.o as RangeObj).stop})` : `<${v.o.kind} ${v.o.name}>`;
      case 'void': return 'None';
      case 'ref': {
        this.flush();
        const { shape, dtype } = this.m.info(v.ref);
        const values = this.m.read(v.ref);
        return `\n${formatArray(values, shape, /^u?int/.test(dtype))}\n<NDArray ${shape.join('x')} @cpu(0)>`;
      }
    }
  }

  // --- errors ---

  /** Adds where it happened, once, to an error leaving a statement: Python's traceback, outermost first. */
  private traceback(e: unknown): unknown {
    if (e instanceof RangeError && /call stack/i.test(e.message)) {
      e = fail('quota_exceeded', `the program nests too deeply for the server's stack (line ${this.frame.line}); lower the recursion`, { limit: 'call_depth', value: this.frames.length });
    }
    if (!(e instanceof ApiError) || e.extra.traceback !== undefined) return e;
    // Deep recursion repeats one frame: the outermost and innermost ones say what happened.
    const frames = this.frames.length > MAX_TRACEBACK ? [...this.frames.slice(0, MAX_TRACEBACK / 2), ...this.frames.slice(-MAX_TRACEBACK / 2)] : this.frames;
    const traceback = frames.map((f) => ({
      function: f.name,
      line: f.line,
      statement: (f.source.lines[f.line - f.source.firstLine] ?? '').trim(),
    }));
    const here = traceback[traceback.length - 1]!;
    const where = `line ${here.line}, in ${here.function}`;
    return new ApiError(e.code, `${where}: ${e.message}`, { ...e.extra, line: e.extra.line ?? here.line, function: here.function, traceback });
  }
}

/** Names a function body binds, at any depth of its blocks (not inside nested defs). */
function collectLocals(body: Stmt[], out: Set<string>): void {
  const target = (t: Expr) => {
    if (t.k === 'name') out.add(t.id);
    else if (t.k === 'seq') t.items.forEach(target);
  };
  for (const s of body) {
    switch (s.k) {
      case 'assign': s.targets.forEach(target); break;
      case 'aug': target(s.target); break;
      case 'for': target(s.target); collectLocals(s.body, out); break;
      case 'del': s.names.forEach((n) => out.add(n)); break;
      case 'def': case 'class': out.add(s.name); break;
      case 'if': s.branches.forEach((b) => collectLocals(b.body, out)); if (s.orelse) collectLocals(s.orelse, out); break;
      case 'while': case 'with': collectLocals(s.body, out); break;
      default: break;
    }
  }
}

function isInstance(v: Value, type: string): boolean {
  switch (type) {
    case 'int': return (v.t === 'num' && v.isInt) || (v.t === 'lit' && typeof v.v === 'boolean');
    case 'float': return v.t === 'num' && !v.isInt;
    case 'bool': return v.t === 'lit' && typeof v.v === 'boolean';
    case 'str': return v.t === 'str';
    case 'list': return v.t === 'list' && !v.tuple;
    case 'tuple': return v.t === 'list' && !!v.tuple;
    default: return false;
  }
}

function holdsArray(v: Value, seen = new Set<Value>()): boolean {
  if (v.t === 'ref') return true;
  if (v.t !== 'list' || seen.has(v)) return false;
  seen.add(v);
  return v.items.some((x) => holdsArray(x, seen));
}

/** `autograd.Function` as written in a class's bases. */
function dottedPath(e: Expr): string | undefined {
  if (e.k === 'name') return e.id;
  if (e.k !== 'postfix' || e.base.k !== 'name' || !e.trailers.every((t) => t.t === 'attr')) return undefined;
  return [e.base.id, ...e.trailers.map((t) => (t as { name: string }).name)].join('.');
}

function paramText(p: Param): string {
  return p.default ? `${p.name}=...` : p.name;
}

/** MXNet's (numpy's) layout of an array's values, `[[1. 2.]\n [3. 4.]]`, elided past 1000 elements. */
/** As numpy prints: integers bare, floats with a point (`1.`). */
function formatArray(values: Float64Array, shape: readonly number[], integer: boolean): string {
  const fmt = (x: number): string => {
    if (integer) return String(x);
    if (Number.isNaN(x)) return 'nan';
    if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
    if (Number.isInteger(x)) return `${x}.`;
    return String(Number(x.toPrecision(8)));
  };
  if (shape.length === 0) return fmt(values[0] ?? 0);
  const strides: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i]!;
  }
  const elide = values.length > 1000;
  const rec = (dim: number, offset: number): string => {
    const n = shape[dim]!;
    const idx = elide && n > 6 ? [0, 1, 2, -1, n - 3, n - 2, n - 1] : Array.from({ length: n }, (_, i) => i);
    const parts = idx.map((i) => (i < 0 ? '...' : dim === shape.length - 1 ? fmt(values[offset + i]!) : rec(dim + 1, offset + i * strides[dim]!)));
    const sep = dim === shape.length - 1 ? ' ' : `\n${' '.repeat(dim + 1)}`;
    return `[${parts.join(sep)}]`;
  };
  return rec(0, 0);
}
