/**
 * torch.autograd.functional for programs: vjp, jvp, jacobian, hessian, hvp and vhp, per-sample
 * gradients and gradcheck. Every one is built from autograd.grad on the session's tape, so each
 * answers exactly what the ops' gradient rules say, and with create_graph the results are
 * recorded and differentiate again. Shapes and conventions follow torch.autograd.functional.
 */
import { fail } from '../errors.js';
import { itemSize, type DType } from '../engine/backend.js';
import { sizeOf } from '../engine/ndarray.js';
import type { ScopeKind } from '../program/format.js';
import { describeValue, type Value } from './compile.js';
import type { Pos } from './lexer.js';

export interface ArrayFacts { shape: readonly number[]; dtype: string; variable: boolean }

export interface GradOpts { headGrads?: (Value | null)[]; createGraph: boolean; retainGraph: boolean }

/** What the transforms need of the interpreter that runs them. */
export interface FunctionalEnv {
  /** Calls a Python callable (a def, a method, a custom Function) with positional arguments. */
  call(f: Value, args: Value[], at: Pos): Value;
  op(name: string, args: Value[], attrs: Record<string, unknown>, at: Pos): Value;
  /** autograd.grad: one new array per variable. */
  grad(heads: Value[], variables: Value[], o: GradOpts, at: Pos): Value[];
  attachGrad(v: Value): void;
  scope<T>(kind: ScopeKind, fn: () => T): T;
  info(v: Value): ArrayFacts;
  read(v: Value): Float64Array;
  /** One step of the program's budget of steps and time. */
  step(at: Pos): void;
  mark(): number;
  /** Frees the temporaries made after `mark` that neither `keep` nor the program holds. */
  release(mark: number, keep: Value[]): void;
  budget(): { maxArrayElements: number; bytesFree: number };
}

const tuple = (items: Value[]): Value => ({ t: 'list', items, tuple: true });
const num = (v: number): Value => ({ t: 'num', v, isInt: Number.isInteger(v) });
const itemBytes = (dtype: string): number => itemSize(dtype as DType);

function pyError(exception: string, message: string, at: Pos): Error {
  return fail('program_error', `${exception}: ${message} (line ${at.line})`, { exception, line: at.line });
}

/** Binds positional and keyword arguments to a builtin's parameters, as Python would. */
export function bindArgs(fn: string, params: readonly string[], required: number, args: Value[], kwargs: [string, Value][], at: Pos): Map<string, Value> {
  if (args.length > params.length) throw pyError('TypeError', `${fn}() takes at most ${params.length} arguments (${args.length} given)`, at);
  const named = new Map<string, Value>();
  args.forEach((a, i) => named.set(params[i]!, a));
  for (const [k, v] of kwargs) {
    if (!params.includes(k)) throw pyError('TypeError', `${fn}() got an unexpected keyword argument '${k}'`, at);
    if (named.has(k)) throw pyError('TypeError', `${fn}() got multiple values for argument '${k}'`, at);
    named.set(k, v);
  }
  for (const p of params.slice(0, required)) if (!named.has(p)) throw pyError('TypeError', `${fn}() missing required argument '${p}'`, at);
  return named;
}

const isNone = (v: Value | undefined): boolean => v === undefined || (v.t === 'lit' && v.v === null);

function flag(named: Map<string, Value>, name: string, dflt: boolean, at: Pos): boolean {
  const v = named.get(name);
  if (isNone(v)) return dflt;
  if (v!.t !== 'lit' || typeof v!.v !== 'boolean') throw pyError('TypeError', `${name} must be True or False, not ${describeValue(v!)}`, at);
  return v!.v;
}

function number(named: Map<string, Value>, name: string, dflt: number, zeroOk: boolean, at: Pos): number {
  const v = named.get(name);
  if (isNone(v)) return dflt;
  if (v!.t !== 'num' || !(v!.v > 0 || (zeroOk && v!.v === 0))) throw pyError('ValueError', `${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number, not ${describeValue(v!)}`, at);
  return v!.v;
}

/** One array or a tuple/list of them; `single` says which, as torch answers in kind. */
interface Arrays { items: Value[]; single: boolean }

