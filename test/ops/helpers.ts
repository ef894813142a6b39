/** Shared bits of the op tests: a server per file, flat reads, and a 422 check. */
import { expect } from 'vitest';
import type { Client } from '../helpers/server.js';

/**
 * These servers test ops, not overload protection: under a parallel test run the event-loop
 * sampler can report a huge delay and the server would shed requests with 503.
 */
export const NO_PRESSURE = { GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' };

export const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v as number]);

/** Runs an expression and returns the last bare expression's value, flattened. */
export async function val(c: Client, expr: string): Promise<number[]> {
  const b = await c.expr(expr);
  return typeof b.result === 'number' ? [b.result] : flat(b.result.data);
}

export async function shapeOf(c: Client, expr: string): Promise<number[]> {
  return (await c.expr(expr)).result.shape;
}

export function near(actual: number[], expected: number[], tol = 1e-5): void {
  expect(actual.length, 'length').toBe(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i]), `element ${i}: ${a} vs ${expected[i]}`).toBeLessThanOrEqual(tol * (1 + Math.abs(expected[i]))));
}

/** Expects a 422 whose detail names the op and the argument. */
export async function rejects(c: Client, expr: string, op: string, arg: string, code?: string): Promise<void> {
  const r = await c.post('/ops', { expr });
  expect(r.status, `${expr} -> ${JSON.stringify(r.body)}`).toBe(422);
  if (code) expect(r.body.code).toBe(code);
  expect(r.body.detail, r.body.detail).toContain(op);
  expect(r.body.detail, r.body.detail).toContain(arg);
}

/** Deterministic values in [lo, hi). */
export function seq(n: number, lo = -1, hi = 1, seed = 3): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return lo + (hi - lo) * (x / 2147483648);
  });
}

/** Nested lists of `shape` from flat values, for inline constants. */
export function nest(v: number[], shape: number[]): unknown {
  if (shape.length <= 1) return v;
  const step = v.length / shape[0];
  return Array.from({ length: shape[0] }, (_, i) => nest(v.slice(i * step, (i + 1) * step), shape.slice(1)));
}

export const lit = (v: number[], shape: number[]) => JSON.stringify(nest(v, shape));
