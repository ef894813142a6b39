/**
 * The program format of POST /ops: a list of statements. JSON clients send it directly; the
 * expression language (src/expr) compiles to the same statements.
 *
 * The zod schemas here are the wire format (they generate openapi.yaml and schemas/) and produce
 * every validation error. Big programs are checked first by the exact hand-written walk in
 * ./fast.ts, which reads the limits below; test/http/fast-validation.test.ts holds the two to the
 * same verdicts.
 */
import { z } from 'zod';

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** An array reference: a name, or `name.grad` for its gradient buffer. */
export const REF_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.grad)?$/;

/** Statement kinds with their own schema: an op statement may not take these names. */
export const RESERVED_OPS: ReadonlySet<string> = new Set(['scope', 'backward', 'attach_grad', 'delete']);
const NOT_RESERVED_RE = /^(?!(?:scope|backward|attach_grad|delete)$)/;

/** Size limits of the program format, shared with the fast check. */
export const LIMITS = {
  opName: 64,
  args: 4096,
  outs: 256,
  statements: 100000,
  heads: 256,
  deletes: 4096,
} as const;

export const Name = z.string().regex(NAME_RE, 'a name matches ^[A-Za-z_][A-Za-z0-9_]{0,63}$');
export const Ref = z.string().regex(REF_RE, 'an array reference is a name or name.grad');

/** A JSON number, or one of the strings that stand for the numbers JSON cannot carry. */
export const Num = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])], {
  error: 'expected a number or "NaN", "Infinity", "-Infinity"',
});
export type Num = z.infer<typeof Num>;

/** Nested lists of numbers (an inline constant). */
export type NestedNums = Num | NestedNums[];
export const NestedNums: z.ZodType<NestedNums> = z.lazy(() => z.union([Num, z.array(NestedNums)], {
  error: 'expected a number ("NaN", "Infinity", "-Infinity" included) or a list of them',
}));

/** An argument of an op: an array reference, a scalar, or an inline constant. */
export const Arg = z.union([Ref, z.number(), z.array(NestedNums)], {
  error: 'an argument is an array name (or name.grad), a number, or nested lists of numbers',
}).describe('an array name (or name.grad), a number, or nested lists of numbers');
export type Arg = z.infer<typeof Arg>;

export const ScopeKind = z.enum(['record', 'pause', 'train_mode', 'predict_mode']);
export type ScopeKind = z.infer<typeof ScopeKind>;

export const OpStatement = z.object({
  op: z.string().min(1).max(LIMITS.opName)
    // Aborts, so that a malformed scope/backward/... statement is reported by its own schema.
    .regex(NOT_RESERVED_RE, { message: 'scope, backward, attach_grad and delete are statements of their own: see the Programs section of the API', abort: true })
    .describe('op name (MXNet name or alias), as listed by GET /v1/ops'),
  args: z.array(Arg).max(LIMITS.args).optional(),
  attrs: z.record(z.string(), z.unknown()).optional(),
  out: z.union([Name, z.array(Name).min(1).max(LIMITS.outs)], { error: '`out` is a name or a list of names' })
    .optional().describe('name(s) to bind the output(s) to'),
  into: Ref.optional().describe('write the result into this existing array in place'),
});
export type OpStatement = z.infer<typeof OpStatement>;

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
  attrs?: { grad_req?: 'write' | 'add' | 'null' };
}
export interface DeleteStatement {
  op: 'delete';
  args: string[];
}
export type Statement = OpStatement | ScopeStatement | BackwardStatement | AttachGradStatement | DeleteStatement;

export const GradReq = z.enum(['write', 'add', 'null']);

export const BackwardStatement = z.object({
  op: z.literal('backward'),
  args: z.array(Arg).min(1).max(LIMITS.heads),
  attrs: z.object({
    head_grads: z.array(z.union([Arg, z.null()])).optional(),
    retain_graph: z.boolean().optional(),
    train_mode: z.boolean().optional(),
  }).strict().optional(),
}).strict();

export const AttachGradStatement = z.object({
  op: z.literal('attach_grad'),
  args: z.tuple([Name]),
  attrs: z.object({ grad_req: GradReq.optional() }).strict().optional(),
}).strict();

export const DeleteStatement = z.object({
  op: z.literal('delete'),
  args: z.array(Name).min(1).max(LIMITS.deletes).describe('names to unbind (Python del)'),
}).strict();

export const ScopeStatement = z.object({
  op: z.literal('scope'),
  kind: ScopeKind,
  train_mode: z.boolean().optional(),
  // A getter: the body refers back to Statement (zod's form of a recursive object).
  get body(): z.ZodArray<z.ZodType<Statement>> {
    return z.array(Statement).max(LIMITS.statements);
  },
}).strict();

/**
 * A statement: an op, tried first since nearly every statement is one, or one of the statement
 * kinds, picked by `op` (a discriminated union, so a malformed scope is reported by the scope
 * schema instead of by every alternative).
 */
export const Statement: z.ZodType<Statement> = z.union([
  OpStatement.strict(),
  z.discriminatedUnion('op', [ScopeStatement, BackwardStatement, AttachGradStatement, DeleteStatement]),
], { error: 'a statement is an op {op, args?, attrs?, out?, into?} or a scope, backward, attach_grad or delete statement' }) as z.ZodType<Statement>;