/** Where a Jacobian entry is, and how far the two sides were apart there. */
export interface CheckWorst {
  input: number;
  method: 'vjp' | 'jvp';
  output: number;
  output_index: number[];
  input_index: number[];
  analytic: number;
  numeric: number;
  error: number;
}

export interface CheckReport {
  passed: boolean;
  /** One per input: its largest error over both methods and every output. */
  inputs: CheckWorst[];
}

function unravel(k: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = k % shape[d]!;
    k = Math.floor(k / shape[d]!);
  }
  return idx;
}

export class Functional {
  constructor(private readonly env: FunctionalEnv) {}

  // --- the transforms, as the language calls them ---

  /** What every transform starts with: its arguments bound, and the inputs as variables to differentiate at. */
  private setup(fn: string, params: string[], required: number, args: Value[], kwargs: [string, Value][], at: Pos) {
    const a = bindArgs(fn, params, required, args, kwargs, at);
    const xs = this.arrays(a.get('inputs')!, 'inputs', at);
    return { a, cg: flag(a, 'create_graph', false, at), xs, vars: this.prepare(xs.items, at), f: a.get('func')! };
  }

  /** `autograd.vjp(f, inputs, v=None, create_graph=False)` -> (f's value, v^T J). */
  vjp(args: Value[], kwargs: [string, Value][], at: Pos): Value {
    const { a, cg, xs, vars, f } = this.setup('autograd.vjp', ['func', 'inputs', 'v', 'create_graph', 'strict'], 2, args, kwargs, at);
    const out = this.forward(f, vars, at);
    const heads = this.cotangents(a.get('v'), out, 'v', at);
    const g = this.env.grad(out.items, vars, { headGrads: heads, createGraph: cg, retainGraph: cg }, at);
    return tuple([this.result(out, cg, at), xs.single ? g[0]! : tuple(g)]);
  }

  /** `autograd.jvp(f, inputs, v=None, create_graph=False)` -> (f's value, J v), by the transpose of a vjp. */
  jvp(args: Value[], kwargs: [string, Value][], at: Pos): Value {
    const { a, cg, xs, vars, f } = this.setup('autograd.jvp', ['func', 'inputs', 'v', 'create_graph', 'strict'], 2, args, kwargs, at);
    const out = this.forward(f, vars, at);
    const tangents = this.cotangents(a.get('v'), xs, 'v', at);
    const jv = this.jvpOf(out.items, vars, tangents, cg, cg, at);
    return tuple([this.result(out, cg, at), out.single ? jv[0]! : tuple(jv)]);
  }

  /** `autograd.jacobian(f, inputs, create_graph=False)`: out.shape + in.shape per (output, input). */
  jacobian(args: Value[], kwargs: [string, Value][], at: Pos): Value {
    const { cg, xs, vars, f } = this.setup('autograd.jacobian', ['func', 'inputs', 'create_graph', 'strict', 'vectorize'], 2, args, kwargs, at);
    const out = this.forward(f, vars, at);
    return this.nest(this.jacobianOf(out.items, vars, cg, at), out.single, xs.single);
  }

  /** `autograd.hessian(f, inputs, create_graph=False)`: f returns one element; in_i.shape + in_j.shape. */
  hessian(args: Value[], kwargs: [string, Value][], at: Pos): Value {
    const { cg, xs, vars, f } = this.setup('autograd.hessian', ['func', 'inputs', 'create_graph', 'strict', 'vectorize'], 2, args, kwargs, at);
    const { g } = this.gradOfScalar(f, vars, 'autograd.hessian', at);
    return this.nest(this.jacobianOf(g, vars, cg, at), xs.single, xs.single);
  }

  /** `autograd.hvp(f, inputs, v, create_graph=False)` -> (f's value, H v); vhp is the same for a symmetric H. */
  hvp(args: Value[], kwargs: [string, Value][], at: Pos, name = 'autograd.hvp'): Value {
    const { a, cg, xs, vars, f } = this.setup(name, ['func', 'inputs', 'v', 'create_graph', 'strict'], 3, args, kwargs, at);
    const { out, g } = this.gradOfScalar(f, vars, name, at);
    const vs = this.cotangents(a.get('v'), xs, 'v', at);
    const hv = this.env.grad(g, vars, { headGrads: vs, createGraph: cg, retainGraph: cg }, at);
    return tuple([this.result({ items: [out], single: true }, cg, at), xs.single ? hv[0]! : tuple(hv)]);
  }

