/**
 * The interpreter's machine in a session: its steps run through one ProgramRunner per request,
 * its scopes are the session's, and a custom autograd.Function becomes one tape node whose
 * gradient rule runs the class's backward in the language.
 */
import { z } from 'zod';
import { sameShape, shapeStr, type NDArray } from '../engine/ndarray.js';
import type { OpDef } from '../ops/registry.js';
import { isVariable, nodeOf } from '../autograd/slot.js';
import { saveData } from '../autograd/refs.js';
import { fail } from '../errors.js';
import { Interpreter, type FunctionRecord, type Held, type Machine } from '../expr/interp.js';
import type { ScopeKind, Statement } from '../program/format.js';
import { ProgramRunner } from './program.js';
import type { Session } from './session.js';

/** The interpreters running in each session, innermost last: a custom backward runs in the innermost. */
const running = new WeakMap<Session, { interp: Interpreter; runner: ProgramRunner }[]>();

class SessionMachine implements Machine {
  constructor(private readonly s: Session, readonly runner: ProgramRunner) {}

  get defs() {
    return this.s.definitions;
  }

  get deadline() {
    return this.runner.deadline;
  }

  run(statements: Statement[], line: number): void {
    this.runner.runMore(statements, line);
  }

  info(ref: string) {
    const a = this.runner.array(ref);
    return { shape: a.shape, dtype: a.dtype, variable: isVariable(a) };
  }

  budget() {
    return { maxArrayElements: this.s.limits.maxArrayElements, bytesFree: this.s.limits.maxSessionBytes - this.s.memory.bytes };
  }

  read(ref: string): Float64Array {
    return this.s.memory.backend.readNumbers(this.runner.array(ref).storage);
  }

  release(mark: number, keep: Set<string>): void {
    this.runner.releaseTemps(mark, keep);
  }

  scope<T>(kind: ScopeKind, trainMode: boolean | undefined, fn: () => T): T {
    return this.s.scopes.within(kind, trainMode, () => this.s.newTape(), fn);
  }

  unrecorded<T>(fn: () => T): T {
    return this.s.scopes.within('pause', this.s.scopes.isTraining, () => this.s.newTape(), fn);
  }

  isRecording(): boolean {
    return this.s.scopes.isRecording;
  }

  hold(ref: string): Held {
    return this.runner.array(ref);
  }

  adopt(h: Held, name: string): void {
    this.runner.setTemp(name, h as NDArray);
  }

  recordFunction(r: FunctionRecord): void {
    const s = this.s;
    const inputs = r.inputs.map((ref) => this.runner.array(ref));
    const outs = r.outputs.map((ref) => this.runner.array(ref));
    const def: OpDef = {
      name: `Function:${r.name}`,
      aliases: [],
      doc: `custom autograd.Function ${r.name}`,
      inputs: r.inputs.map((_, i) => `x${i}`),
      attrs: z.unknown(),
      positional: [],
      differentiable: true,
      // The client's own rule: no generated test vouches for any order of it.
      derivativeOrder: 0,
      modeDependent: false,
      scalarInputs: false,
      internal: true,
      save: {},
      forward: () => {
        throw new Error('internal: a custom Function node is never run forward');
      },
      vjp: ({ g }) => {
        const grads = withInterpreter(s, (interp) => r.backward(interp, g));
        if (grads.length !== inputs.length) {
          throw fail('program_error', `${r.name}.backward returned ${grads.length} gradient(s) for ${inputs.length} input(s)`, { exception: 'ValueError' });
        }
        return grads.map((h, i) => {
          if (h === null) return null;
          const d = h as NDArray;
          if (!sameShape(d.shape, inputs[i]!.shape)) {
            throw fail('shape_mismatch', `${r.name}.backward returned a gradient of shape ${shapeStr(d.shape)} for input ${i} of shape ${shapeStr(inputs[i]!.shape)}`, { arg: `x${i}` });
          }
          return d;
        });
      },
    };
    s.env.record(def, {}, inputs, outs);
    // The saved tensors live on the node, which holds their data as any node holds what it saves
    // (src/autograd/record.ts) and lets go of it when freed.
    const node = outs.length ? nodeOf(outs[0]!) : null;
    if (node && node.op === def) {
      const saved = r.saved as NDArray[];
      for (const a of saved) saveData(a);
      node.x = saved;
    }
  }
}

function limitsOf(s: Session) {
  const l = s.limits;
  return {
    maxLength: l.maxExprLength, maxDepth: l.maxExprDepth, maxStatements: l.maxStatements,
    maxSteps: l.maxSteps, maxCallDepth: l.maxCallDepth, maxDefinitions: l.maxDefinitions, requestTimeoutMs: l.requestTimeoutMs,
  };
}

/** A new interpreter on its own runner, registered as running in the session while fn runs. */
export function withInterpreter<T>(s: Session, fn: (interp: Interpreter, runner: ProgramRunner) => T, reuse = true): T {
  const stack = running.get(s) ?? [];
  running.set(s, stack);
  const top = stack[stack.length - 1];
  if (reuse && top) return fn(top.interp, top.runner);
  const runner = new ProgramRunner(s);
  const interp = new Interpreter(new SessionMachine(s, runner), limitsOf(s));
  stack.push({ interp, runner });
  try {
    return fn(interp, runner);
  } finally {
    stack.pop();
    runner.releaseAll();
  }
}
