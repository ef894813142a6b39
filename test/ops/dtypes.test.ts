/**
 * Generated from the op table: every op, on each of its examples, given integer or float16
 * arrays, either runs or refuses with a 4xx problem, never an internal error (a native kernel
 * refusing a dtype the op let through would be a 500); an op whose `dtypes` rule takes the dtype
 * runs, and keeps it where its output is data of the same kind (layout ops, arithmetic).
 */
import { describe, expect, it } from 'vitest';
import { allOps, type OpDef } from '../../src/ops/index.js';
import type { Example, Value } from '../../src/ops/registry.js';
import { apply } from '../../src/ops/dispatch.js';
import { DTYPE_INFO, type DType } from '../../src/engine/backend.js';
import { sizeOf } from '../../src/engine/ndarray.js';
import { ApiError } from '../../src/errors.js';
import { fromValues, newSession, rand, values } from '../helpers/session.js';

const examplesOf = (def: OpDef): Example[] => def.examples ?? [{ shapes: def.inputs.map(() => [3, 4]) }];
const ruleOf = (def: OpDef, i: number) => (typeof def.dtypes === 'string' ? def.dtypes : def.dtypes?.[Math.min(i, def.dtypes.length - 1)] ?? 'float');
const takes = (rule: string, d: DType) => rule === 'any' || (rule === 'numeric' && DTYPE_INFO[d].kind !== 'storage') || DTYPE_INFO[d].kind === 'float';

const ops = allOps().filter((d) => !d.creation && d.inputs.length > 0 && !d.mutates);

describe.each(['int32', 'int64', 'uint8', 'float16'] as const)('%s inputs', (dtype) => {
  for (const def of ops) {
    examplesOf(def).forEach((ex, k) => {
      it(`${def.name} #${k}`, async () => {
        const s = newSession();
        await s.run(() => {
          const [lo, hi] = def.domain ?? [0, 3];
          const inputs: Value[] = ex.shapes.map((shape, i) => (shape === null ? 2 : fromValues(s, rand(sizeOf(shape), Math.max(lo, 0), hi, 5 + i + k), shape, dtype)));
          const accepted = inputs.every((v, i) => typeof v === 'number' || takes(ruleOf(def, i), dtype));
          let outs;
          try {
            outs = apply(def, inputs, ex.attrs ?? {});
          } catch (e) {
            if (!(e instanceof ApiError)) throw e;
            expect(e.status, e.message).toBeGreaterThanOrEqual(400);
            expect(e.status, e.message).toBeLessThan(500);
            // An op that takes the dtype may still refuse the example for another reason, never for the dtype.
            if (accepted) expect(e.code, e.message).not.toBe('dtype_mismatch');
            return;
          }
          expect(accepted, `${def.name} ran on ${dtype}, which its dtypes rule refuses`).toBe(true);
          for (const o of outs) values(s, o);
        });
      });
    });
  }
});