  /** f's value (one element) and its gradient, recorded so that it differentiates again. */
  private gradOfScalar(f: Value, vars: Value[], fn: string, at: Pos): { out: Value; g: Value[] } {
    const out = this.scalarOut(f, vars, fn, at);
    return { out, g: this.env.scope('record', () => this.env.grad([out], vars, { createGraph: true, retainGraph: true }, at)) };
  }

  /**
   * `autograd.grad(heads, variables, per_sample=True)`: the gradient of each sample's head (a
   * slice along axis 0 of the one head) for every variable, stacked as (B,) + variable.shape,
   * one backward per sample over the retained graph.
   */
  perSample(heads: Value[], variables: Value[], headGrads: (Value | null)[] | undefined, cg: boolean, at: Pos): Value {
    if (heads.length !== 1) throw pyError('ValueError', `per_sample=True takes one head (a batch of losses), not ${heads.length}`, at);
    const head = heads[0]!;
    const { shape, dtype } = this.env.info(head);
    if (shape.length === 0) throw pyError('ValueError', 'per_sample=True needs a head with a batch axis (axis 0)', at);
    const B = shape[0]!;
    const cells = B * variables.reduce((n, v) => n + sizeOf(this.env.info(v).shape), 0);
    this.refuseIfLarge(cells, itemBytes(dtype), 'the per-sample gradients', at);
    const rows: Value[][] = variables.map(() => []);
    for (let b = 0; b < B; b++) {
      this.env.step(at);
      const mark = this.env.mark();
      let mask = this.env.op('reshape', [this.oneHot(b, [B], dtype, at)], { shape: [B, ...shape.slice(1).map(() => 1)] }, at);
      mask = this.env.op('broadcast_to', [mask], { shape: [...shape] }, at);
      const hg = headGrads?.[0] ? this.env.op('multiply', [mask, headGrads[0]], {}, at) : mask;
      const g = this.env.grad([head], variables, { headGrads: [hg], createGraph: cg, retainGraph: true }, at);
      g.forEach((x, i) => rows[i]!.push(x));
      this.env.release(mark, g);
    }
    // The head's graph stays while the head lives: B backwards need it, and freeing it would cost one more.
    return { t: 'list', items: this.env.scope(cg ? 'record' : 'pause', () => rows.map((r) => this.env.op('stack', r, { axis: 0 }, at))) };
  }

  /**
   * `autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True)`:
   * f's Jacobian from vjps and from jvps against central differences, in float64.
   */
  gradcheck(args: Value[], kwargs: [string, Value][], at: Pos): { value: Value; report: CheckReport } {
    const a = bindArgs('autograd.gradcheck', ['func', 'inputs', 'eps', 'atol', 'rtol', 'raise_exception'], 2, args, kwargs, at);
    const f = a.get('func')!;
    return this.checked(a, (xs) => {
      const vars = this.prepare(xs, at);
      return { vars, outs: this.forward(f, vars, at).items };
    }, at);
  }

  /**
   * `autograd.gradgradcheck(f, inputs, grad_outputs=None, ...)`: gradcheck of x -> v^T J(x),
   * that is of f's gradient rules as recorded with create_graph.
   */
  gradgradcheck(args: Value[], kwargs: [string, Value][], at: Pos): { value: Value; report: CheckReport } {
    const a = bindArgs('autograd.gradgradcheck', ['func', 'inputs', 'grad_outputs', 'eps', 'atol', 'rtol', 'raise_exception'], 2, args, kwargs, at);
    const f = a.get('func')!;
    let fixed: (Value | null)[] | undefined;
    return this.checked(a, (xs) => {
      const vars = this.prepare(xs, at);
      const out = this.forward(f, vars, at);
      // The same cotangents at every point, or the differences would not be of one function.
      fixed ??= isNone(a.get('grad_outputs')) ? out.items.map((o) => this.spread(o, at)) : this.cotangents(a.get('grad_outputs'), out, 'grad_outputs', at);
      const outs = this.env.scope('record', () => this.env.grad(out.items, vars, { headGrads: fixed, createGraph: true, retainGraph: true }, at));
      return { vars, outs };
    }, at);
  }

