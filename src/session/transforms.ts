/**
 * POST /vjp, /jvp, /jacobian, /hessian, /hvp and /gradcheck: each is one call of the language's
 * transform (src/expr/functional.ts) on a def of the session, so the endpoints and programs
 * answer alike. Every name in the call is checked against the name rule before it is written
 * into the program, so nothing but names and numbers reaches the parser.
 */
import type { NDArray } from '../engine/ndarray.js';
import type { Value } from '../expr/compile.js';
import type { CheckReport } from '../expr/functional.js';
import { parseProgram } from '../expr/index.js';
import { fail } from '../errors.js';
import { describe, type Descriptor, type Format } from './service.js';
import { withInterpreter } from './python.js';
import type { Session } from './session.js';

export type TransformKind = 'vjp' | 'jvp' | 'jacobian' | 'hessian' | 'hvp';

export interface TransformInput {
  function: string;
  inputs: string | string[];
  v?: string | string[];
  create_graph?: boolean;
  out?: string[];
  /** Answer the arrays' data (default), or only their descriptors. */
  fetch?: boolean;
  format?: Format;
}

export type Tree = Descriptor | Descriptor[] | Descriptor[][];

export interface TransformAnswer {
  /** The function's value (vjp, jvp, hvp), as torch.autograd.functional answers it first. */
  value?: Tree;
  result: Tree;
}

export interface GradcheckInput {
  function: string;
  inputs: string | string[];
  eps?: number;
  atol?: number;
  rtol?: number;
  second_order?: boolean;
  grad_outputs?: string | string[];
}

const tupleOf = (v: string | string[]) => (Array.isArray(v) ? `(${v.join(', ')},)` : v);

function callText(fn: string, args: string[], kwargs: [string, string | undefined][]): string {
  const kw = kwargs.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  return `autograd.${fn}(${[...args, ...kw].join(', ')})`;
}

function needFunction(s: Session, name: string): void {
  const d = s.definitions.get(name);
  if (!d || d.kind !== 'function') {
    throw fail('not_found', `the session has no function \`${name}\`; define it first with a program (POST /ops, \`def ${name}(x): ...\`)`, { arg: 'function' });
  }
}

const PY_BOOL = (b: boolean | undefined) => (b === undefined ? undefined : b ? 'True' : 'False');

export function runTransform(s: Session, kind: TransformKind, b: TransformInput): TransformAnswer {
  needFunction(s, b.function);
  const takesV = kind !== 'jacobian' && kind !== 'hessian';
  if (kind === 'hvp' && b.v === undefined) throw fail('invalid_request', '`v` is required for hvp: one array per input', { field: 'v' });
  if (!takesV && b.v !== undefined) throw fail('invalid_request', `${kind} takes no \`v\``, { field: 'v' });
  const src = callText(kind, [b.function, tupleOf(b.inputs)], [
    ['v', b.v === undefined ? undefined : tupleOf(b.v)],
    ['create_graph', PY_BOOL(b.create_graph)],
  ]);
  return run(s, src, (value, array) => {
    const format = b.fetch === false ? null : b.format ?? 'nested';
    let i = 0;
    const bindOrShow = (ref: string): Descriptor => {
      const a = array(ref);
      // Bound as a tuple's arrays are by POST /ops: to the names given, or to new ones.
      const name = b.out?.[i++] ?? s.autoName();
      s.names.set(name, a);
      return describe(s, name, a, format);
    };
    const tree = (v: Value, depth: number, leaf: (ref: string) => Descriptor): Tree => {
      if (v.t === 'ref') return leaf(v.ref);
      if (v.t !== 'list' || depth > 1) throw new Error('internal: a transform answered an unexpected value');
      return v.items.map((x) => tree(x, depth + 1, leaf)) as Descriptor[] | Descriptor[][];
    };
    const pair = kind === 'jacobian' || kind === 'hessian' ? null : (value as { items: Value[] }).items;
    const answer: TransformAnswer = { result: tree(pair ? pair[1]! : value, 0, bindOrShow) };
    if (b.out && b.out.length !== i) {
      for (const n of b.out.slice(0, i)) s.names.delete(n);
      throw fail('invalid_request', `\`out\` has ${b.out.length} names for the ${i} arrays of the result`, { field: 'out' });
    }
    if (pair) {
      answer.value = tree(pair[0]!, 0, (ref) => {
        const name = s.autoName();
        s.names.set(name, array(ref));
        return describe(s, name, array(ref), format);
      });
    }
    return answer;
  });
}

export function runGradcheck(s: Session, b: GradcheckInput): CheckReport {
  needFunction(s, b.function);
  if (b.grad_outputs !== undefined && !b.second_order) throw fail('invalid_request', '`grad_outputs` goes with `second_order: true`', { field: 'grad_outputs' });
  const num = (x: number | undefined) => (x === undefined ? undefined : String(x));
  const src = callText(b.second_order ? 'gradgradcheck' : 'gradcheck', [b.function, tupleOf(b.inputs)], [
    ['grad_outputs', b.grad_outputs === undefined ? undefined : tupleOf(b.grad_outputs)],
    ['eps', num(b.eps)], ['atol', num(b.atol)], ['rtol', num(b.rtol)], ['raise_exception', 'False'],
  ]);
  return run(s, src, (_v, _a, report) => report!);
}

function run<T>(s: Session, src: string, answer: (value: Value, array: (ref: string) => NDArray, report: CheckReport | undefined) => T): T {
  const ast = parseProgram(src, { maxLength: s.limits.maxExprLength, maxDepth: s.limits.maxExprDepth, maxStatements: s.limits.maxStatements });
  return withInterpreter(s, (interp, runner) => {
    const { result } = interp.run(ast, src);
    return answer(result!, (ref) => runner.array(ref), interp.lastCheck);
  }, false);
}
