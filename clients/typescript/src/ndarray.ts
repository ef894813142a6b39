/**
 * NDArray: a client-side handle for an array the server holds (a session and a reference: a name,
 * or `name.grad` for a gradient buffer). Every method is a request, so every method is async.
 *
 * Methods that make arrays return a LazyArray: a promise of the NDArray that has the same
 * methods, so calls chain the way MXNet's read (`await x.T().dot(x).mul(2)`) and each request is
 * sent as soon as the one it depends on has answered.
 */
import type { Attrs, BackwardOptions, GradReq, Session } from './session.js';
import type { OpName } from './op-names.js';

export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'float16';
/** Nested lists of numbers, as `tolist()` gives and `nd.array` takes. */
export type Nested = number | Nested[];
/** An op argument: an array (or a pending one), a scalar, or an inline constant. */
export type OpArg = NDArray | LazyArray | number | Nested;

/** Replaces the strings JSON uses for NaN and infinities by the numbers. */
export function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return v;
}

export class NDArray {
  /** @internal Made by the session; use `gs.nd.*` to create arrays. */
  constructor(
    readonly session: Session,
    /** What the API calls the array: its name, or `name.grad`. */
    readonly ref: string,
    readonly shape: number[],
    readonly dtype: DType,
    /** The gradient buffer's grad_req, as last known by this handle (null: none). */
    public gradReq: GradReq | null = null,
  ) {}