  // --- the pieces ---

  private arrays(v: Value, what: string, at: Pos): Arrays {
    const items = v.t === 'list' ? v.items : [v];
    for (const x of items) if (x.t !== 'ref') throw pyError('TypeError', `${what} must be an NDArray or a tuple of NDArrays, not ${describeValue(x)}`, at);
    if (!items.length) throw pyError('ValueError', `${what} is empty`, at);
    return { items, single: v.t !== 'list' };
  }

  /**
   * The arrays to differentiate at: a variable as it is (so that with create_graph the result
   * differentiates with respect to it), anything else as a fresh variable holding its value.
   */
  private prepare(xs: Value[], at: Pos, dtype?: string): Value[] {
    return xs.map((x) => {
      const info = this.env.info(x);
      if (info.variable && (!dtype || info.dtype === dtype)) return x;
      const c = this.env.scope('pause', () => (dtype && info.dtype !== dtype ? this.env.op('astype', [x], { dtype }, at) : this.env.op('copy', [x], {}, at)));
      this.env.attachGrad(c);
      return c;
    });
  }

  /** f at xs, recorded. */
  private forward(f: Value, xs: Value[], at: Pos): Arrays {
    const out = this.env.scope('record', () => this.env.call(f, xs, at));
    return this.arrays(out, 'the value of func', at);
  }

  private scalarOut(f: Value, xs: Value[], fn: string, at: Pos): Value {
    const out = this.forward(f, xs, at);
    if (!out.single || sizeOf(this.env.info(out.items[0]!).shape) !== 1) {
      throw pyError('ValueError', `${fn} needs func to return a single NDArray of one element`, at);
    }
    return out.items[0]!;
  }

  /** f's value as answered: detached unless create_graph, as torch answers it. */
  private result(out: Arrays, cg: boolean, at: Pos): Value {
    const items = cg ? out.items : out.items.map((o) => this.env.op('detach', [o], {}, at));
    return out.single ? items[0]! : tuple(items);
  }

  /** v, aligned with `like` and shaped as it; None means ones where each has one element. */
  private cotangents(v: Value | undefined, like: Arrays, what: string, at: Pos): (Value | null)[] {
    if (isNone(v)) {
      for (const x of like.items) {
        if (sizeOf(this.env.info(x).shape) !== 1) throw pyError('ValueError', `${what} can be None only when every array it pairs with has one element`, at);
      }
      return like.items.map(() => null);
    }
    const vs = this.arrays(v!, what, at);
    if (vs.items.length !== like.items.length) throw pyError('ValueError', `${what} has ${vs.items.length} arrays for ${like.items.length}`, at);
    vs.items.forEach((x, i) => {
      const a = this.env.info(x), b = this.env.info(like.items[i]!);
      if (a.shape.join() !== b.shape.join()) throw pyError('ValueError', `${what}[${i}] has shape (${a.shape.join(', ')}) but must have (${b.shape.join(', ')})`, at);
    });
    // Head gradients take their head's dtype, as a float32 v for a float64 function should.
    return vs.items.map((x, i) => {
      const want = this.env.info(like.items[i]!).dtype;
      return this.env.info(x).dtype === want ? x : this.env.op('astype', [x], { dtype: want }, at);
    });
  }

  /** A constant array of `like`'s shape with distinct entries, for checks that need some v. */
  private spread(like: Value, at: Pos): Value {
    const { shape, dtype } = this.env.info(like);
    const r = this.env.op('arange', [], { start: 0, stop: sizeOf(shape), dtype }, at);
    const s = this.env.op('sin', [this.env.op('add', [this.env.op('multiply', [r, num(1.3)], {}, at), num(0.5)], {}, at)], {}, at);
    return this.env.op('reshape', [s], { shape: [...shape] }, at);
  }

