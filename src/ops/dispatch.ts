/**
 * Running an op of the table: attrs parsed against its schema, forward through its kernels, and
 * a hand-off to whoever records (the autograd layer, through the environment). Every op runs
 * through here, whether it comes from a client's program or from a gradient rule, which is why
 * gradients of gradients need nothing special.
 */
import { NDArray } from '../engine/ndarray.js';
import type { Draws, Kernels } from '../engine/kernels.js';
import { DTYPE_INFO, type DType, type DTypeKind } from '../engine/backend.js';
import { lookupOp, type DTypeRule, type OpContext, type OpDef, type Value } from './registry.js';
import type { OpName } from './names.js';
import { fail } from '../errors.js';
import type { StatementSite } from '../program/site.js';
import { checkForward, checkGradients, type GradientStep, type NodeLike } from './anomaly.js';

/** What an op needs from the session it runs in. */
export interface OpEnv {
  k: Kernels;
  defaultDtype: DType;
  random: Draws;
  /** MXNet's is_training. */
  readonly isTraining: boolean;
  /** MXNet's is_recording: when true, `record` sees every differentiable op applied. */
  readonly isRecording: boolean;
  /** Anomaly mode (src/ops/anomaly.ts): every op's outputs are checked for NaN and Inf. */
  readonly detectAnomaly: boolean;
  /** The program statement running, for errors that point at it. */
  readonly site: StatementSite | null;
  /**
   * Records the op on a tape if autograd's rule says so (some input is a variable or has
   * history); answers the node, or null.
   */
  record(def: OpDef, attrs: unknown, inputs: Value[], outputs: NDArray[]): NodeLike | null;
  /** The bytes of a binary part sent with the running program; throws naming the part if none. */
  upload(part: string): Uint8Array;
}

let current: OpEnv | null = null;

