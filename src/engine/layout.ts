/**
 * Row-major layout: strides and views of shapes, as pure functions of numbers. The reference
 * backend, the NDArray-level kernels and the ops that build strided views all read them here.
 */
import type { View } from './backend.js';

/** The strides of a contiguous row-major array of `shape` (in elements). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) { st[d] = s; s *= shape[d]; }
  return st;
}

/**
 * The view that reads a contiguous `shape` as if broadcast to `to` (stride 0 on broadcast axes).
 * `to` must be a broadcast of `shape` (kernels.ts broadcastShapes checks that).
 */
export function broadcastView(shape: readonly number[], to: readonly number[]): View {
  const st = contiguousStrides(shape);
  const strides = to.map((_, i) => {
    const j = shape.length - to.length + i;
    return j < 0 || shape[j] === 1 ? 0 : st[j];
  });
  return { shape: to, strides, offset: 0 };
}

/** The view of a contiguous `shape` with its axes permuted: axis i of the view is axis p[i]. */
export function permutedView(shape: readonly number[], p: readonly number[]): View {
  const st = contiguousStrides(shape);
  return { shape: p.map((i) => shape[i]), strides: p.map((i) => st[i]), offset: 0 };
}
