/**
 * The exact fast checks (src/http/schemas/fast.ts) must give their zod schema's verdict on every
 * body: accepting what zod refuses would loosen validation, refusing what zod accepts would only
 * cost speed, but both are drift. Bodies are generated valid, then broken one field at a time.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { ArrayBody, OpsBody, PutArrayBody } from '../../src/http/schemas/api.js';
import { fastCheckOf } from '../../src/http/schemas/fast.js';
import { LIMITS } from '../../src/program/format.js';
import { specificIssue } from '../../src/http/validation.js';
import { rng } from '../helpers/rng.js';

const random = rng(20260127);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const chance = (p: number) => random() < p;

// Values that each break some field: wrong types, edge strings and numbers, limits.
const ODD: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -0, 2 ** 31, 2 ** 31 - 1, 2 ** 53, Infinity, NaN, '', 'x', 'x.grad', 'x.grad.grad', '1x', 'a-b', 'NaN',
  'Infinity', '-Infinity', 'nan', 'scope', 'backward', 'attach_grad', 'delete', 'record', 'write', 'float32', 'int8', 'a'.repeat(64),
  'a'.repeat(65), [], [1], ['x'], [[1, 2], [3]], [null], [1, 'a'], ['NaN'], [[]], {}, { a: 1 }, [{}], new Array(257).fill('y'),
  new Array(4097).fill(1),
];

const name = () => pick(['x', 'y', 'w_1', '_t', 'A'.repeat(64)]);
const ref = () => (chance(0.3) ? `${name()}.grad` : name());
const nested = (depth = 0): unknown => (depth < 3 && chance(0.4) ? Array.from({ length: 1 + Math.floor(random() * 3) }, () => nested(depth + 1)) : pick([1, -2.5, 0, 'NaN', 'Infinity', '-Infinity', 1e-8]));
const arg = () => pick([ref, () => pick([1, 0.5, -3, 1e300]), () => [nested(1)]])();

function opStatement(): Record<string, unknown> {
  const st: Record<string, unknown> = { op: pick(['multiply', 'add', 'dot', 'x', 'random.normal', 'a'.repeat(64)]) };
  if (chance(0.8)) st.args = Array.from({ length: Math.floor(random() * 4) }, arg);
  if (chance(0.3)) st.attrs = pick([{}, { axis: 1 }, { shape: [2, 3], keepdims: true }, { constructor: 1 }]);
  if (chance(0.5)) st.out = chance(0.7) ? name() : Array.from({ length: 1 + Math.floor(random() * 3) }, name);
  else if (chance(0.3)) st.into = ref();
  return st;
}

function statement(depth = 0): Record<string, unknown> {
  const r = random();
  if (r < 0.6 || depth > 2) return opStatement();
  if (r < 0.72) {
    const st: Record<string, unknown> = { op: 'scope', kind: pick(['record', 'pause', 'train_mode', 'predict_mode', 'detect_anomaly']), body: program(depth + 1) };
    if (chance(0.3)) st.train_mode = chance(0.5);
    return st;
  }
  if (r < 0.84) {
    const st: Record<string, unknown> = { op: 'backward', args: Array.from({ length: 1 + Math.floor(random() * 2) }, arg) };
    if (chance(0.5)) {
      const attrs: Record<string, unknown> = {};
      if (chance(0.5)) attrs.head_grads = Array.from({ length: Math.floor(random() * 3) }, () => (chance(0.3) ? null : arg()));
      if (chance(0.5)) attrs.retain_graph = chance(0.5);
      if (chance(0.5)) attrs.train_mode = chance(0.5);
      st.attrs = attrs;
    }
    return st;
  }
  if (r < 0.94) {
    const st: Record<string, unknown> = { op: 'attach_grad', args: [name()] };
    if (chance(0.5)) st.attrs = chance(0.7) ? { grad_req: pick(['write', 'add', 'null']) } : {};
    return st;
  }
  return { op: 'delete', args: Array.from({ length: 1 + Math.floor(random() * 3) }, name) };
}

const program = (depth = 0) => Array.from({ length: Math.floor(random() * 4) }, () => statement(depth));

function opsBody(): Record<string, unknown> {
  const b: Record<string, unknown> = chance(0.9) ? { ops: program() } : { expr: 'y = x * 2' };
  if (chance(0.3)) b.record = chance(0.5);
  if (chance(0.2)) b.train_mode = chance(0.5);
  if (chance(0.2)) b.detect_anomaly = chance(0.8) ? chance(0.5) : 'yes';
  if (chance(0.3)) b.fetch = chance(0.5) ? chance(0.5) : Array.from({ length: Math.floor(random() * 3) }, ref);
  if (chance(0.2)) b.format = pick(['nested', 'flat', 'base64']);
  return b;
}

function arrayBody(): Record<string, unknown> {
  const b: Record<string, unknown> = { name: name() };
  if (chance(0.5)) {
    b.data = pick([() => nested(), () => [1, 2, 3, 4], () => [[1, 'x'], null], () => 'NaN', () => 3])();
    if (chance(0.4)) b.shape = pick([[4], [2, 2], [], [0, 3]]);
  } else {
    b.data_base64 = pick(['AAAAAA==', '', '!!']);
    b.shape = pick([[1], [2, 2], []]);
  }
  if (chance(0.3)) b.dtype = pick(['float32', 'float64']);
  return b;
}

/** Every object or array inside v, with v itself: the places a mutation can strike. */
function places(v: unknown, out: (Record<string, unknown> | unknown[])[] = []): (Record<string, unknown> | unknown[])[] {
  if (typeof v === 'object' && v !== null) {
    out.push(v as Record<string, unknown>);
    for (const x of Object.values(v)) places(x, out);
  }
  return out;
}

