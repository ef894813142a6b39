/**
 * Exact hand-written checks for the bodies that can be big (programs of thousands of statements,
 * arrays of millions of numbers), so that a valid body costs one plain walk instead of zod's
 * per-element union machinery.
 *
 * A check answers true only when its zod schema would accept the value unchanged (none of these
 * schemas transforms or defaults anything, so the parsed value is the value itself). On false
 * the request goes through zod, which stays the only source of error messages: a check never has
 * to explain a refusal, only to agree with zod on what it accepts. test/http/fast-validation.test.ts
 * holds each check to its schema's verdict on generated valid and broken bodies.
 */
import type { z } from 'zod';
import { LIMITS, NAME_RE, REF_RE } from '../../program/format.js';
import { DTYPES } from '../../engine/backend.js';

export type FastCheck = (value: unknown) => boolean;

const checks = new WeakMap<z.ZodType, FastCheck>();

/** Registers `check` as the exact fast path of `schema` (see src/http/validation.ts). */
export function fastChecked<T extends z.ZodType>(schema: T, check: FastCheck): T {
  checks.set(schema, check);
  return schema;
}

export function fastCheckOf(schema: unknown): FastCheck | undefined {
  return typeof schema === 'object' && schema !== null ? checks.get(schema as z.ZodType) : undefined;
}

/** Picks the alternative of a union a value plainly means, or undefined to leave it to the union. */
export type Variant = (value: unknown) => z.ZodType | undefined;

const variants = new WeakMap<z.ZodType, Variant>();

/**
 * Registers how to tell which alternative of `schema` (a union) a refused value meant, so that its
 * error is that alternative's: zod prefers an alternative refused only for keys foreign to it, and
 * would report an OIP tensor's bad `datatype` as a key foreign to our array bodies.
 */
export function withVariant<T extends z.ZodType>(schema: T, pick: Variant): T {
  variants.set(schema, pick);
  return schema;
}

export function variantOf(schema: unknown): Variant | undefined {
  return typeof schema === 'object' && schema !== null ? variants.get(schema as z.ZodType) : undefined;
}

// Deeper values are left to zod (the JSON body parser refuses them anyway).
const MAX_DEPTH = 64;

/** What zod's z.object accepts as an object (JSON objects are all plain, as z.record wants). */
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
// z.record refuses an object whose prototype is an array (only code, never JSON, builds one).
const isRecord = (v: unknown): boolean => isObject(v) && !(v instanceof Array);
const isName = (v: unknown): boolean => typeof v === 'string' && NAME_RE.test(v);
const isRef = (v: unknown): boolean => typeof v === 'string' && REF_RE.test(v);
// z.number() refuses NaN and the infinities (JSON.parse gives Infinity for 1e999).
const isNumber = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const isOptBool = (v: unknown): boolean => v === undefined || typeof v === 'boolean';
const isNum = (v: unknown): boolean => isNumber(v) || v === 'NaN' || v === 'Infinity' || v === '-Infinity';

function isNested(v: unknown, depth: number): boolean {
  if (!Array.isArray(v)) return isNum(v);
  if (depth > MAX_DEPTH) return false;
  for (let i = 0; i < v.length; i++) if (!isNested(v[i], depth + 1)) return false;
  return true;
}

function isArg(v: unknown): boolean {
  if (typeof v === 'string') return REF_RE.test(v);
  if (Array.isArray(v)) return isNested(v, 1);
  return isNumber(v);
}

function everyOf(v: unknown, min: number, max: number, item: (x: unknown) => boolean): boolean {
  if (!Array.isArray(v) || v.length < min || v.length > max) return false;
  for (let i = 0; i < v.length; i++) if (!item(v[i])) return false;
  return true;
}

/** True when every own enumerable key of o is one of keys (z.object(...).strict()). */
function onlyKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  for (const k in o) if (!keys.includes(k)) return false;
  return true;
}

const OP_KEYS = ['op', 'args', 'attrs', 'out', 'into'];
const SCOPE_KEYS = ['op', 'kind', 'train_mode', 'body'];
const BACKWARD_KEYS = ['op', 'args', 'attrs'];
const BACKWARD_ATTRS = ['head_grads', 'retain_graph', 'train_mode'];
const ATTACH_KEYS = ['op', 'args', 'attrs'];
const SET_GRAD_STATE_KEYS = ['op', 'args', 'attrs'];
const DELETE_KEYS = ['op', 'args'];
const SCOPE_KINDS = ['record', 'pause', 'train_mode', 'predict_mode', 'detect_anomaly'];
const GRAD_REQS = ['write', 'add', 'null'];

const isHeadGrad = (v: unknown): boolean => v === null || isArg(v);

