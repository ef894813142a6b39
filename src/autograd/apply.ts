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
import { Node, type Edge, type Tape } from './tape.js';
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
  if (empty && defaults.has(def)) return defaults.get(def);
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
    const edges = inputs.map(edgeOf);
    if (edges.some((x) => x !== null)) record(e, def, attrs, inputs, edges, outs);
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
  const x = inputs.map((v, i) => (typeof v === 'number' || si === true || (Array.isArray(si) && si.includes(i)) ? v : undefined));
  const y = def.save.outputs ? [...outs] : [];
  const node = new Node(
    tape, def, attrs, edges,
    inputs.map((v) => (v instanceof NDArray ? v.id : null)),
    inputs.map((v) => (v instanceof NDArray ? v.shape : null)),
    inputs.map((v) => (v instanceof NDArray ? v.dtype : null)),
    x, y,
    outs.map((o) => ({ id: o.id, shape: o.shape, dtype: o.dtype })),
  );
  outs.forEach((o, i) => { o.node = node; o.outputIndex = i; });
  tape.nodes.push(node);
}

type Attrs = Record<string, unknown>;
type Call = (...args: (Value | Attrs)[]) => NDArray;

/**
 * The op table as functions, for gradient rules: `F.multiply(g, F.cos(x))`,
 * `F.sum(g, { axis: [0], keepdims: true })`. A trailing plain object is the attrs.
 * Names resolve against the table at call time, so there is no second list of ops.
 */
export const F: Record<string, Call> = new Proxy({} as Record<string, Call>, {
  get(_t, name: string): Call {
    return (...args) => {
      const last = args[args.length - 1];
      const hasAttrs = last !== undefined && typeof last === 'object' && !(last instanceof NDArray);
      const inputs = (hasAttrs ? args.slice(0, -1) : args) as Value[];
      return apply(name, inputs, hasAttrs ? last : {})[0];
    };
  },
});
