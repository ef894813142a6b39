/**
 * Generated from the op table: for every differentiable op, each of its examples and every order
 * up to the op's declared `derivativeOrder`, the analytic gradient against central finite
 * differences in float64, with respect to every array input. Order 1 differentiates
 * f1 = sum(op(x) * w); order k + 1 differentiates f(k+1) = <grad fk, uk>, computed with
 * create_graph, against finite differences of the order-k gradient. w and the uk are random.
 */
import { describe, expect, it } from 'vitest';
import { allOps, type OpDef } from '../../src/ops/index.js';
import type { Example, Value } from '../../src/ops/registry.js';
import { apply } from '../../src/ops/dispatch.js';
import { runGrad } from '../../src/session/autograd.js';
import { NDArray, sizeOf } from '../../src/engine/ndarray.js';
import type { Session } from '../../src/session/session.js';
import { close, fromValues, newSession, rand, values } from '../helpers/session.js';

const EPS = 1e-6;

type Inputs = (number[] | number)[];

function examplesOf(def: OpDef): Example[] {
  return def.examples ?? [{ shapes: def.inputs.map(() => [3, 4]) }];
}

function toValues(s: Session, ex: Example, inputs: Inputs): Value[] {
  return inputs.map((v, i) => (typeof v === 'number' ? v : fromValues(s, v, ex.shapes[i]!)));
}

/** One check: an op, an example, and the random directions of each order. */
interface Case {
  s: Session;
  def: OpDef;
  ex: Example;
  /** dirs[0]: w, of the output's size; dirs[k]: uk, one per array input. */
  dirs: number[][][];
}

/**
 * Mode-dependent ops (BatchNorm, Dropout) are checked in training mode, the mode their gradient is
 * recorded in: finite differences must then run in training mode too.
 */
function forward(c: Case, inputs: Inputs): NDArray {
  const { s, def, ex } = c;
  const run = () => apply(def, toValues(s, ex, inputs), ex.attrs ?? {})[0];
  return def.modeDependent ? s.scopes.within('train_mode', undefined, () => s.newTape(), run) : run();
}

/** The gradient of f(order) with respect to each array input: one grad per order, all but the last with create_graph. */
function gradients(c: Case, inputs: Inputs, order: number): number[][] {
  const { s, def, ex, dirs } = c;
  const vars = toValues(s, ex, inputs);
  const arrays = vars.filter((v): v is NDArray => v instanceof NDArray);
  for (const a of arrays) s.attachGrad(a, 'write');
  const grads = s.scopes.within('record', true, () => s.newTape(), () => {
    const y = apply(def, vars, ex.attrs ?? {})[0];
    let heads = [y];
    let headGrads = [fromValues(s, dirs[0][0], [...y.shape])];
    for (let k = 1; ; k++) {
      const deeper = k < order;
      heads = runGrad(s, { heads, headGrads, variables: arrays, variableNames: arrays.map((_, i) => `x${i}`), createGraph: deeper, retainGraph: deeper, trainMode: true });
      if (!deeper) return heads;
      headGrads = heads.map((g, i) => fromValues(s, dirs[k][i], [...g.shape]));
    }
  });
  return grads.map((g) => values(s, g));
}

const dotProduct = (a: number[], b: number[]) => a.reduce((acc, v, i) => acc + v * b[i], 0);

/** f(order): sum(op(x) * w) for order 1, else <grad f(order - 1), u(order - 1)> summed over the inputs. */
function objective(c: Case, inputs: Inputs, order: number): number {
  if (order === 1) return dotProduct(values(c.s, forward(c, inputs)), c.dirs[0][0]);
  return gradients(c, inputs, order - 1).reduce((acc, g, i) => acc + dotProduct(g, c.dirs[order - 1][i]), 0);
}

/** The gradient of f(order) against central differences of f(order), input by input, element by element. */
function check(s: Session, def: OpDef, ex: Example, k: number, order: number): void {
  const [lo, hi] = def.domain ?? [-2, 2];
  const inputs: Inputs = ex.shapes.map((shape, i) => (shape === null ? 1.3 : rand(sizeOf(shape), lo, hi, 11 + 17 * i + k)));
  const arrays = inputs.filter((v): v is number[] => typeof v !== 'number');
  const w = rand(forward({ s, def, ex, dirs: [] }, inputs).size, -1, 1, 99 + k);
  const dirs = [[w], ...[...Array(order - 1).keys()].map((o) => arrays.map((a, i) => rand(a.length, -1, 1, 31 + 7 * o + 13 * i + k)))];
  const c: Case = { s, def, ex, dirs };
  const analytic = gradients(c, inputs, order);
  let gi = 0;
  inputs.forEach((v, i) => {
    if (typeof v === 'number') return;
    const shifted = (j: number, by: number) => inputs.map((u, q) => (q === i ? (u as number[]).map((t, r) => (r === j ? t + by : t)) : u));
    const numeric = v.map((_, j) => (objective(c, shifted(j, EPS), order) - objective(c, shifted(j, -EPS), order)) / (2 * EPS));
    expect(close(analytic[gi++], numeric, 1e-5, 1e-6), `input ${i}`).toBeNull();
  });
}

const differentiable = allOps().filter((d) => d.differentiable);
const highest = Math.max(...differentiable.map((d) => d.derivativeOrder));

it('every differentiable op is checked to second order at least', () => {
  expect(differentiable.filter((d) => d.derivativeOrder < 2).map((d) => d.name)).toEqual([]);
  expect(allOps().filter((d) => !d.differentiable && d.derivativeOrder !== 0).map((d) => d.name)).toEqual([]);
});

for (let order = 1; order <= highest; order++) {
  describe(`derivatives of order ${order} match central finite differences${order > 1 ? ` of order ${order - 1}` : ''} (float64)`, () => {
    for (const def of differentiable.filter((d) => d.derivativeOrder >= order)) {
      examplesOf(def).forEach((ex, k) => {
        it(`${def.name} #${k} ${JSON.stringify(ex.shapes)} ${JSON.stringify(ex.attrs ?? {})}`, async () => {
          const s = newSession();
          await s.run(() => check(s, def, ex, k, order));
        });
      });
    }
  });
}
