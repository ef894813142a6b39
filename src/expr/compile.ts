/**
 * AST -> program statements (the same ones JSON clients send). Nested expressions are flattened
 * in evaluation order; each intermediate gets a temporary name `%1`, `%2`, ... that no user name
 * can collide with (the executor drops temporaries at the end of the request).
 */
import { fail } from '../errors.js';
import type { Arg, OpStatement, ScopeKind, ScopeStatement, Statement, BackwardStatement, GradStatement } from '../program/format.js';
import { syntaxError, type Pos } from './lexer.js';
import type { Expr, KeyItem, Stmt, Trailer } from './parser.js';
import { record, table } from '../lookup.js';
import { setSourceLine } from '../program/site.js';

/**
 * A Python value the interpreter (./interp.ts) owns: a function, a class, an instance, a bound
 * method, a builtin. The compiler only passes it back to its host.
 */
export interface PyObj { kind: string; name: string }

/**
 * What an expression evaluates to: an array reference or a Python value. Compiled ahead, only
 * constants occur; run by the interpreter, every Python value does.
 */
export type Value =
  | { t: 'ref'; ref: string }
  | { t: 'num'; v: number; isInt: boolean }
  | { t: 'str'; v: string }
  | { t: 'lit'; v: boolean | null }
  | { t: 'list'; items: Value[]; tuple?: boolean }
  | { t: 'obj'; o: PyObj }
  /** backward() and attach_grad(): statements with no value. */
  | { t: 'void' };

/**
 * The interpreter, seen from the compiler: it owns Python's names and values and runs the
 * statements the compiler emits whenever a value must be known (a call, a truth test).
 */
export interface Host {
  /** A name's Python value (locals, the program's globals, builtins); undefined for a session array or an op. */
  lookup(id: string, at: Pos): Value | undefined;
  /** Binds a name; false leaves an array reference for the compiler to bind as a session name. */
  bind(id: string, v: Value, at: Pos): boolean;
  /** `del id`: true when the host held the name. */
  unbind(id: string): boolean;
  call(callee: Value, args: Value[], kwargs: [string, Value][], at: Pos): Value;
  /** An attribute of a Python value, or one arrays have only when run (`x.shape`). */
  attr(obj: Value, name: string, at: Pos): Value;
  /** Python's truth of a value: an array's is read from its data. */
  truth(v: Value, at: Pos): boolean;
  /** `x.asscalar()` run: the number an array of one element holds, as a Python float. */
  scalar(v: Value, at: Pos): Value;
  /** The transforms of src/expr/functional.ts (`autograd.vjp(f, x, v)`), and per-sample grad. */
  functional(name: string, args: Value[], kwargs: [string, Value][], at: Pos): Value;
}

/** autograd's transforms of functions (torch.autograd.functional's, and gradcheck): the interpreter runs them. */
export const FUNCTIONAL: ReadonlySet<string> = new Set(['vjp', 'jvp', 'jacobian', 'hessian', 'hvp', 'vhp', 'gradcheck', 'gradgradcheck']);

type Json = number | string | boolean | null | Json[];

const BINARY_OPS = table<string>({
  '+': 'add', '-': 'subtract', '*': 'multiply', '/': 'divide', '**': 'power', '@': 'dot',
  '==': 'equal', '!=': 'not_equal', '<': 'lesser', '<=': 'lesser_equal', '>': 'greater', '>=': 'greater_equal',
});
/** A leading name from this set starts an op path (`nd.random.normal`), never an array. */
const NAMESPACES = new Set(['mx', 'nd', 'ndarray', 'random', 'linalg', 'contrib', 'autograd']);
/** Prefixes that name the op library itself and are dropped from op names. */
export const ROOTS: ReadonlySet<string> = new Set(['mx', 'nd', 'ndarray']);
const SCOPES = new Set<ScopeKind>(['record', 'pause', 'train_mode', 'predict_mode', 'detect_anomaly']);
const TEMP = '%';

export interface CompileLimits { maxStatements: number }

export function compileProgram(stmts: Stmt[], limits: CompileLimits): { statements: Statement[]; result?: string } {
  return new Compiler(limits).program(stmts);
}

export class Compiler {
  private temps = 0;
  private count = 0;
  /** Where statements go: the program, or the body of the innermost with. */
  private out: Statement[] = [];
  /** Names bound to constants (`lr = 0.1`): substituted where used, as Python would. */
  private readonly constants = new Map<string, Value>();
  /** The source line of the statement being compiled (compiled ahead only: the interpreter knows its own). */
  private line = 0;

  constructor(private readonly limits: CompileLimits, private readonly host?: Host) {}

  // --- what the interpreter calls ---

