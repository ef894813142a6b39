/**
 * The op table. Every op is declared once, with defineOp, in one of the family files of this
 * folder; GET /v1/ops, the expression language, validation, the tape and the generated tests all
 * read it from here.
 *
 * Vocabulary of an entry:
 * - `inputs`: names of the array arguments, in order (`variadic` takes any number of arrays).
 * - `attrs`: a zod object of keyword attributes, with their defaults; `positional` lists the attrs
 *   that may also be given positionally after the inputs (`x.reshape((4, 1))`).
 * - `forward(ctx, x, attrs)`: runs the kernels and returns the output(s). It checks shapes and
 *   throws 422s naming the argument.
 * - `save`: what the vjp reads: `inputs` (all, or some indices) and/or `outputs`. Nothing else is
 *   kept on the tape.
 * - `vjp({g, x, y, attrs})`: the vector-Jacobian product, written with ops of this table (through
 *   `F`), so that it can itself be recorded: higher-order gradients come free. `g[i]` is the
 *   gradient of output i; it returns one entry per input: an NDArray, or `null` for an input that
 *   receives no gradient (non-differentiable, or a scalar). It may return a gradient of a
 *   broadcast shape: the backward driver sums it down to the input's shape (unbroadcast) once.
 * - `differentiable: false` (no vjp) marks ops that cut the graph (comparisons, argmax, ...).
 * - `derivativeOrder`: the highest order of derivative the generated tests check, and GET /v1/ops
 *   lists; derived from `save` unless declared (see the field).
 * - `domain`: the input interval where the gradient is valid, used by the generated tests.
 * - `dtypes`: which dtypes each array input takes (one rule for all, or one per input): 'float'
 *   (the default: float32, float64), 'numeric' (integers too) or 'any' (float16 too: ops that
 *   only move or convert elements). The dispatcher refuses anything else with a 422 naming the
 *   op, the argument and the dtype.
 */
import { z } from 'zod';
import type { NDArray } from '../engine/ndarray.js';
import type { Draws, Kernels } from '../engine/kernels.js';
import type { DType } from '../engine/backend.js';

export type Value = NDArray | number;

export interface Example {
  shapes: (number[] | null)[];
  attrs?: Record<string, unknown>;
}

export interface OpContext {
  k: Kernels;
  /** MXNet's is_training: ops such as Dropout and BatchNorm read it. */
  isTraining: boolean;
  defaultDtype: DType;
  /**
   * Reserves `n` draws of the session's random stream and returns (seed, first counter); a plain
   * function, passed as is to the random kernels.
   */
  random: Draws;
  /** The bytes of a binary part sent with the running program (multipart POST /ops). */
  upload(part: string): Uint8Array;
  op: string;
}

export interface VjpArgs<A> {
  g: NDArray[];
  /** Inputs as saved (undefined where not saved); scalars stay numbers. */
  x: (Value | undefined)[];
  /** Outputs as saved (undefined where not saved). */
  y: (NDArray | undefined)[];
  attrs: A;
  /** Shapes of the inputs (scalars: null), always available. */
  shapes: (readonly number[] | null)[];
  /** Dtypes of the inputs (scalars: null). */
  dtypes: (DType | null)[];
  /** Which inputs need a gradient; a rule may return null for the others. */
  needs: boolean[];
}

/** See `dtypes` above. */
export type DTypeRule = 'float' | 'numeric' | 'any';