  get size(): number {
    return this.shape.reduce((p, d) => p * d, 1);
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Any op of the table with this array first: `x.op('sigmoid')`, `x.op('clip', 0, 1)`. */
  op(name: OpName, ...args: (OpArg | Attrs)[]): LazyArray {
    return this.call(name, ...args);
  }

  private call(name: OpName, ...args: (OpArg | Attrs)[]): LazyArray {
    return new LazyArray(this.session.nd.call(name, [this, ...args]).then((outs) => single(name, outs)));
  }

  add(other: OpArg): LazyArray { return this.call('add', other); }
  sub(other: OpArg): LazyArray { return this.call('subtract', other); }
  mul(other: OpArg): LazyArray { return this.call('multiply', other); }
  div(other: OpArg): LazyArray { return this.call('divide', other); }
  pow(other: OpArg): LazyArray { return this.call('power', other); }
  /** Elementwise a == b as 0/1 (MXNet's `==`). */
  eq(other: OpArg): LazyArray { return this.call('equal', other); }
  neg(): LazyArray { return this.call('negative'); }
  exp(): LazyArray { return this.call('exp'); }
  log(): LazyArray { return this.call('log'); }
  dot(other: OpArg): LazyArray { return this.call('dot', other); }
  reshape(shape: number[]): LazyArray { return this.call('reshape', shape); }
  /** The transpose (MXNet's `.T`). */
  T(): LazyArray { return this.call('transpose'); }
  transpose(axes?: number[]): LazyArray { return axes ? this.call('transpose', axes) : this.call('transpose'); }
  sum(attrs: { axis?: number | number[]; keepdims?: boolean } = {}): LazyArray { return this.call('sum', attrs); }
  mean(attrs: { axis?: number | number[]; keepdims?: boolean } = {}): LazyArray { return this.call('mean', attrs); }
  norm(attrs: { ord?: number; axis?: number | number[]; keepdims?: boolean } = {}): LazyArray { return this.call('norm', attrs); }
  /** A copy without history (MXNet's `detach`). */
  detach(): LazyArray { return this.call('detach'); }
  astype(dtype: DType): LazyArray { return this.call('astype', { dtype }); }

  /** The values this handle last read (tolist, repr), for printing without a request. */
  private lastRead: Nested | undefined;

  /** The array's values as nested lists (NaN and infinities as numbers). */
  async tolist(): Promise<Nested> {
    this.lastRead = await this.session.read(this.ref);
    return this.lastRead;
  }

  /** MXNet's repr, values included (one request): `[[1. 2.]]\n<NDArray 1x2 @cpu(0)>`. */
  async repr(): Promise<string> {
    await this.tolist();
    return this.toString();
  }

  /** The one value of a one-element array (the server refuses any other size). */
  async asscalar(): Promise<number> {
    const answer = await this.session.expr(`${this.ref}.asscalar()`);
    return fromJson(answer.result) as number;
  }

  /** attach_grad: gives the array a gradient buffer (cutting its history, as MXNet 1.x does). */
  async attachGrad(gradReq: GradReq = 'write'): Promise<this> {
    if (this.ref.endsWith('.grad')) throw new TypeError(`${this.ref} is a gradient buffer; attach a gradient to an array`);
    const d = await this.session.attachGrad(this.ref, gradReq);
    this.gradReq = d.grad_req ?? null;
    return this;
  }

  /** The gradient buffer (MXNet's `x.grad`): a handle that reads the buffer as it is when used. */
  grad(): NDArray {
    if (this.ref.endsWith('.grad')) throw new TypeError(`${this.ref} is a gradient buffer; it has no gradient of its own`);
    return new NDArray(this.session, `${this.ref}.grad`, this.shape, this.dtype, null);
  }

  /** y.backward(): the gradients of this array flow into the variables' gradient buffers. */
  backward(options: { headGrad?: OpArg | null; retainGraph?: boolean; trainMode?: boolean } = {}): Promise<void> {
    const o: BackwardOptions = { retainGraph: options.retainGraph, trainMode: options.trainMode };
    if (options.headGrad !== undefined && options.headGrad !== null) o.headGrads = [options.headGrad];
    return this.session.backward([this], o);
  }

  /** Whether the array has autograd history now, and the id of the tape that recorded it. */
  async history(): Promise<{ recorded: boolean; tape: string | null }> {
    const d = await this.session.describe(this.ref.endsWith('.grad') ? this.ref.slice(0, -5) : this.ref);
    return { recorded: d.recorded, tape: d.tape ?? null };
  }

  /** Like MXNet's repr: the values this handle last read (`await x.repr()` reads them now), then the summary. */
  toString(): string {
    const summary = `<NDArray ${this.shape.join('x') || 'scalar'} ${this.dtype} '${this.ref}' @gradserve>`;
    return this.lastRead === undefined ? summary : `${formatValues(this.lastRead)}\n${summary}`;
  }

  /** util.inspect and console.log: the repr, never the session's internals (or its token). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  toJSON(): { ref: string; shape: number[]; dtype: DType } {
    return { ref: this.ref, shape: this.shape, dtype: this.dtype };
  }
}

/** Nested values the way numpy and MXNet print them: `[[1. 2.]\n [3. 4.]]`. */
function formatValues(v: Nested, depth = 0): string {
  if (!Array.isArray(v)) return Number.isInteger(v) ? `${v}.` : String(v);
  const inner = v.map((x) => formatValues(x, depth + 1));
  const nested = v.length > 0 && Array.isArray(v[0]);
  return `[${inner.join(nested ? `\n${' '.repeat(depth + 1)}` : ' ')}]`;
}

function single(op: string, outs: NDArray[]): NDArray {
  if (outs.length !== 1) throw new TypeError(`op ${op} has ${outs.length} outputs: call it with gs.nd.call('${op}', [...])`);
  return outs[0];
}

/**
 * A pending NDArray: await it for the handle, or call the NDArray methods on it directly; each
 * waits for the array, then sends its own request.
 */
export class LazyArray implements PromiseLike<NDArray> {
  constructor(private readonly p: Promise<NDArray>) {
    // A chain whose result is never awaited must not end the process with an unhandled rejection
    // before the caller had a chance to await it; the rejection still reaches whoever awaits.
    p.catch(() => undefined);
  }

  then<A = NDArray, B = never>(ok?: ((v: NDArray) => A | PromiseLike<A>) | null, err?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.p.then(ok, err);
  }

  catch<B = never>(err?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<NDArray | B> {
    return this.p.catch(err);
  }

  private chain(f: (a: NDArray) => PromiseLike<NDArray>): LazyArray {
    return new LazyArray(this.p.then(f));
  }

  op(name: OpName, ...args: (OpArg | Attrs)[]): LazyArray { return this.chain((a) => a.op(name, ...args)); }
  add(other: OpArg): LazyArray { return this.chain((a) => a.add(other)); }
  sub(other: OpArg): LazyArray { return this.chain((a) => a.sub(other)); }
  mul(other: OpArg): LazyArray { return this.chain((a) => a.mul(other)); }
  div(other: OpArg): LazyArray { return this.chain((a) => a.div(other)); }
  pow(other: OpArg): LazyArray { return this.chain((a) => a.pow(other)); }
  eq(other: OpArg): LazyArray { return this.chain((a) => a.eq(other)); }
  neg(): LazyArray { return this.chain((a) => a.neg()); }
  exp(): LazyArray { return this.chain((a) => a.exp()); }
  log(): LazyArray { return this.chain((a) => a.log()); }
  dot(other: OpArg): LazyArray { return this.chain((a) => a.dot(other)); }
  reshape(shape: number[]): LazyArray { return this.chain((a) => a.reshape(shape)); }
  T(): LazyArray { return this.chain((a) => a.T()); }
  transpose(axes?: number[]): LazyArray { return this.chain((a) => a.transpose(axes)); }
  sum(attrs?: { axis?: number | number[]; keepdims?: boolean }): LazyArray { return this.chain((a) => a.sum(attrs)); }
  mean(attrs?: { axis?: number | number[]; keepdims?: boolean }): LazyArray { return this.chain((a) => a.mean(attrs)); }
  norm(attrs?: { ord?: number; axis?: number | number[]; keepdims?: boolean }): LazyArray { return this.chain((a) => a.norm(attrs)); }
  detach(): LazyArray { return this.chain((a) => a.detach()); }
  astype(dtype: DType): LazyArray { return this.chain((a) => a.astype(dtype)); }
  grad(): LazyArray { return this.chain(async (a) => a.grad()); }
  attachGrad(gradReq?: GradReq): LazyArray { return this.chain((a) => a.attachGrad(gradReq)); }

  tolist(): Promise<Nested> { return this.p.then((a) => a.tolist()); }
  asscalar(): Promise<number> { return this.p.then((a) => a.asscalar()); }
  backward(options?: Parameters<NDArray['backward']>[0]): Promise<void> { return this.p.then((a) => a.backward(options)); }
  history(): Promise<{ recorded: boolean; tape: string | null }> { return this.p.then((a) => a.history()); }
}