  /** e_k of `shape`: one at flat index k. */
  private oneHot(k: number, shape: readonly number[], dtype: string, at: Pos): Value {
    const idx = this.env.op('add', [this.env.op('zeros', [], { shape: [1], dtype }, at), num(k)], {}, at);
    const oh = this.env.op('one_hot', [idx], { depth: sizeOf(shape), dtype }, at);
    return this.env.op('reshape', [oh], { shape: [...shape] }, at);
  }

  /** `cells` in all, the largest array `largest` of them. */
  private refuseIfLarge(cells: number, bytes: number, what: string, at: Pos, largest = cells): void {
    const b = this.env.budget();
    if (largest > b.maxArrayElements) {
      throw fail('array_too_large', `${what} would hold ${largest} elements in one array; an array may hold ${b.maxArrayElements} (GRADSERVE_MAX_ARRAY_ELEMENTS) (line ${at.line})`, { limit: 'array_elements', value: largest, line: at.line });
    }
    // The rows and their stacked copy are alive together.
    const need = 2 * cells * bytes;
    if (need > b.bytesFree) {
      throw fail('quota_exceeded', `${what} would need about ${need} bytes and the session has ${Math.max(0, b.bytesFree)} left (GRADSERVE_MAX_SESSION_BYTES) (line ${at.line})`, { limit: 'session_bytes', value: need, line: at.line });
    }
  }

  /** J v by the transpose of a vjp: with u a zero variable, grad of (J^T u) with respect to u, weighted by v. */
  private jvpOf(outs: Value[], vars: Value[], tangents: (Value | null)[], cg: boolean, retain: boolean, at: Pos): Value[] {
    const us = outs.map((o) => {
      const u = this.env.scope('pause', () => this.env.op('zeros_like', [o], {}, at));
      this.env.attachGrad(u);
      return u;
    });
    const g = this.env.scope('record', () => this.env.grad(outs, vars, { headGrads: us, createGraph: true, retainGraph: true }, at));
    return this.env.grad(g, us, { headGrads: tangents, createGraph: cg, retainGraph: retain }, at);
  }

  /** J[j][i], of shape outs[j].shape + vars[i].shape: one vjp per output element, over the retained graph. */
  private jacobianOf(outs: Value[], vars: Value[], cg: boolean, at: Pos): Value[][] {
    const outInfo = outs.map((o) => this.env.info(o));
    const varInfo = vars.map((v) => this.env.info(v));
    const ms = outInfo.map((o) => sizeOf(o.shape)), ns = varInfo.map((v) => sizeOf(v.shape));
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    this.refuseIfLarge(sum(ms) * sum(ns), itemBytes(outInfo[0]!.dtype), 'the Jacobian', at, Math.max(...ms) * Math.max(...ns));
    return outs.map((o, j) => {
      const { shape, dtype } = outInfo[j]!;
      const rows: Value[][] = vars.map(() => []);
      for (let k = 0; k < sizeOf(shape); k++) {
        this.env.step(at);
        const mark = this.env.mark();
        const g = this.env.grad([o], vars, { headGrads: [this.oneHot(k, shape, dtype, at)], createGraph: cg, retainGraph: true }, at);
        g.forEach((x, i) => rows[i]!.push(x));
        this.env.release(mark, g);
      }
      return this.env.scope(cg ? 'record' : 'pause', () => rows.map((r, i) => {
        const s = this.env.op('stack', r, { axis: 0 }, at);
        return this.env.op('reshape', [s], { shape: [...shape, ...varInfo[i]!.shape] }, at);
      }));
    });
  }

  /** torch's nesting: a tuple per output (when f answers a tuple) of a tuple per input (when inputs is one). */
  private nest(J: Value[][], singleOut: boolean, singleIn: boolean): Value {
    const rows = J.map((r) => (singleIn ? r[0]! : tuple(r)));
    return singleOut ? rows[0]! : tuple(rows);
  }

  // --- gradcheck ---