export interface OpDef<A = any> {
  name: string;
  dtypes?: DTypeRule | DTypeRule[];
  aliases: string[];
  doc: string;
  inputs: string[];
  variadic?: boolean;
  attrs: z.ZodType<A>;
  positional: string[];
  differentiable: boolean;
  /**
   * The highest order of derivative test/ops/gradcheck.test.ts checks for this op: it checks every
   * order up to this one, so GET /v1/ops, which lists it, never claims more than is tested. The
   * default follows `save`: 0 without a vjp; 2 when the vjp reads nothing saved, as its gradient
   * then cannot depend on x (every higher derivative is zero, and order 2 shows the recorded
   * gradient says so); 3 when it reads saved inputs or outputs, a rule nonlinear in x.
   */
  derivativeOrder: number;
  /**
   * How many of forward's outputs a client sees; the rest (a dropout mask, saved statistics) exist
   * only for the vjp, through `save.outputs`. Default: all.
   */
  visibleOutputs?: number;
  /**
   * The attribute that gives how many outputs a call returns (split's num_outputs), for ops whose
   * count varies; GET /v1/ops lists it so a client can name every output before the call runs.
   */
  outputCount?: string;
  /**
   * Inputs the op writes in place (optimizer updates, BatchNorm's running statistics). The
   * executor refuses them inside record scopes and on arrays a live tape needs.
   */
  mutates?: number[];
  /** The mutated inputs are statistics, not parameters: updating them while recording is fine (BatchNorm). */
  mutatesWhileRecording?: boolean;
  /**
   * The forward is one elementwise kernel (Kernels.unary or .binary), whose output may be written
   * over an input of the same shape and dtype: the executor offers it the buffer of an input that
   * dies with the statement (src/session/program.ts, `x = x * 2`).
   */
  inPlace?: boolean;
  /** Reads is_training (Dropout, BatchNorm). */
  modeDependent: boolean;
  /** Scalars (numbers) are accepted in place of arrays for these inputs. */
  scalarInputs: boolean;
  /** Inputs are arrays, except where `scalarInputs` lets numbers through. */
  forward(ctx: OpContext, x: NDArray[], attrs: A): NDArray | NDArray[];
  save: { inputs?: boolean | number[]; outputs?: boolean };
  vjp?: (a: VjpArgs<A>) => (NDArray | null)[];
  /** For generated tests: valid interval of each input for finite differences. */
  domain?: [number, number];
  /** Ops that exist for the executor and are hidden from listings (_alias, ...). */
  internal?: boolean;
  /** Marks ops with no array inputs that create arrays (dtype from attrs or the session). */
  creation?: boolean;
  /**
   * Calls the generated tests make: input shapes (null for a scalar) and attrs. Ops without
   * examples are tested with one [3, 4] input per array argument.
   */
  examples?: Example[];
}

export type OpSpec<A> = Partial<Omit<OpDef<A>, 'name' | 'forward' | 'attrs'>> &
  Pick<OpDef<A>, 'name' | 'forward' | 'doc'> & { attrs?: z.ZodType<A> };

/** See OpDef.derivativeOrder. */
function defaultOrder(spec: OpSpec<unknown>): number {
  if (!spec.vjp) return 0;
  const s = spec.save ?? {};
  const readsSaved = s.outputs === true || s.inputs === true || (Array.isArray(s.inputs) && s.inputs.length > 0);
  return readsSaved ? 3 : 2;
}

const table = new Map<string, OpDef>();
const canonical: OpDef[] = [];

export function defineOp<A = Record<string, never>>(spec: OpSpec<A>): OpDef<A> {
  const def: OpDef<A> = {
    aliases: [],
    inputs: [],
    positional: [],
    differentiable: spec.vjp !== undefined,
    derivativeOrder: defaultOrder(spec as OpSpec<unknown>),
    modeDependent: false,
    scalarInputs: false,
    save: {},
    // Rows of a family table may leave a field undefined: keep the default then.
    ...(Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as OpSpec<A>),
    attrs: spec.attrs ?? (z.object({}).strict() as unknown as z.ZodType<A>),
  };
  for (const n of [def.name, ...def.aliases]) {
    if (table.has(n)) throw new Error(`op name ${n} is declared twice`);
    table.set(n, def as OpDef);
  }
  canonical.push(def as OpDef);
  return def;
}

export function lookupOp(name: string): OpDef | undefined {
  return table.get(name);
}

export function allOps(): readonly OpDef[] {
  return canonical;
}

/** Closest known op names, for "did you mean" in unknown_op errors. */
export function suggestOps(name: string): string[] {
  const lower = name.toLowerCase();
  return [...table.keys()].filter((n) => n.toLowerCase() === lower || n.toLowerCase().includes(lower) && lower.length >= 3).slice(0, 5);
}
