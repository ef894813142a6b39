/**
 * The program format: what POST /ops runs, what the expression language (src/expr) compiles to,
 * and what every other endpoint builds for the one runner (src/session/program.ts).
 *
 * Plain types and limits, no validation: the zod wire schemas (src/http/schemas/program.ts) are
 * checked against these types at compile time and produce every validation error.
 */
import type { DType } from '../engine/backend.js';

/** A name a client binds: `x`, `_w1`. */
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** An array reference: a name, or `name.grad` for its gradient buffer. */
export const REF_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.grad)?$/;
/** What NAME_RE accepts, in words (error messages). */
export const NAME_RULE = 'a name matches ^[A-Za-z_][A-Za-z0-9_]{0,63}$';

/** Size limits of the format, shared by the zod schemas and their fast check. */
export const LIMITS = {
  opName: 64,
  args: 4096,
  outs: 256,
  statements: 100000,
  heads: 256,
  deletes: 4096,
} as const;

/** A JSON number, or one of the strings that stand for the numbers JSON cannot carry. */
export type Num = number | 'NaN' | 'Infinity' | '-Infinity';
/** Nested lists of numbers (an inline constant). */
export type NestedNums = Num | NestedNums[];
/** An argument of an op: an array reference, a scalar, or an inline constant. */
export type Arg = string | number | NestedNums[];

export const SCOPE_KINDS = ['record', 'pause', 'train_mode', 'predict_mode', 'detect_anomaly'] as const;
export type ScopeKind = (typeof SCOPE_KINDS)[number];

export const GRAD_REQS = ['write', 'add', 'null'] as const;
export type GradReq = (typeof GRAD_REQS)[number];

/** Statement kinds with their own shape: an op statement may not take these names. */
export const RESERVED_OPS: readonly string[] = ['scope', 'backward', 'attach_grad', 'set_grad_state', 'delete'];

export interface OpStatement {
  /** An op of the table, by its MXNet name or an alias. */
  op: string;
  args?: Arg[];
  attrs?: Record<string, unknown>;
  /** Name(s) to bind the output(s) to; `%`-names are temporaries of the program. */
  out?: string | string[];
  /** An existing array (or `name.grad`) the result is written into in place. */
  into?: string;
}
export interface ScopeStatement {
  op: 'scope';
  kind: ScopeKind;
  train_mode?: boolean;
  body: Statement[];
}
export interface BackwardStatement {
  op: 'backward';
  args: Arg[];
  attrs?: { head_grads?: (Arg | null)[]; retain_graph?: boolean; train_mode?: boolean };
}
export interface AttachGradStatement {
  op: 'attach_grad';
  args: [string];
  attrs?: { grad_req?: GradReq };
}
/** MXNet's `x._fresh_grad = False`: marks whether a variable's gradient is the last backward's. */
export interface SetGradStateStatement {
  op: 'set_grad_state';
  args: [string];
  attrs: { fresh: boolean };
}
export interface DeleteStatement {
  op: 'delete';
  args: string[];
}
/** A statement a client may send. */
export type Statement = OpStatement | ScopeStatement | BackwardStatement | AttachGradStatement | SetGradStateStatement | DeleteStatement;

/**
 * Statements only endpoints build, never accepted from the wire: they give every verb of the API
 * one implementation, the runner's.
 */
export interface GradStatement {
  op: 'grad';
  /** The heads. */
  args: Arg[];
  attrs: {
    variables: string[];
    head_grads?: (Arg | null)[];
    create_graph?: boolean;
    retain_graph?: boolean;
    train_mode?: boolean;
  };
  /** Names to bind the gradients to, one per variable. */
  out?: string[];
}
/** Opens a scope that outlives the request (POST /autograd/record, ...). */
export interface EnterStatement {
  op: 'enter';
  kind: ScopeKind;
  train_mode?: boolean;
}
/** Closes the innermost open scope (POST /autograd/exit). */
export interface ExitStatement {
  op: 'exit';
}
/** Binds a name to data the endpoint decoded (an upload): values, or raw little-endian bytes. */
export interface BindStatement {
  op: 'bind';
  out: string;
  dtype: DType;
  shape: number[];
  values?: ArrayLike<number>;
  bytes?: Uint8Array;
}
export type InternalStatement = GradStatement | EnterStatement | ExitStatement | BindStatement;

/** What the runner executes. */
export type AnyStatement = Statement | InternalStatement;

