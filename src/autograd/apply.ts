/**
 * Running an op: forward through the table, and a tape node when MXNet's rule says to record
 * (recording is on and some input is a variable or has history). Every op runs through here,
 * whether it comes from a client's program or from a gradient rule, which is why gradients of
 * gradients need nothing special.
 */
import { NDArray } from '../engine/ndarray.js';
import type { Kernels } from '../engine/kernels.js';
import type { DType } from '../engine/backend.js';
import { lookupOp, type OpContext, type OpDef, type Value } from '../ops/registry.js';
import { Node, NOTHING_SAVED, type Edge, type Tape } from './tape.js';
import type { ScopeStack } from './scopes.js';
import { fail } from '../errors.js';

/** What an op needs from the session it runs in. */
export interface ExecEnv {
  k: Kernels;
  scopes: ScopeStack;
  defaultDtype: DType;
  random(n: number): { seed: number; counter: number };
  /** The tape to record into when no record scope provides one (create_graph outside scopes). */
  fallbackTape(): Tape;
  /** Called before a node is added: enforces the session's tape-node quota. */
  onRecord(tape: Tape): void;
  /**
   * Frees what nothing reaches any more once enough was allocated since the last time; `roots`
   * lists the arrays the caller still holds outside the session's names (a backward pass's
   * pending gradients). Safe only between ops, never inside one.
   */
  maybeReclaim?(roots: () => (NDArray | Node)[]): void;
}

let current: ExecEnv | null = null;

/** Runs fn with env as the environment of every op applied inside it. */
export function runWith<T>(env: ExecEnv, fn: () => T): T {
  const prev = current;
  current = env;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

export function env(): ExecEnv {
  if (!current) throw new Error('an op ran outside of a session environment');
  return current;
}

function edgeOf(v: Value): Edge | null {
  if (!(v instanceof NDArray)) return null;
  if (v.recorded) return { node: v.node!, index: v.outputIndex };
  if (v.isVariable) return { leaf: v };
  return null;
}

/**
 * The parsed defaults of each op, for calls without attrs (most calls from gradient rules and
 * programs): parsing `{}` always gives the same value, so it is parsed once per op. Forwards and
 * vjps only read attrs, never write them.
 */
const defaults = new WeakMap<OpDef, unknown>();

function isEmpty(attrs: unknown): boolean {
  if (attrs === undefined || attrs === null) return true;
  if (typeof attrs !== 'object' || Object.getPrototypeOf(attrs) !== Object.prototype) return false;
  for (const _ in attrs) return false;
  return true;
}

/** Parses attrs against the op's schema; a failure is a 422 naming the op and the attribute. */
export function parseAttrs(def: OpDef, attrs: unknown): unknown {
  const empty = isEmpty(attrs);
  // Parsed attrs are objects, so undefined means "not parsed yet".
  const known = empty ? defaults.get(def) : undefined;
  if (known !== undefined) return known;
  const r = def.attrs.safeParse(attrs ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue.path.join('.');
    const detail = issue.code === 'unrecognized_keys'
      ? `\`${def.name}\` has no attribute ${(issue as { keys: string[] }).keys.map((k) => `\`${k}\``).join(', ')}`
      : `attribute \`${path}\` of \`${def.name}\`: ${issue.message}`;
    throw fail('invalid_attribute', detail, { op: def.name, attribute: path || undefined });
  }
  if (empty) defaults.set(def, r.data);
  return r.data;
}

/** Applies an op to values with already-parsed attrs; returns its outputs. */
export function applyParsed(def: OpDef, inputs: Value[], attrs: unknown): NDArray[] {
  const e = env();
  const ctx: OpContext = { k: e.k, isTraining: e.scopes.isTraining, defaultDtype: e.defaultDtype, random: e.random, op: def.name };
  const res = def.forward(ctx, inputs as NDArray[], attrs);
  const outs = Array.isArray(res) ? res : [res];
  if (e.scopes.isRecording && def.vjp) {
    // An op on constants only (no variable, no history) records nothing.
    const edges = new Array<Edge | null>(inputs.length);
    let anyEdge = false;
    for (let i = 0; i < inputs.length; i++) {
      edges[i] = edgeOf(inputs[i]);
      if (edges[i]) anyEdge = true;
    }
    if (anyEdge) record(e, def, attrs, inputs, edges, outs);
  }
  return outs;
}

export function apply(op: string | OpDef, inputs: Value[], attrs?: unknown): NDArray[] {
  const def = typeof op === 'string' ? lookupOp(op) : op;
  if (!def) throw new Error(`internal: op ${String(op)} is not in the table`);
  return applyParsed(def, inputs, parseAttrs(def, attrs));
}

function record(e: ExecEnv, def: OpDef, attrs: unknown, inputs: Value[], edges: (Edge | null)[], outs: NDArray[]): void {
  const tape = e.scopes.tape ?? e.fallbackTape();
  e.onRecord(tape);
  const si = def.save.inputs;
  const n = inputs.length;
  // One pass over the inputs fills every per-input column of the node. Scalars are always kept:
  // listings show them and they cost nothing.
  const x = new Array<Value | undefined>(n);
  const ids = new Array<number | null>(n);
  const shapes = new Array<readonly number[] | null>(n);
  const dtypes = new Array<DType | null>(n);
  for (let i = 0; i < n; i++) {
    const v = inputs[i];
    const saved = typeof v === 'number' || si === true || (Array.isArray(si) && si.includes(i));
    x[i] = saved ? v : undefined;
    if (!(v instanceof NDArray)) {
      ids[i] = shapes[i] = dtypes[i] = null;
    } else {
      ids[i] = v.id;
      shapes[i] = v.shape;
      dtypes[i] = v.dtype;
    }
  }
  const outputs = new Array<{ id: number; shape: readonly number[]; dtype: DType }>(outs.length);
  for (let i = 0; i < outs.length; i++) outputs[i] = { id: outs[i].id, shape: outs[i].shape, dtype: outs[i].dtype };
  const y = def.save.outputs ? outs.slice() : NOTHING_SAVED;
  const node = new Node(tape, def, attrs, edges, ids, shapes, dtypes, x, y, outputs);
  for (let i = 0; i < outs.length; i++) {
    outs[i].node = node;
    outs[i].outputIndex = i;
  }
  tape.nodes.push(node);
}

type Attrs = Record<string, unknown>;
type Call = (...args: (Value | Attrs)[]) => NDArray;

/**
 * The op table as functions, for gradient rules: `F.multiply(g, F.cos(x))`,
 * `F.sum(g, { axis: [0], keepdims: true })`. A trailing plain object is the attrs.
 * Names resolve against the table on first call, so there is no second list of ops; each name's
 * function is made once and kept, since gradient rules call them on every backward step.
 */
const opFunctions = new Map<string, Call>();
export const F: Record<string, Call> = new Proxy({} as Record<string, Call>, {
  get(_t, name: string): Call {
    let f = opFunctions.get(name);
    if (!f) opFunctions.set(name, (f = opFunction(name)));
    return f;
  },
});

function opFunction(name: string): Call {
  let def: OpDef | undefined;
  return (...args) => {
    def ??= lookupOp(name);
    if (!def) throw new Error(`internal: op ${name} is not in the table`);
    const last = args[args.length - 1];
    const hasAttrs = last !== undefined && typeof last === 'object' && !(last instanceof NDArray);
    if (hasAttrs) args.pop();
    return applyParsed(def, args as Value[], parseAttrs(def, hasAttrs ? last : undefined))[0];
  };
}
