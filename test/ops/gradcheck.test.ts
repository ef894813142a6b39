/**
 * Generated from the op table: for every differentiable op and each of its examples, the gradient
 * from backward against central finite differences in float64; for elementwise ops, second
 * derivatives (grad with create_graph, differentiated again) against finite differences of the
 * first.
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

function examplesOf(def: OpDef): Example[] {
  return def.examples ?? [{ shapes: def.inputs.map(() => [3, 4]) }];
}

function toValues(s: Session, ex: Example, inputs: (number[] | number)[]): Value[] {
  return inputs.map((v, i) => (typeof v === 'number' ? v : fromValues(s, v, ex.shapes[i]!)));
}

/**
 * Mode-dependent ops (BatchNorm, Dropout) are checked in training mode, the mode their gradient is
 * recorded in: finite differences must then run in training mode too.
 */
function forward(s: Session, def: OpDef, ex: Example, inputs: (number[] | number)[]): NDArray {
  const run = () => apply(def, toValues(s, ex, inputs), ex.attrs ?? {})[0];
  return def.modeDependent ? s.scopes.within('train_mode', undefined, () => s.newTape(), run) : run();
}

/** sum(op(x) * w): a scalar objective that exercises every output element differently. */
function objective(s: Session, def: OpDef, ex: Example, inputs: (number[] | number)[], w: number[]): number {
  const y = values(s, forward(s, def, ex, inputs));
  return y.reduce((acc, v, i) => acc + v * w[i], 0);
}

const differentiable = allOps().filter((d) => d.differentiable);

describe('first derivatives match central finite differences (float64)', () => {
  for (const def of differentiable) {
    examplesOf(def).forEach((ex, k) => {
      it(`${def.name} #${k} ${JSON.stringify(ex.shapes)} ${JSON.stringify(ex.attrs ?? {})}`, async () => {
        const s = newSession();
        await s.run(() => {
          const [lo, hi] = def.domain ?? [-2, 2];
          const inputs = ex.shapes.map((shape, i) => (shape === null ? 1.3 : rand(sizeOf(shape), lo, hi, 11 + 17 * i + k)));
          const y0 = forward(s, def, ex, inputs);
          const w = rand(y0.size, -1, 1, 99 + k);
          // Analytic: grad of sum(y * w) with respect to each array input.
          const vars = toValues(s, ex, inputs);
          const arrays = vars.filter((v): v is NDArray => v instanceof NDArray);
          for (const a of arrays) s.attachGrad(a, 'write');
          const grads = s.scopes.within('record', true, () => s.newTape(), () => {
            const y = apply(def, vars, ex.attrs ?? {})[0];
            const head = fromValues(s, w, [...y.shape]);
            return runGrad(s, { heads: [y], headGrads: [head], variables: arrays, variableNames: arrays.map((_, i) => `x${i}`), createGraph: false, retainGraph: false, trainMode: true });
          });
          let gi = 0;
          inputs.forEach((v, i) => {
            if (typeof v === 'number') return;
            const numeric = v.map((_, j) => {
              const plus = inputs.map((u, q) => (q === i ? (u as number[]).map((t, r) => (r === j ? t + EPS : t)) : u));
              const minus = inputs.map((u, q) => (q === i ? (u as number[]).map((t, r) => (r === j ? t - EPS : t)) : u));
              return (objective(s, def, ex, plus, w) - objective(s, def, ex, minus, w)) / (2 * EPS);
            });
            const analytic = values(s, grads[gi++]);
            expect(close(analytic, numeric, 1e-5, 1e-6), `input ${i}`).toBeNull();
          });
        });
      });
    });
  }
});

const elementwise = differentiable.filter((d) => d.inputs.length >= 1 && d.inputs.length <= 2 && !d.examples?.some((e) => e.attrs) &&
  (d.inputs.length === 1 ? d.attrs.safeParse({}).success && !['reshape', 'flatten', 'transpose', 'copy', 'squeeze'].includes(d.name) : d.scalarInputs));

describe('second derivatives of elementwise ops match finite differences of the first', () => {
  for (const def of elementwise) {
    it(def.name, async () => {
      const s = newSession();
      await s.run(() => {
        const [lo, hi] = def.domain ?? [-2, 2];
        const n = 6;
        const xs = rand(n, lo, hi, 5);
        const other = def.inputs.length === 2 ? rand(n, lo, hi, 6) : null;
        // d/dx of sum(w * dy/dx), with y = op(x) or op(x, other) elementwise.
        const w = rand(n, -1, 1, 7);
        const firstGrad = (x: number[], record: boolean): { g: NDArray; x: NDArray } => {
          const xa = fromValues(s, x, [n]);
          s.attachGrad(xa, 'write');
          const g = s.scopes.within('record', true, () => s.newTape(), () => {
            const ins: Value[] = other ? [xa, fromValues(s, other, [n])] : [xa];
            const y = apply(def, ins, {})[0];
            return runGrad(s, { heads: [y], headGrads: [null], variables: [xa], variableNames: ['x'], createGraph: record, retainGraph: record, trainMode: true })[0];
          });
          return { g, x: xa };
        };
        const { g, x } = firstGrad(xs, true);
        const head = fromValues(s, w, [n]);
        const [second] = runGrad(s, { heads: [g], headGrads: [head], variables: [x], variableNames: ['x'], createGraph: false, retainGraph: false, trainMode: true });
        const numeric = xs.map((_, j) => {
          const up = values(s, firstGrad(xs.map((t, r) => (r === j ? t + EPS : t)), false).g);
          const dn = values(s, firstGrad(xs.map((t, r) => (r === j ? t - EPS : t)), false).g);
          return w.reduce((acc, wi, i) => acc + wi * (up[i] - dn[i]) / (2 * EPS), 0);
        });
        expect(close(values(s, second), numeric, 1e-4, 1e-5)).toBeNull();
      });
    });
  }
});