/** Runs fn with env as the environment of every op applied inside it. */
export function runWith<T>(env: OpEnv, fn: () => T): T {
  const prev = current;
  current = env;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

function env(): OpEnv {
  if (!current) throw new Error('an op ran outside of a session environment');
  return current;
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

/**
 * Parsed attrs by their text, per op: a training loop sends the same few attrs every step
 * (`{"axis":1,"keepdims":true}`), and a zod parse of them cost several times the text.
 */
const parsedByText = new WeakMap<OpDef, Map<string, unknown>>();
const MAX_TEXT = 256;
const MAX_TEXTS_PER_OP = 512;

/**
 * The attrs as a key that only equal attrs share, or null when they hold anything but plain
 * objects, arrays, strings, booleans, null and finite numbers other than -0 (JSON would write
 * NaN, Infinity and -0 as other values), or would make a long key.
 */
function textOf(v: unknown, depth = 0): string | null {
  switch (typeof v) {
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0) ? String(v) : null;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return v.length <= MAX_TEXT ? JSON.stringify(v) : null;
    case 'object': {
      if (v === null) return 'null';
      if (depth > 4) return null;
      let out: string;
      if (Array.isArray(v)) {
        out = '[';
        for (let i = 0; i < v.length; i++) {
          const t = textOf(v[i], depth + 1);
          if (t === null) return null;
          out += i ? `,${t}` : t;
          if (out.length > MAX_TEXT) return null;
        }
        return `${out}]`;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) return null;
      out = '{';
      let first = true;
      for (const k in v) {
        const t = textOf((v as Record<string, unknown>)[k], depth + 1);
        if (t === null) return null;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${t}`;
        first = false;
        if (out.length > MAX_TEXT) return null;
      }
      return `${out}}`;
    }
    default:
      return null;
  }
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Parses attrs against the op's schema; a failure is a 422 naming the op and the attribute. */
export function parseAttrs(def: OpDef, attrs: unknown): unknown {
  const empty = isEmpty(attrs);
  // Parsed attrs are objects, so undefined means "not parsed yet".
  const known = empty ? defaults.get(def) : undefined;
  if (known !== undefined) return known;
  const text = empty ? null : textOf(attrs);
  let byText: Map<string, unknown> | undefined;
  if (text !== null) {
    byText = parsedByText.get(def);
    const hit = byText?.get(text);
    if (hit !== undefined) return hit;
  }
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
  else if (text !== null && r.data !== undefined) {
    if (!byText) parsedByText.set(def, (byText = new Map()));
    // A program generating endless distinct attrs keeps the op's cache from growing without end.
    if (byText.size >= MAX_TEXTS_PER_OP) byText.clear();
    // Shared by every later call with that text: frozen, so that a kernel or rule that wrote
    // into its attrs would fail loudly instead of changing another call's.
    byText.set(text, deepFreeze(r.data));
  }
  return r.data;
}

const TAKES: Record<DTypeRule, Record<DTypeKind, boolean>> = {
  float: { float: true, int: false, storage: false },
  numeric: { float: true, int: true, storage: false },
  any: { float: true, int: true, storage: true },
};

/** Whether input i of the op takes arrays of dtype d (its `dtypes` rule; the last rule repeats). */
export function takesDtype(def: OpDef, i: number, d: DType): boolean {
  const rules = def.dtypes ?? 'float';
  const rule = typeof rules === 'string' ? rules : rules[Math.min(i, rules.length - 1)];
  return TAKES[rule][DTYPE_INFO[d].kind];
}

/** The op's `dtypes` rule against its array inputs: a 422 naming the first one it does not take. */
function checkDtypes(def: OpDef, inputs: Value[]): void {
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i];
    if (!(x instanceof NDArray)) continue;
    if (takesDtype(def, i, x.dtype)) continue;
    const arg = def.inputs[Math.min(i, def.inputs.length - 1)] ?? `input ${i}`;
    const why = x.dtype === 'float16'
      ? 'float16 is storage only: convert with astype(\'float32\') to compute'
      : `\`${def.name}\` computes on float32 and float64 only: convert with astype('float32')`;
    throw fail('dtype_mismatch', `\`${arg}\` of \`${def.name}\` is ${x.dtype}; ${why}`, { op: def.name, arg });
  }
}

/** Applies an op to values with already-parsed attrs; returns its outputs. */
export function applyParsed(def: OpDef, inputs: Value[], attrs: unknown): NDArray[] {
  const e = env();
  checkDtypes(def, inputs);
  if (e.detectAnomaly) return applyChecked(e, def, inputs, attrs);
  const outs = forward(e, def, inputs, attrs);
  if (recordable(e, def, outs)) e.record(def, attrs, inputs, outs);
  return outs;
}

function forward(e: OpEnv, def: OpDef, inputs: Value[], attrs: unknown): NDArray[] {
  const ctx: OpContext = { k: e.k, isTraining: e.isTraining, defaultDtype: e.defaultDtype, random: e.random, upload: e.upload, op: def.name };
  const res = def.forward(ctx, inputs as NDArray[], attrs);
  return Array.isArray(res) ? res : [res];
}

/**
 * Only float outputs carry gradients: an integer (or float16) result is a constant to the tape,
 * so nothing is ever differentiated through a label, an index or a comparison's integer mask.
 */
function recordable(e: OpEnv, def: OpDef, outs: NDArray[]): boolean {
  return def.vjp !== undefined && e.isRecording && outs.some((o) => DTYPE_INFO[o.dtype].kind === 'float');
}

/**
 * Ops running inside another op's forward, or inside a backward walk. Anomaly mode checks only
 * the outermost op, the one a statement called, whose output the program sees; a backward walk
 * checks what each node's gradient rule sends on instead (checkGradient).
 */
let nesting = 0;

/** applyParsed in anomaly mode: the outermost op's outputs are checked once it is recorded. */
function applyChecked(e: OpEnv, def: OpDef, inputs: Value[], attrs: unknown): NDArray[] {
  const outer = nesting === 0;
  let outs: NDArray[];
  nesting++;
  try {
    outs = forward(e, def, inputs, attrs);
  } finally {
    nesting--;
  }
  const node = recordable(e, def, outs) ? e.record(def, attrs, inputs, outs) : null;
  if (outer) checkForward(e.k, def, inputs, outs, e.site, node);
  return outs;
}

/** Runs a backward walk: the ops of its gradient rules are not checked one by one (see nesting). */
export function duringBackward<T>(fn: () => T): T {
  nesting++;
  try {
    return fn();
  } finally {
    nesting--;
  }
}

/** In anomaly mode, a 422 when a gradient a backward step sends on holds NaN or Inf. */
export function checkGradient(step: GradientStep): void {
  const e = env();
  if (e.detectAnomaly) checkGradients(e.k, step, e.site);
}

/** Whether anomaly mode is on (a backward walk builds its steps for checkGradient only then). */
export function detectingAnomalies(): boolean {
  return env().detectAnomaly;
}

export function apply(op: string | OpDef, inputs: Value[], attrs?: unknown): NDArray[] {
  const def = typeof op === 'string' ? lookupOp(op) : op;
  if (!def) throw new Error(`internal: op ${String(op)} is not in the table`);
  return applyParsed(def, inputs, parseAttrs(def, attrs));
}

type Attrs = Record<string, unknown>;
type Call = (...args: (Value | Attrs)[]) => NDArray;

/**
 * The op table as functions, for gradient rules: `F.multiply(g, F.cos(x))`,
 * `F.sum(g, { axis: [0], keepdims: true })`. A trailing plain object is the attrs; the first
 * output is the value. Keyed by the table's names (./names.ts), so a misspelt op does not
 * compile; each name's function is made once and kept, since rules call them on every backward
 * step.
 */
const opFunctions = new Map<string, Call>();
export const F: Readonly<Record<OpName, Call>> = new Proxy({} as Record<OpName, Call>, {
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