/** Breaks v in one place: a field set to an odd value, deleted, or added; an item replaced or added. */
function mutate(v: unknown): unknown {
  const copy = structuredClone(v);
  const spots = places(copy);
  if (!spots.length) return pick(ODD);
  const at = pick(spots);
  if (Array.isArray(at)) {
    if (chance(0.5) && at.length) at[Math.floor(random() * at.length)] = pick(ODD);
    else at.push(pick(ODD));
  } else {
    const keys = Object.keys(at);
    const r = random();
    if (r < 0.5 && keys.length) at[pick(keys)] = pick(ODD);
    else if (r < 0.7 && keys.length) delete at[pick(keys)];
    else at[pick(['extra', 'op', 'args', 'kind', 'body', 'attrs', 'name', 'data', 'data_base64', 'shape', '__proto__'])] = pick(ODD);
  }
  return copy;
}

function agree(schema: z.ZodType, make: () => unknown, n: number): { accepted: number; refused: number } {
  const fast = fastCheckOf(schema)!;
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < n; i++) {
    let v = make();
    for (let m = Math.floor(random() * 3); m > 0; m--) v = mutate(v);
    const zodSays = schema.safeParse(v).success;
    expect({ body: v, fast: fast(v) }).toEqual({ body: v, fast: zodSays });
    if (zodSays) accepted++;
    else refused++;
  }
  return { accepted, refused };
}

describe('the fast checks agree with the zod schemas', () => {
  it('OpsBody, on generated and broken programs', () => {
    const { accepted, refused } = agree(OpsBody, opsBody, 4000);
    // Both verdicts must be well represented, or the test proves little.
    expect(accepted).toBeGreaterThan(800);
    expect(refused).toBeGreaterThan(800);
  });

  it('ArrayBody and PutArrayBody', () => {
    for (const schema of [ArrayBody, PutArrayBody]) {
      const { accepted, refused } = agree(schema, arrayBody, 2000);
      expect(accepted).toBeGreaterThan(300);
      expect(refused).toBeGreaterThan(300);
    }
  });

  it('at the limits of the program format', () => {
    const fast = fastCheckOf(OpsBody)!;
    const bodies = [
      { ops: [{ op: 'add', args: new Array(LIMITS.args).fill(1) }] },
      { ops: [{ op: 'add', args: new Array(LIMITS.args + 1).fill(1) }] },
      { ops: [{ op: 'backward', args: new Array(LIMITS.heads + 1).fill('y') }] },
      { ops: [{ op: 'delete', args: new Array(LIMITS.deletes + 1).fill('y') }] },
      { ops: [{ op: 'add', out: new Array(LIMITS.outs + 1).fill('y') }] },
      { ops: [{ op: 'add', out: [] }] },
      { ops: new Array(LIMITS.statements + 1).fill({ op: 'add' }) },
      { ops: [{ op: 'scope', kind: 'record', body: new Array(LIMITS.statements).fill({ op: 'add' }) }] },
      { ops: [{ op: 'attach_grad', args: [] }] },
    ];
    for (const b of bodies) expect(fast(b), JSON.stringify(b).slice(0, 80)).toBe(OpsBody.safeParse(b).success);
  });
});

describe('a union failure is narrowed to the alternative the client meant', () => {
  const where = (body: unknown) => {
    const r = OpsBody.safeParse(body);
    expect(r.success).toBe(false);
    const { path, message } = specificIssue(r.error!.issues[0]);
    return `${path.join('.')}: ${message}`;
  };

  it('names the statement path and the argument', () => {
    expect(where({ ops: [{ op: 'scope', kind: 'record', body: [{ op: 'add', args: ['x', { a: 1 }] }] }] })).toMatch(/^ops\.0\.body\.0\.args\.1: an argument is/);
    expect(where({ ops: [{ op: 'add', args: [[1, [2, 'a']]] }] })).toMatch(/^ops\.0\.args\.0\.1\.1: expected a number/);
    expect(where({ ops: [{ op: 'backward', args: ['y'], attrs: { retain: true } }] })).toMatch(/^ops\.0\.attrs: Unrecognized key: "retain"/);
    expect(where({ ops: [{ op: 'scope', kind: 'recrd', body: [] }] })).toMatch(/^ops\.0\.kind: /);
    expect(where({ ops: [{ op: 'add', out: '1x' }] })).toMatch(/^ops\.0\.out: /);
    expect(where({ ops: [5] })).toMatch(/^ops\.0: a statement is/);
  });
});