  private checked(a: Map<string, Value>, F: (xs: Value[]) => { vars: Value[]; outs: Value[] }, at: Pos): { value: Value; report: CheckReport } {
    const eps = number(a, 'eps', 1e-6, false, at);
    const atol = number(a, 'atol', 1e-5, true, at);
    const rtol = number(a, 'rtol', 1e-3, true, at);
    const raise = flag(a, 'raise_exception', true, at);
    const given = this.arrays(a.get('inputs')!, 'inputs', at);
    // The check runs in float64 whatever the inputs' dtype: differences in float32 are noise.
    const xs = given.items.map((x) => (this.env.info(x).dtype === 'float64' ? x : this.env.op('astype', [x], { dtype: 'float64' }, at)));
    const shapes = xs.map((x) => this.env.info(x).shape);
    const n = shapes.map(sizeOf);
    const base = F(xs);
    const outShapes = base.outs.map((o) => this.env.info(o).shape);
    const m = outShapes.map(sizeOf);
    const total = m.reduce((s, v) => s + v, 0) * n.reduce((s, v) => s + v, 0);
    this.refuseIfLarge(total, 8, 'the checked Jacobian', at);
    // Entry (j, i): an m_j x n_i row-major matrix per method.
    const blank = () => m.map((mj) => n.map((ni) => new Float64Array(mj * ni)));
    const rev = blank(), fwd = blank(), numeric = blank();

    base.outs.forEach((o, j) => {
      for (let k = 0; k < m[j]!; k++) {
        this.env.step(at);
        const mark = this.env.mark();
        const g = this.env.grad([o], base.vars, { headGrads: [this.oneHot(k, outShapes[j]!, 'float64', at)], createGraph: false, retainGraph: true }, at);
        g.forEach((x, i) => rev[j]![i]!.set(this.env.read(x), k * n[i]!));
        this.env.release(mark, []);
      }
    });
    xs.forEach((_, i) => {
      for (let k = 0; k < n[i]!; k++) {
        this.env.step(at);
        const mark = this.env.mark();
        const tangents = base.vars.map((v, i2) => (i2 === i ? this.oneHot(k, shapes[i]!, 'float64', at) : this.env.op('zeros_like', [v], {}, at)));
        const jv = this.jvpOf(base.outs, base.vars, tangents, false, true, at);
        jv.forEach((col, j) => this.env.read(col).forEach((val, r) => { fwd[j]![i]![r * n[i]! + k] = val; }));
        const at2 = (sign: number) => {
          const step = this.env.op('multiply', [this.oneHot(k, shapes[i]!, 'float64', at), num(sign * eps)], {}, at);
          const moved = xs.map((x, i2) => (i2 === i ? this.env.op('add', [x, step], {}, at) : x));
          return F(moved).outs.map((o) => this.env.read(o));
        };
        const plus = at2(1), minus = at2(-1);
        plus.forEach((p, j) => p.forEach((val, r) => { numeric[j]![i]![r * n[i]! + k] = (val - minus[j]![r]!) / (2 * eps); }));
        this.env.release(mark, []);
      }
    });

    let passed = true;
    const inputs = xs.map((_, i): CheckWorst => {
      let worst: CheckWorst | null = null;
      for (let j = 0; j < m.length; j++) {
        for (const [method, A] of [['vjp', rev], ['jvp', fwd]] as const) {
          const a2 = A[j]![i]!, nu = numeric[j]![i]!;
          for (let e = 0; e < a2.length; e++) {
            const err = Math.abs(a2[e]! - nu[e]!);
            if (!(err <= atol + rtol * Math.abs(nu[e]!))) passed = false;
            if (!worst || !(err <= worst.error)) {
              const r = Math.floor(e / n[i]!), c = e % n[i]!;
              worst = { input: i, method, output: j, output_index: unravel(r, outShapes[j]!), input_index: unravel(c, shapes[i]!), analytic: a2[e]!, numeric: nu[e]!, error: err };
            }
          }
        }
      }
      return worst!;
    });
    const report = { passed, inputs };
    if (!passed && raise) {
      const w = inputs.reduce((x, y) => (y.error > x.error ? y : x));
      throw fail('gradcheck_failed', `Jacobian mismatch for output ${w.output} with respect to input ${w.input} at output index (${w.output_index.join(', ')}), input index (${w.input_index.join(', ')}): ${w.method} gives ${w.analytic}, central differences ${w.numeric} (line ${at.line})`, { line: at.line, ...report });
    }
    return { value: { t: 'lit', v: passed }, report };
  }
}