/** program.ts's Statement: dispatched on `op`, as its discriminated union does. */
function isStatement(st: unknown, depth: number): boolean {
  if (!isObject(st) || typeof st.op !== 'string') return false;
  switch (st.op) {
    case 'scope':
      return onlyKeys(st, SCOPE_KEYS) && typeof st.kind === 'string' && SCOPE_KINDS.includes(st.kind)
        && isOptBool(st.train_mode) && isProgram(st.body, depth + 1);
    case 'backward': {
      if (!onlyKeys(st, BACKWARD_KEYS) || !everyOf(st.args, 1, LIMITS.heads, isArg)) return false;
      const a = st.attrs;
      if (a === undefined) return true;
      return isObject(a) && onlyKeys(a, BACKWARD_ATTRS) && isOptBool(a.retain_graph) && isOptBool(a.train_mode)
        && (a.head_grads === undefined || everyOf(a.head_grads, 0, Infinity, isHeadGrad));
    }
    case 'attach_grad': {
      if (!onlyKeys(st, ATTACH_KEYS) || !everyOf(st.args, 1, 1, isName)) return false;
      const a = st.attrs;
      if (a === undefined) return true;
      return isObject(a) && onlyKeys(a, ['grad_req']) && (a.grad_req === undefined || (typeof a.grad_req === 'string' && GRAD_REQS.includes(a.grad_req)));
    }
    case 'set_grad_state': {
      const a = st.attrs;
      return onlyKeys(st, SET_GRAD_STATE_KEYS) && everyOf(st.args, 1, 1, isName)
        && isObject(a) && onlyKeys(a, ['fresh']) && typeof a.fresh === 'boolean';
    }
    case 'delete':
      return onlyKeys(st, DELETE_KEYS) && everyOf(st.args, 1, LIMITS.deletes, isName);
    default:
      return onlyKeys(st, OP_KEYS) && st.op.length >= 1 && st.op.length <= LIMITS.opName
        && (st.args === undefined || everyOf(st.args, 0, LIMITS.args, isArg))
        && (st.attrs === undefined || isRecord(st.attrs))
        && (st.out === undefined || isName(st.out) || everyOf(st.out, 1, LIMITS.outs, isName))
        && (st.into === undefined || isRef(st.into));
  }
}

function isProgram(v: unknown, depth: number): boolean {
  if (!Array.isArray(v) || v.length > LIMITS.statements || depth > MAX_DEPTH) return false;
  for (let i = 0; i < v.length; i++) if (!isStatement(v[i], depth)) return false;
  return true;
}

const OPS_KEYS = ['ops', 'expr', 'record', 'train_mode', 'detect_anomaly', 'fetch', 'format'];
const FORMATS = ['nested', 'flat', 'base64'];

/** api.ts's OpsBody. */
export function isOpsBody(b: unknown): boolean {
  return isObject(b) && onlyKeys(b, OPS_KEYS)
    && (b.ops === undefined || isProgram(b.ops, 1))
    && (b.expr === undefined || typeof b.expr === 'string')
    && isOptBool(b.record) && isOptBool(b.train_mode) && isOptBool(b.detect_anomaly)
    && (b.fetch === undefined || typeof b.fetch === 'boolean' || everyOf(b.fetch, 0, Infinity, isRef))
    && (b.format === undefined || (typeof b.format === 'string' && FORMATS.includes(b.format)));
}

const isDim = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 2 ** 31 - 1;
const isShape = (v: unknown): boolean => everyOf(v, 0, 32, isDim);
const isOptDType = (v: unknown): boolean => v === undefined || (typeof v === 'string' && (DTYPES as readonly string[]).includes(v));
const LIST_KEYS = ['name', 'data', 'shape', 'dtype'];
const BASE64_KEYS = ['name', 'data_base64', 'shape', 'dtype'];

/**
 * api.ts's ArrayBody (nameRequired) and PutArrayBody. `data` is checked only as deep as its
 * schema checks it (a number, or any list: the elements are read, and refused with their
 * index, by the codec), so a million numbers cost nothing here.
 */
export function isArrayBody(b: unknown, nameRequired: boolean): boolean {
  if (!isObject(b) || !(b.name === undefined ? !nameRequired : isName(b.name)) || !isOptDType(b.dtype)) return false;
  if (b.data_base64 === undefined) {
    return onlyKeys(b, LIST_KEYS) && (Array.isArray(b.data) || isNum(b.data)) && (b.shape === undefined || isShape(b.shape));
  }
  return onlyKeys(b, BASE64_KEYS) && typeof b.data_base64 === 'string' && isShape(b.shape);
}