  /** The statements emitted since the last take, to run now. */
  take(): Statement[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  /** The number of the last temporary so far: the ones made after it are newer. */
  get mark(): number {
    return this.temps;
  }

  /** Binds `name` to the array `ref` names. */
  emitAlias(ref: string, name: string): void {
    this.emit({ op: '_alias', args: [ref], out: name });
  }

  /** A temporary name no other value holds. */
  fresh(): string {
    return `${TEMP}${++this.temps}`;
  }

  /** Compiles a simple statement (expression, assignment, del); answers a bare expression's value. */
  simple(s: Stmt): Value | undefined {
    if (s.k === 'expr') return this.expr(s.expr, true);
    this.statement(s);
    return undefined;
  }

  value(e: Expr): Value {
    return this.expr(e);
  }

  /** Binds a target of `for` or of an assignment to a value the interpreter produced. */
  assignValue(target: Expr, v: Value, at: Pos): void {
    this.checkTarget(target);
    if (target.k === 'name') this.bindName(target.id, v);
    else if (target.k === 'seq') this.unpack(target, v, at);
    else this.writeInPlace(this.inPlaceRef(target), v, at);
  }

  /** An op call with values the interpreter holds (a builtin applied to an array). */
  op(name: string, args: Value[], at: Pos, attrs: Record<string, unknown> = {}): Value {
    return this.emitOp(name, args.map((a) => this.arg(a, at)), attrs);
  }

  /** autograd.grad on values the interpreter holds: one new temporary per variable. */
  grad(heads: Value[], variables: Value[], o: { headGrads?: (Value | null)[]; createGraph: boolean; retainGraph: boolean }, at: Pos): Value[] {
    const ref = (v: Value, what: string) => this.arrayRef(v, at, what);
    const st: GradStatement = {
      op: 'grad',
      args: heads.map((h) => ref(h, 'a head of autograd.grad')),
      attrs: { variables: variables.map((v) => ref(v, 'a variable of autograd.grad')), create_graph: o.createGraph, retain_graph: o.retainGraph },
      out: variables.map(() => this.fresh()),
    };
    if (o.headGrads?.some((g) => g !== null)) st.attrs.head_grads = o.headGrads.map((g) => (g === null ? null : this.arg(g, at)));
    this.emit(st as unknown as Statement);
    return st.out!.map((r) => ({ t: 'ref', ref: r }));
  }

  /** attach_grad on a temporary the interpreter made. */
  attachGradTo(ref: string): void {
    this.emit({ op: 'attach_grad', args: [ref] });
  }

  program(stmts: Stmt[]): { statements: Statement[]; result?: string } {
    let result: string | undefined;
    stmts.forEach((s, i) => {
      const v = this.statement(s);
      if (i === stmts.length - 1 && v !== undefined) result = v;
    });
    return result === undefined ? { statements: this.out } : { statements: this.out, result };
  }

  private emit<S extends Statement>(s: S): S {
    // Run by the interpreter, statements run as they come: its step budget bounds them.
    if (++this.count > this.limits.maxStatements && !this.host) {
      throw fail('quota_exceeded', `the expression compiles to more than ${this.limits.maxStatements} statements`, {
        limit: 'statements',
        value: this.count,
      });
    }
    if (this.line) setSourceLine(s, this.line);
    this.out.push(s);
    return s;
  }

  private emitOp(op: string, args: Arg[], attrs: Record<string, unknown>, into?: string): Value {
    const s: OpStatement = { op, args };
    if (Object.keys(attrs).length) s.attrs = attrs;
    if (into !== undefined) s.into = into;
    else s.out = `${TEMP}${++this.temps}`;
    this.emit(s);
    return { t: 'ref', ref: into ?? (s.out as string) };
  }

  /** The op statement that produced `v`, if `v` is a temporary just computed: it can be retargeted. */
  private producer(v: Value): OpStatement | undefined {
    if (v.t !== 'ref' || !v.ref.startsWith(TEMP)) return undefined;
    const last = this.out[this.out.length - 1] as OpStatement | undefined;
    return last && last.out === v.ref ? last : undefined;
  }

  // --- statements ---

  /** Compiles one statement; answers the reference a bare array expression evaluates to. */
  private statement(s: Stmt): string | undefined {
    if (!this.host) this.line = s.pos.line;
    switch (s.k) {
      case 'expr': {
        const v = this.expr(s.expr, true);
        if (v.t === 'void') return undefined;
        if (v.t !== 'ref') throw syntaxError('a bare expression must compute an array; this one is a constant', s.pos);
        return v.ref;
      }
      case 'assign':
        this.assign(s.targets, s.value);
        return undefined;
      case 'aug':
        this.augmented(s.target, s.op, s.value, s.pos);
        return undefined;
      case 'with':
        this.with(s);
        return undefined;
      case 'del': {
        for (const n of s.names) this.constants.delete(n);
        const rest = this.host ? s.names.filter((n) => !this.host!.unbind(n)) : s.names;
        if (rest.length) this.emit({ op: 'delete', args: rest });
        return undefined;
      }
      default:
        throw syntaxError(`'${s.k}' needs the interpreter`, s.pos);
    }
  }

  private assign(targets: Expr[], valueExpr: Expr): void {
    for (const t of targets) this.checkTarget(t);
    const value = this.expr(valueExpr);
    if (value.t === 'void') throw syntaxError('this call is a statement and has no value to assign', valueExpr.pos);
    // Python binds every target to the same object: after the first, the others get what it holds.
    let current: Value = value;
    for (const t of targets) {
      if (current.t === 'void') throw syntaxError('nothing is left to assign after unpacking', t.pos);
      if (t.k === 'name') {
        current = this.bindName(t.id, current);
      } else if (t.k === 'seq' && current.t === 'list') {
        this.unpack(t, current, t.pos);
      } else if (t.k === 'seq') {
        const producer = this.producer(current);
        if (!producer) throw syntaxError('unpacking into several names needs an op with several outputs on the right', t.pos);
        producer.out = t.items.map((e) => (e as { id: string }).id);
        for (const n of producer.out) this.constants.delete(n);
        current = { t: 'void' };
      } else {
        const ref = this.inPlaceRef(t);
        this.writeInPlace(ref, current, t.pos);
        current = { t: 'ref', ref };
      }
    }
  }

  /** `a, b = (x, y)`: Python's unpacking of a sequence. */
  private unpack(t: Extract<Expr, { k: 'seq' }>, v: Value, at: Pos): void {
    if (v.t !== 'list') {
      if (v.t === 'ref' && this.producer(v)) {
        const producer = this.producer(v)!;
        producer.out = t.items.map(() => this.fresh());
        const refs = producer.out;
        t.items.forEach((e, i) => this.assignValue(e, { t: 'ref', ref: refs[i]! }, at));
        return;
      }
      throw syntaxError(`cannot unpack ${describeValue(v)} into ${t.items.length} names`, at);
    }
    if (v.items.length !== t.items.length) {
      throw syntaxError(`cannot unpack ${v.items.length} values into ${t.items.length} names`, at);
    }
    t.items.forEach((e, i) => this.assignValue(e, v.items[i]!, at));
  }

  /** Binds `name`: an array by retargeting its producer or by `_alias`, a constant at compile time. */
  private bindName(name: string, value: Value): Value {
    if (this.host && this.host.bind(name, value, { line: 0, column: 0 })) return value;
    if (value.t !== 'ref') {
      this.constants.set(name, value);
      return value;
    }
    this.constants.delete(name);
    const producer = this.producer(value);
    if (producer) producer.out = name;
    else this.emit({ op: '_alias', args: [value.ref], out: name });
    return { t: 'ref', ref: name };
  }

  private checkTarget(t: Expr): void {
    if (t.k === 'name') return;
    if (t.k === 'seq' && t.items.length && t.items.every((e) => e.k === 'name')) return;
    if (t.k === 'postfix') {
      this.inPlaceRef(t);
      return;
    }
    throw syntaxError('cannot assign to this expression: assign to a name, or write in place with name[:] = ...', t.pos);
  }

  /** `w[:]` or `w.grad[:]` as an assignment target: answers `w` / `w.grad`. */
  private inPlaceRef(t: Expr): string {
    if (t.k !== 'postfix') throw syntaxError('cannot assign to this expression', t.pos);
    const last = t.trailers[t.trailers.length - 1]!;
    const ref = this.plainRef({ ...t, trailers: t.trailers.slice(0, -1) });
    if (last.t === 'attr' && last.name === 'grad') {
      throw syntaxError('.grad cannot be rebound: write into it with name.grad[:] = ...', last.pos);
    }
    if (last.t !== 'index' || ref === undefined) {
      throw syntaxError('cannot assign to this expression: assign to a name, or write in place with name[:] = ...', t.pos);
    }
    const full = last.key.length === 1 && last.key[0]!.k === 'slice' && !last.key[0]!.start && !last.key[0]!.stop && !last.key[0]!.step;
    if (!full) {
      throw syntaxError('writing into part of an array is not supported yet: only name[:] = ... writes in place', last.pos);
    }
    return ref;
  }

  /** `w` or `w.grad` written as an expression, or undefined. */
  private plainRef(e: Expr): string | undefined {
    const base = e.k === 'postfix' ? e.base : e;
    const trailers = e.k === 'postfix' ? e.trailers : [];
    if (base.k !== 'name' || NAMESPACES.has(base.id)) return undefined;
    // A local of a function names a temporary; writing into it writes the array it holds.
    const held = this.host?.lookup(base.id, base.pos);
    if (held && held.t !== 'ref') return undefined;
    const id = held ? held.ref : base.id;
    if (trailers.length === 0) return id;
    const only = trailers[0]!;
    if (trailers.length === 1 && only.t === 'attr' && only.name === 'grad') return `${id}.grad`;
    return undefined;
  }

  private writeInPlace(target: string, value: Value, at: Pos): void {
    const producer = this.producer(value);
    if (producer) {
      delete producer.out;
      producer.into = target;
    } else if (value.t === 'ref') {
      this.emit({ op: 'copy', args: [value.ref], into: target });
    } else if (value.t === 'num') {
      this.emit({ op: '_fill', args: [], attrs: { value: value.v }, into: target });
    } else if (value.t === 'list') {
      this.emit({ op: 'copy', args: [this.arg(value, at)], into: target });
    } else {
      throw syntaxError('only an array, a number or a list of numbers can be written into an array', at);
    }
  }

  /** `w += e` writes in place, as NDArray's += does in MXNet. */
  private augmented(target: Expr, op: string, valueExpr: Expr, at: Pos): void {
    const known = target.k === 'name' ? this.constants.get(target.id) ?? this.host?.lookup(target.id, at) : undefined;
    const constant = known && known.t !== 'ref' ? known : undefined;
    if (constant && target.k === 'name') {
      this.bindName(target.id, this.binary(op, constant, this.expr(valueExpr), at));
      return;
    }
    const ref = this.plainRef(target);
    if (ref === undefined) throw syntaxError(`'${op}=' needs a name or name.grad on its left`, target.pos);
    if (!BINARY_OPS[op]) throw syntaxError(`operator '${op}=' works on Python numbers only, not on arrays`, at);
    const value = this.expr(valueExpr);
    this.emitOp(BINARY_OPS[op]!, [ref, this.arg(value, valueExpr.pos)], {}, ref);
  }

  private with(s: Extract<Stmt, { k: 'with' }>): void {
    const scopes = s.items.map((item) => this.scopeOf(item));
    const outer = this.out;
    // `with a(), b():` nests b's scope inside a's, as Python enters them left to right.
    for (const scope of scopes) {
      this.emit(scope);
      this.out = scope.body;
    }
    for (const st of s.body) this.statement(st);
    this.out = outer;
  }

  /** `autograd.record(train_mode=False)`, `pause()`, ... -> an empty scope statement. */
  scopeOf(item: Expr): ScopeStatement {
    const bad = () => syntaxError('with supports autograd.record(), pause(), train_mode(), predict_mode() and detect_anomaly() only', item.pos);
    if (item.k !== 'postfix' || item.base.k !== 'name') throw bad();
    const path = [item.base.id];
    const trailers = item.trailers;
    let i = 0;
    while (trailers[i]?.t === 'attr') path.push((trailers[i++] as { name: string }).name);
    const call = trailers[i];
    if (!call || call.t !== 'call' || i !== trailers.length - 1) throw bad();
    while (path.length > 1 && ROOTS.has(path[0]!)) path.shift();
    if (path.length === 2 && path[0] === 'autograd') path.shift();
    const kind = path[0] as ScopeKind;
    if (path.length !== 1 || !SCOPES.has(kind)) throw bad();
    const takesMode = kind === 'record' || kind === 'pause';
    const named = this.bindArgs(call, takesMode ? ['train_mode'] : [], `${kind}()`);
    const mode = named.get('train_mode');
    if (!mode) return { op: 'scope', kind, body: [] };
    const v = this.expr(mode);
    if (v.t !== 'lit' || typeof v.v !== 'boolean') throw syntaxError('train_mode must be True or False', mode.pos);
    return { op: 'scope', kind, train_mode: v.v, body: [] };
  }

  /** Matches a call's arguments to a fixed parameter list, Python style. */
  private bindArgs(call: Extract<Trailer, { t: 'call' }>, params: string[], what: string): Map<string, Expr> {
    const named = new Map<string, Expr>();
    if (call.args.length > params.length) {
      throw syntaxError(`${what} takes at most ${params.length} positional argument${params.length === 1 ? '' : 's'}`, call.args[params.length]!.pos);
    }
    call.args.forEach((a, i) => named.set(params[i]!, a));
    for (const kw of call.kwargs) {
      if (!params.includes(kw.name)) {
        const allowed = params.length ? `it takes ${params.join(', ')}` : 'it takes no arguments';
        throw syntaxError(`${what} has no argument '${kw.name}': ${allowed}`, kw.pos);
      }
      if (named.has(kw.name)) throw syntaxError(`${what} got '${kw.name}' twice`, kw.pos);
      named.set(kw.name, kw.value);
    }
    return named;
  }

  // --- expressions ---

  /** `statement` allows the value-less calls backward() and attach_grad() at the top of it. */
  private expr(e: Expr, statement = false): Value {
    switch (e.k) {
      case 'num': return { t: 'num', v: e.v, isInt: e.isInt };
      case 'str': return { t: 'str', v: e.v };
      case 'lit': return { t: 'lit', v: e.v };
      case 'name': return this.name(e.id, e.pos);
      case 'seq': return { t: 'list', items: e.items.map((x) => this.expr(x)), tuple: e.tuple };
      case 'unary': {
        const v = this.expr(e.operand);
        if (e.op === '+') return this.numeric(v, e.pos, 'unary +');
        if (v.t === 'num') return { t: 'num', v: -v.v, isInt: v.isInt };
        return this.emitOp('negative', [this.arg(this.numeric(v, e.pos, 'unary -'), e.pos)], {});
      }
      case 'binary': {
        // A loop, not recursion, along the chain: `a + b + c + ...` may be long.
        let acc = this.expr(e.first);
        for (const step of e.rest) acc = this.binary(step.op, acc, this.expr(step.rhs), step.pos);
        return acc;
      }
      case 'postfix': return this.postfix(e.base, e.trailers, statement);
      case 'boolop': {
        // Python answers the operand that decided, unconverted; the rest are not evaluated.
        const host = this.needHost(e.pos, `'${e.op}'`);
        let v = this.expr(e.values[0]!);
        for (let i = 1; i < e.values.length; i++) {
          if (host.truth(v, e.pos) === (e.op === 'or')) return v;
          v = this.expr(e.values[i]!);
        }
        return v;
      }
      case 'not':
        return { t: 'lit', v: !this.needHost(e.pos, "'not'").truth(this.expr(e.operand), e.pos) };
      case 'ifexp':
        return this.needHost(e.pos, 'a conditional expression').truth(this.expr(e.test), e.pos) ? this.expr(e.body) : this.expr(e.orelse);
    }
  }

  private needHost(at: Pos, what: string): Host {
    if (!this.host) throw syntaxError(`${what} needs the interpreter`, at);
    return this.host;
  }

  private name(id: string, at: Pos): Value {
    const c = this.constants.get(id) ?? this.host?.lookup(id, at);
    if (c) return c;
    if (NAMESPACES.has(id)) throw syntaxError(`'${id}' is a namespace of ops, not an array: call one of its ops`, at);
    return { t: 'ref', ref: id };
  }

  private numeric(v: Value, at: Pos, what: string): Value {
    if (v.t === 'ref' || v.t === 'num') return v;
    // Python's bools are the integers 0 and 1.
    if (v.t === 'lit' && typeof v.v === 'boolean' && this.host) return { t: 'num', v: v.v ? 1 : 0, isInt: true };
    throw syntaxError(`${what} needs an array or a number, not ${describeValue(v)}`, at);
  }

  private binary(op: string, l: Value, r: Value, at: Pos): Value {
    const name = BINARY_OPS[op]!;
    if (this.host) {
      const py = pythonBinary(op, l, r);
      if (py) return py;
    }
    l = this.numeric(l, at, `operator '${op}'`);
    r = this.numeric(r, at, `operator '${op}'`);
    if (l.t === 'num' && r.t === 'num' && this.host && COMPARE[op]) return { t: 'lit', v: COMPARE[op]!(l.v, r.v) };
    if (l.t === 'num' && r.t === 'num' && ((op === '/' && this.host) || op === '//' || op === '%') && r.v === 0) {
      throw syntaxError(`${op === '/' ? 'division' : op === '//' ? 'integer division' : 'modulo'} by zero`, at);
    }
    if (!name) {
      if (l.t !== 'num' || r.t !== 'num') throw syntaxError(`operator '${op}' works on Python numbers only, not on arrays`, at);
      const q = Math.floor(l.v / r.v);
      // Python's // and % round toward minus infinity: -7 // 2 is -4 and -7 % 2 is 1.
      return { t: 'num', v: op === '//' ? q : l.v - q * r.v, isInt: l.isInt && r.isInt };
    }
    this.numeric(l, at, `operator '${op}'`);
    this.numeric(r, at, `operator '${op}'`);
    if (l.t === 'num' && r.t === 'num') {
      const folded = fold(op, l.v, r.v);
      if (folded === undefined) throw syntaxError(`operator '${op}' needs an array on one side`, at);
      if (!Number.isFinite(folded)) throw syntaxError(`${l.v} ${op} ${r.v} is not a finite number`, at);
      const isInt = l.isInt && r.isInt && (op === '+' || op === '-' || op === '*' || (op === '**' && r.v >= 0));
      return { t: 'num', v: folded, isInt };
    }
    return this.emitOp(name, [this.arg(l, at), this.arg(r, at)], {});
  }

  private postfix(base: Expr, trailers: Trailer[], statement: boolean): Value {
    let i = 0;
    let cur: Value;
    const held = base.k === 'name' && !NAMESPACES.has(base.id) ? this.host?.lookup(base.id, base.pos) : undefined;
    if (base.k === 'name' && !held && !this.constants.has(base.id) && (NAMESPACES.has(base.id) || trailers[0]?.t === 'call')) {
      // An op path: `nd.random.normal(...)`, `mx.nd.dot(...)`, or a bare `dot(...)`.
      const path = [base.id];
      while (trailers[i]?.t === 'attr') path.push((trailers[i++] as { name: string }).name);
      const call = trailers[i];
      if (!call || call.t !== 'call') throw syntaxError(`'${path.join('.')}' is a namespace path: expected a call of one of its ops`, base.pos);
      i++;
      while (path.length > 1 && ROOTS.has(path[0]!)) path.shift();
      cur = this.opCall(path, call, statement && i === trailers.length);
    } else {
      cur = this.expr(base);
    }
    for (; i < trailers.length; i++) {
      const t = trailers[i]!;
      if (this.host && cur.t !== 'ref') {
        cur = this.pythonTrailer(cur, t);
        continue;
      }
      if (t.t === 'attr') {
        const call = trailers[i + 1];
        if (call?.t === 'call') {
          cur = this.method(cur, t.name, t.pos, call, statement && i + 1 === trailers.length - 1);
          i++;
        } else if (t.name === 'grad') {
          if (cur.t !== 'ref' || (cur.ref.startsWith(TEMP) && !this.host) || cur.ref.endsWith('.grad')) {
            throw syntaxError('.grad is read from a name only: assign the expression to a name first', t.pos);
          }
          cur = { t: 'ref', ref: `${cur.ref}.grad` };
        } else if (t.name === 'T') {
          cur = this.emitOp('transpose', [this.arrayRef(cur, t.pos, '.T')], {});
        } else if (this.host) {
          cur = this.host.attr(cur, t.name, t.pos);
        } else {
          throw syntaxError(`attribute '.${t.name}' is not supported: only .grad, .T and method calls`, t.pos);
        }
      } else if (t.t === 'index') {
        cur = this.emitOp('getitem', [this.arrayRef(cur, t.pos, 'indexing')], { key: t.key.map((k) => this.keyItem(k)) });
      } else {
        throw syntaxError('only ops and methods can be called', t.pos);
      }
    }
    return cur;
  }

  /** A call, attribute or index applied to a Python value: the host's, except list indexing. */
  private pythonTrailer(cur: Value, t: Trailer): Value {
    const host = this.host!;
    if (t.t === 'call') {
      const args = t.args.map((a) => this.expr(a));
      const kwargs = t.kwargs.map((k): [string, Value] => [k.name, this.expr(k.value)]);
      return host.call(cur, args, kwargs, t.pos);
    }
    if (t.t === 'attr') return host.attr(cur, t.name, t.pos);
    if ((cur.t !== 'list' && cur.t !== 'str') || t.key.length !== 1) {
      throw syntaxError(`${describeValue(cur)} cannot be indexed`, t.pos);
    }
    const items: Value[] = cur.t === 'list' ? cur.items : [...cur.v].map((c) => ({ t: 'str', v: c }));
    const k = this.keyItem(t.key[0]!);
    if (typeof k === 'number') {
      const j = k < 0 ? items.length + k : k;
      if (j < 0 || j >= items.length) throw syntaxError(`index ${k} is out of range for a sequence of ${items.length}`, t.pos);
      return items[j]!;
    }
    const picked = sliceItems(items, k);
    if (cur.t === 'str') return { t: 'str', v: picked.map((x) => (x as { v: string }).v).join('') };
    return { t: 'list', items: picked, tuple: cur.tuple };
  }

  /** A call of an op path (`['random', 'normal']`), with the specials of autograd. */
  private opCall(path: string[], call: Extract<Trailer, { t: 'call' }>, statement: boolean): Value {
    const op = path.join('.');
    if (op === 'autograd.backward') {
      if (!statement) throw syntaxError('autograd.backward() is a statement: it has no value', call.pos);
      return this.autogradBackward(call);
    }
    if (op === 'autograd.grad') {
      // Its value is a list, which only the interpreter's Python values hold.
      if (!this.host) throw syntaxError('autograd.grad is not available in expressions: use POST /v1/sessions/{sid}/grad, or a program with Python (def, for, ...)', call.pos);
      return this.autogradGrad(call);
    }
    if (path.length === 2 && path[0] === 'autograd' && FUNCTIONAL.has(path[1]!)) {
      if (!this.host) throw syntaxError(`${op} takes a function: define it with def in the same program`, call.pos);
      const args = call.args.map((a) => this.expr(a));
      const kwargs = call.kwargs.map((k): [string, Value] => [k.name, this.expr(k.value)]);
      return this.host.functional(path[1]!, args, kwargs, call.pos);
    }
    const last = path[path.length - 1]! as ScopeKind;
    if (SCOPES.has(last) && (path.length === 1 || path[0] === 'autograd')) {
      throw syntaxError(`${op}() opens a scope: write 'with ${op}():' and indent its body`, call.pos);
    }
    return this.callOp(op, [], call);
  }

  private method(obj: Value, name: string, at: Pos, call: Extract<Trailer, { t: 'call' }>, statement: boolean): Value {
    if (name === 'backward' || name === 'attach_grad') {
      if (!statement) throw syntaxError(`.${name}() is a statement: it has no value to use in an expression`, at);
      return name === 'backward' ? this.backward(obj, at, call) : this.attachGrad(obj, at, call);
    }
    if (name === 'grad') throw syntaxError('.grad is an array, not a method', at);
    const v = this.callOp(name, [this.arrayRef(obj, at, `.${name}()`)], call);
    // Run, asscalar() answers a Python number, as MXNet's does: it compares and prints as one.
    return this.host && name === 'asscalar' ? this.host.scalar(v, at) : v;
  }

  /** Positional arguments become args, keywords attrs, and `out=w` the in-place target. */
  private callOp(op: string, lead: Arg[], call: Extract<Trailer, { t: 'call' }>): Value {
    const args = [...lead];
    for (const a of call.args) args.push(this.arg(this.expr(a), a.pos));
    const attrs = record<unknown>();
    let into: string | undefined;
    for (const kw of call.kwargs) {
      const v = this.expr(kw.value);
      if (kw.name === 'out') {
        if (v.t !== 'ref' || v.ref.startsWith(TEMP)) throw syntaxError('out= takes the name of an existing array', kw.value.pos);
        into = v.ref;
      } else {
        attrs[kw.name] = this.json(v, kw.value.pos);
      }
    }
    return this.emitOp(op, args, attrs, into);
  }

  /** `y.backward(out_grad=None, retain_graph=False, train_mode=True)`, MXNet's signature. */
  private backward(obj: Value, at: Pos, call: Extract<Trailer, { t: 'call' }>): Value {
    const head = this.arrayRef(obj, at, '.backward()');
    const named = this.bindArgs(call, ['out_grad', 'retain_graph', 'train_mode'], 'backward()');
    const attrs: NonNullable<BackwardStatement['attrs']> = {};
    const g = named.get('out_grad');
    if (g) {
      const v = this.expr(g);
      if (!(v.t === 'lit' && v.v === null)) attrs.head_grads = [this.arg(v, g.pos)];
    }
    this.flags(named, attrs, ['retain_graph', 'train_mode']);
    this.emitBackward([head], attrs);
    return { t: 'void' };
  }

  /** `autograd.backward(heads, head_grads=None, retain_graph=False, train_mode=True)`. */
  private autogradBackward(call: Extract<Trailer, { t: 'call' }>): Value {
    const named = this.bindArgs(call, ['heads', 'head_grads', 'retain_graph', 'train_mode'], 'autograd.backward()');
    const heads = this.refList(named, 'heads', 'autograd.backward()', 'a head of backward', call.pos);
    const attrs: NonNullable<BackwardStatement['attrs']> = {};
    const headGrads = this.headGrads(named, heads.length);
    if (headGrads) attrs.head_grads = headGrads;
    this.flags(named, attrs, ['retain_graph', 'train_mode']);
    this.emitBackward(heads, attrs);
    return { t: 'void' };
  }

  /**
   * `autograd.grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False,
   * train_mode=True)`, MXNet's signature: always a list, one new array per variable, as MXNet
   * answers even for one variable.
   */
  private autogradGrad(call: Extract<Trailer, { t: 'call' }>): Value {
    const named = this.bindArgs(call, ['heads', 'variables', 'head_grads', 'retain_graph', 'create_graph', 'train_mode', 'per_sample'], 'autograd.grad()');
    const perSample = named.get('per_sample');
    const ps = perSample ? this.expr(perSample) : undefined;
    if (ps && !(ps.t === 'lit' && (typeof ps.v === 'boolean' || ps.v === null))) throw syntaxError('per_sample must be True or False', perSample!.pos);
    if (ps?.t === 'lit' && ps.v === true) {
      const kwargs: [string, Value][] = [...named].map(([k, e]) => [k, this.expr(e)]);
      return this.host!.functional('per_sample_grad', [], kwargs, call.pos);
    }
    const heads = this.refList(named, 'heads', 'autograd.grad()', 'a head of autograd.grad', call.pos);
    const variables = this.refList(named, 'variables', 'autograd.grad()', 'a variable of autograd.grad', call.pos);
    const st: GradStatement = { op: 'grad', args: heads, attrs: { variables }, out: variables.map(() => this.fresh()) };
    const headGrads = this.headGrads(named, heads.length);
    if (headGrads) st.attrs.head_grads = headGrads;
    this.flags(named, st.attrs, ['retain_graph', 'create_graph', 'train_mode']);
    this.emit(st as unknown as Statement);
    return { t: 'list', items: st.out!.map((ref) => ({ t: 'ref', ref })) };
  }

  /** A required argument holding one array or a list of them. */
  private refList(named: Map<string, Expr>, name: string, fn: string, what: string, at: Pos): string[] {
    const e = named.get(name);
    if (!e) throw syntaxError(`${fn} needs ${name}`, at);
    const v = this.expr(e);
    return (v.t === 'list' ? v.items : [v]).map((x) => this.arrayRef(x, e.pos, what));
  }

  /** `head_grads`: as in MXNet, a list is aligned with the heads; a single array goes with a single head. */
  private headGrads(named: Map<string, Expr>, heads: number): (Arg | null)[] | undefined {
    const e = named.get('head_grads');
    if (!e) return undefined;
    const v = this.expr(e);
    if (v.t === 'lit' && v.v === null) return undefined;
    const grads = v.t === 'list' ? v.items : [v];
    if (grads.length !== heads) throw syntaxError(`head_grads has ${grads.length} entries for ${heads} heads`, e.pos);
    return grads.map((x) => (x.t === 'lit' && x.v === null ? null : this.arg(x, e.pos)));
  }

  /** Boolean keyword flags; None leaves a flag at its default (MXNet's retain_graph=None). */
  private flags<K extends string>(named: Map<string, Expr>, attrs: Partial<Record<K, boolean>>, flags: readonly K[]): void {
    for (const flag of flags) {
      const e = named.get(flag);
      if (!e) continue;
      const v = this.expr(e);
      if (v.t === 'lit' && v.v === null) continue;
      if (v.t !== 'lit' || typeof v.v !== 'boolean') throw syntaxError(`${flag} must be True or False`, e.pos);
      attrs[flag] = v.v;
    }
  }

  private emitBackward(heads: string[], attrs: NonNullable<BackwardStatement['attrs']>): void {
    const s: BackwardStatement = { op: 'backward', args: heads };
    if (Object.keys(attrs).length) s.attrs = attrs;
    this.emit(s);
  }

  /** `x.attach_grad(grad_req='write', stype=None)`, on a plain name only. */
  private attachGrad(obj: Value, at: Pos, call: Extract<Trailer, { t: 'call' }>): Value {
    if (obj.t !== 'ref' || (obj.ref.startsWith(TEMP) && !this.host) || obj.ref.includes('.')) {
      throw syntaxError('attach_grad() applies to a name: assign the expression to a name first', at);
    }
    const named = this.bindArgs(call, ['grad_req', 'stype'], 'attach_grad()');
    const stype = named.get('stype');
    if (stype && !(stype.k === 'lit' && stype.v === null)) throw syntaxError('stype is not supported: arrays are dense', stype.pos);
    const req = named.get('grad_req');
    if (!req) {
      this.emit({ op: 'attach_grad', args: [obj.ref] });
      return { t: 'void' };
    }
    const v = this.expr(req);
    if (v.t !== 'str' || (v.v !== 'write' && v.v !== 'add' && v.v !== 'null')) {
      throw syntaxError("grad_req must be 'write', 'add' or 'null'", req.pos);
    }
    this.emit({ op: 'attach_grad', args: [obj.ref], attrs: { grad_req: v.v } });
    return { t: 'void' };
  }

  // --- values to JSON ---

  private arrayRef(v: Value, at: Pos, what: string): string {
    if (v.t === 'ref') return v.ref;
    throw syntaxError(`${what} needs an array, not ${this.host ? describeValue(v) : `a ${v.t === 'num' ? 'number' : 'constant'}`}`, at);
  }

  /**
   * A positional argument. Strings, booleans and None pass through as they are: the executor
   * matches positional arguments past an op's inputs to its positional attributes
   * (`x.astype('float64')`).
   */
  private arg(v: Value, at: Pos): Arg {
    switch (v.t) {
      case 'ref': return v.ref;
      case 'num': return v.v;
      case 'list': return this.numbers(v, at) as Arg;
      case 'str': return v.v;
      case 'lit': return v.v as unknown as Arg;
      case 'obj': throw syntaxError(`${describeValue(v)} is not an argument of an op`, at);
      case 'void': throw syntaxError('this call has no value', at);
    }
  }

  private numbers(v: Value, at: Pos): Json {
    if (v.t === 'num') return v.v;
    if (v.t === 'list') return v.items.map((x) => this.numbers(x, at));
    throw syntaxError('a list given positionally holds numbers only: pass arrays as separate arguments', at);
  }

  /** A keyword value: JSON, with arrays as their names (`head_grads=[None, g]`). */
  private json(v: Value, at: Pos): Json {
    switch (v.t) {
      case 'ref': return v.ref;
      case 'num': return v.v;
      case 'str': return v.v;
      case 'lit': return v.v;
      case 'list': return v.items.map((x) => this.json(x, at));
      case 'obj': throw syntaxError(`${describeValue(v)} is not an argument of an op`, at);
      case 'void': throw syntaxError('this call has no value', at);
    }
  }

  /** An index: an integer, or a slice with null for omitted parts. */
  private keyItem(k: KeyItem): number | { start: number | null; stop: number | null; step: number | null } {
    const int = (e: Expr | undefined): number | null => {
      if (e === undefined) return null;
      const v = this.expr(e);
      if (v.t === 'lit' && v.v === null) return null;
      if (v.t !== 'num' || !v.isInt) {
        throw syntaxError('an index must be an integer or a slice (indexing by an array is not supported: use take or pick)', e.pos);
      }
      return v.v;
    };
    if (k.k === 'slice') {
      const step = int(k.step);
      if (step === 0) throw syntaxError('a slice step cannot be zero', k.step!.pos);
      return { start: int(k.start), stop: int(k.stop), step };
    }
    const index = int(k);
    if (index === null) throw syntaxError('None (newaxis) is not supported as an index: use expand_dims', k.pos);
    return index;
  }
}

/** Python's name for a value's type, as its errors say it. */
export function describeValue(v: Value): string {
  switch (v.t) {
    case 'ref': return 'an NDArray';
    case 'num': return v.isInt ? 'an int' : 'a float';
    case 'str': return 'a str';
    case 'lit': return v.v === null ? 'None' : 'a bool';
    case 'list': return v.tuple ? 'a tuple' : 'a list';
    case 'obj': return `${v.o.kind} '${v.o.name}'`;
    case 'void': return 'no value';
  }
}

const COMPARE = table<(a: number, b: number) => boolean>({
  '==': (a, b) => a === b, '!=': (a, b) => a !== b, '<': (a, b) => a < b,
  '<=': (a, b) => a <= b, '>': (a, b) => a > b, '>=': (a, b) => a >= b,
});

/** Equality of Python values that hold no array (arrays compare elementwise, as ops). */
function sameValue(a: Value, b: Value): boolean | undefined {
  if (a.t === 'ref' || b.t === 'ref') return undefined;
  const num = (v: Value) => (v.t === 'num' ? v.v : v.t === 'lit' && typeof v.v === 'boolean' ? Number(v.v) : undefined);
  const x = num(a), y = num(b);
  if (x !== undefined && y !== undefined) return x === y;
  if (a.t === 'str' && b.t === 'str') return a.v === b.v;
  if (a.t === 'lit' && b.t === 'lit') return a.v === b.v;
  if (a.t === 'list' && b.t === 'list') {
    if (!!a.tuple !== !!b.tuple || a.items.length !== b.items.length) return false;
    for (let i = 0; i < a.items.length; i++) {
      const s = sameValue(a.items[i]!, b.items[i]!);
      if (s !== true) return s;
    }
    return true;
  }
  if (a.t === 'obj' && b.t === 'obj') return a.o === b.o;
  return false;
}

/** Operators on Python's strings, lists, tuples and None; undefined leaves numbers and arrays to the ops. */
function pythonBinary(op: string, l: Value, r: Value): Value | undefined {
  if (l.t === 'ref' || r.t === 'ref') return undefined;
  if (op === '==' || op === '!=') {
    if (l.t === 'num' && r.t === 'num') return undefined;
    const same = sameValue(l, r);
    if (same === undefined) return undefined;
    return { t: 'lit', v: op === '==' ? same : !same };
  }
  if (op === '+' && l.t === 'str' && r.t === 'str') return { t: 'str', v: l.v + r.v };
  if (op === '+' && l.t === 'list' && r.t === 'list' && !!l.tuple === !!r.tuple) return { t: 'list', items: [...l.items, ...r.items], tuple: l.tuple };
  if (op === '*' && (l.t === 'list' || l.t === 'str') && r.t === 'num' && r.isInt) {
    const n = Math.max(0, r.v);
    if (n * (l.t === 'str' ? l.v.length : l.items.length) > 1e6) return undefined;
    if (l.t === 'str') return { t: 'str', v: l.v.repeat(n) };
    const items: Value[] = [];
    for (let i = 0; i < n; i++) items.push(...l.items);
    return { t: 'list', items, tuple: l.tuple };
  }
  if (COMPARE[op] && l.t === 'str' && r.t === 'str') return { t: 'lit', v: COMPARE[op]!(l.v < r.v ? -1 : l.v > r.v ? 1 : 0, 0) };
  return undefined;
}

/** Python's slice of a sequence. */
function sliceItems<T>(items: T[], k: { start: number | null; stop: number | null; step: number | null }): T[] {
  const n = items.length;
  const step = k.step ?? 1;
  const clamp = (v: number | null, dflt: number, lo: number, hi: number) => {
    if (v === null) return dflt;
    const w = v < 0 ? v + n : v;
    return Math.min(Math.max(w, lo), hi);
  };
  const out: T[] = [];
  if (step > 0) {
    for (let i = clamp(k.start, 0, 0, n), stop = clamp(k.stop, n, 0, n); i < stop; i += step) out.push(items[i]!);
  } else {
    for (let i = clamp(k.start, n - 1, -1, n - 1), stop = clamp(k.stop, -1, -1, n - 1); i > stop; i += step) out.push(items[i]!);
  }
  return out;
}

function fold(op: string, a: number, b: number): number | undefined {
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/': return a / b;
    case '**': return a ** b;
    default: return undefined; // comparisons and @ of two numbers have no array to produce
  }
}
