/**
 * backward and grad as a session runs them: resolving heads, writing gradient buffers per grad_req,
 * and choosing what the walk itself records (nothing, unless create_graph).
 */
import { backward } from '../autograd/backward.js';
import { F } from '../ops/dispatch.js';
import type { NDArray } from '../engine/ndarray.js';
import { gradOf, gradReqOf, isRecorded, isVariable, setFreshGrad } from '../autograd/slot.js';
import type { Session } from './session.js';
import { fail } from '../errors.js';

/**
 * Between backward nodes: inside a program every array that matters is counted (names,
 * temporaries, the walk's own), so all that is dead goes; called directly (in-process), only what
 * the walk made, as the caller may hold arrays nothing counts.
 */
function reclaimer(s: Session): () => void {
  const floor = s.programDepth > 0 ? -1 : s.memory.stamp();
  return () => s.memory.drain(floor);
}

export interface BackwardOptions {
  heads: NDArray[];
  headGrads: (NDArray | null)[];
  retainGraph: boolean;
  trainMode: boolean;
}

function checkHeadGrads(heads: NDArray[], headGrads: (NDArray | null)[]): void {
  if (headGrads.length !== heads.length) {
    throw fail('invalid_argument', `head_grads has ${headGrads.length} entries for ${heads.length} heads; give one per head (null for ones)`, { arg: 'head_grads' });
  }
}

/** autograd.backward: writes into the buffers of every variable reached; returns them. */
export function runBackward(s: Session, o: BackwardOptions): NDArray[] {
  checkHeadGrads(o.heads, o.headGrads);
  // The walk's own ops are never recorded here, even inside an open record scope.
  const { grads } = s.scopes.within('pause', o.trainMode, () => s.newTape(), () =>
    backward({ heads: o.heads, headGrads: o.headGrads, retainGraph: o.retainGraph, reclaim: reclaimer(s) }));
  const written: NDArray[] = [];
  for (const [leaf, g] of grads) {
    const buf = gradOf(leaf);
    const req = gradReqOf(leaf);
    if (!buf || (req !== 'write' && req !== 'add')) continue;
    // The buffer is written in place, as MXNet does: `add` sums into it without a temporary.
    if (req === 'write') s.k.assign(g, buf);
    else s.k.binary('add', buf, g, { op: 'backward' }, buf);
    setFreshGrad(leaf, true);
    written.push(leaf);
  }
  return written;
}

export interface GradOptions extends BackwardOptions {
  variables: NDArray[];
  variableNames: string[];
  createGraph: boolean;
}

/** autograd.grad: new arrays, one per variable; `.grad` buffers are left alone. */
export function runGrad(s: Session, o: GradOptions): NDArray[] {
  checkHeadGrads(o.heads, o.headGrads);
  o.variables.forEach((v, i) => {
    if (!isVariable(v)) {
      throw fail('no_grad', `variable \`${o.variableNames[i]}\` has no gradient buffer; call attach-grad on it before recording`, { arg: 'variables' });
    }
  });
  const kind = o.createGraph ? 'record' : 'pause';
  return s.scopes.within(kind, o.trainMode, () => s.newTape(), () => {
    const { grads } = backward({ heads: o.heads, headGrads: o.headGrads, retainGraph: o.retainGraph, variables: o.variables, reclaim: reclaimer(s) });
    return o.variables.map((v) => {
      const g = grads.get(v) ?? F.zeros_like(v);
      if (!o.createGraph || isRecorded(g)) return g;
      // A gradient that does not depend on the variables still gets history, so that
      // differentiating it again answers zeros rather than no_graph.
      return F.add(g, F.multiply(v, 0));
    });
  });
}

