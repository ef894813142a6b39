/**
 * Whole-session files: every bound array and gradient buffer as one safetensors file, and back.
 * Like the other service functions, these run inside `session.run`.
 */
import type { NDArray } from '../engine/ndarray.js';
import { isFloat } from '../engine/backend.js';
import { NAME_RE } from '../program/format.js';
import { attachGrad, gradOf } from '../autograd/slot.js';
import { fail } from '../errors.js';
import { decodeSafetensors, safetensorsHeader, type Tensor } from './safetensors.js';
import { itemSize } from '../engine/backend.js';
import { Deferred } from './deferred.js';
import { ChunkedCopy } from './chunked.js';
import { describe, type Descriptor } from './service.js';
import type { Session } from './session.js';

/** The file's `__metadata__`; fixed, so that exporting the same arrays twice gives the same bytes. */
const EXPORT_METADATA = { producer: 'gradserve' };

/**
 * The session's arrays as one safetensors file: `name` for each binding and `name.grad` for its
 * gradient buffer, in code-unit order of the names (so `x.grad` follows `x`, and the bytes do not
 * depend on the order in which names were bound). Two names bound to one array are written
 * twice; an import gives them separate arrays.
 */
export function exportSession(s: Session): Deferred<Promise<Uint8Array[]>> {
  const names = [...s.names.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const arrays: [string, NDArray][] = [];
  for (const name of names) {
    const a = s.names.get(name)!;
    arrays.push([name, a]);
    const g = gradOf(a);
    if (g) arrays.push([`${name}.grad`, g]);
  }
  const entries = arrays.map(([name, a]) => ({ name, dtype: a.dtype, shape: [...a.shape], byteLength: a.size * itemSize(a.dtype) }));
  return new Deferred(async () => {
    const out = new ChunkedCopy(s);
    out.push(safetensorsHeader(entries, EXPORT_METADATA));
    for (const [, a] of arrays) await out.array(a);
    return out.parts;
  });
}

export interface ImportResult {
  arrays: Descriptor[];
  metadata: Record<string, string>;
}

/**
 * A safetensors file's arrays, allocated (where the quotas are enforced) but bound to nothing:
 * `name` for each array, its `name.grad` attached as its gradient buffer (grad_req write).
 */
export function arraysOfFile(s: Session, file: Uint8Array): { built: [string, NDArray][]; metadata: Record<string, string> } {
  const { tensors, metadata } = decodeSafetensors(file, (name) => {
    const base = name.endsWith('.grad') ? name.slice(0, -5) : name;
    return NAME_RE.test(base) ? null : 'a name matches ^[A-Za-z_][A-Za-z0-9_]{0,63}$, or is such a name followed by .grad';
  });
  const arrays = new Map<string, Tensor>();
  const grads = new Map<string, Tensor>();
  for (const t of tensors) {
    if (t.name.endsWith('.grad')) grads.set(t.name.slice(0, -5), t);
    else arrays.set(t.name, t);
  }
  for (const [name, g] of grads) {
    const a = arrays.get(name);
    if (!a) throw fail('invalid_request', `not a valid safetensors file: tensor \`${name}.grad\` is a gradient, but the file has no tensor \`${name}\``);
    if (a.dtype !== g.dtype || a.shape.length !== g.shape.length || a.shape.some((d, i) => d !== g.shape[i])) {
      throw fail('invalid_request', `not a valid safetensors file: \`${name}.grad\` (${g.dtype} [${g.shape.join(', ')}]) must have the dtype and shape of \`${name}\` (${a.dtype} [${a.shape.join(', ')}])`);
    }
    // As attach_grad: only float arrays carry gradients.
    if (!isFloat(a.dtype)) throw fail('invalid_request', `not a valid safetensors file: \`${name}\` is ${a.dtype}, which carries no gradient, yet the file has \`${name}.grad\``);
  }

  // Allocate everything first: alloc is where the quotas are enforced.
  const built: [string, NDArray][] = [];
  for (const [name, t] of arrays) {
    const a = s.k.fromBytes(t.dtype, t.shape, t.bytes);
    const g = grads.get(name);
    if (g) attachGrad(a, 'write', s.k.fromBytes(g.dtype, g.shape, g.bytes));
    built.push([name, a]);
  }
  return { built, metadata };
}

/**
 * Loads a file into the session: each `name` is (re)bound to a new array and each `name.grad`
 * becomes the gradient buffer (grad_req write) of the `name` of the same file. Atomic: the whole
 * file is validated and every array allocated before the first name is bound, so a refused file
 * (400), or one over the session's quotas (413/429), leaves the session as it was; buffers already
 * allocated are referenced by nothing and freed at the request's end.
 */
export function importSession(s: Session, file: Uint8Array): ImportResult {
  const { built, metadata } = arraysOfFile(s, file);
  for (const [name, a] of built) s.names.set(name, a);
  return { arrays: built.map(([name, a]) => describe(s, name, a)), metadata };
}
