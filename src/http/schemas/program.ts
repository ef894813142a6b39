/**
 * The program format of POST /ops: a list of statements. JSON clients send it directly; the
 * expression language (src/expr) compiles to the same statements.
 */
import { z } from 'zod';

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** An array reference: a name, or `name.grad` for its gradient buffer. */
export const REF_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.grad)?$/;

export const Name = z.string().regex(NAME_RE, 'a name matches ^[A-Za-z_][A-Za-z0-9_]{0,63}$');
export const Ref = z.string().regex(REF_RE, 'an array reference is a name or name.grad');

/** A JSON number, or one of the strings that stand for the numbers JSON cannot carry. */
export const Num = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);
export type Num = z.infer<typeof Num>;

/** Nested lists of numbers (an inline constant). */
export type NestedNums = Num | NestedNums[];
export const NestedNums: z.ZodType<NestedNums> = z.lazy(() => z.union([Num, z.array(NestedNums)]));

/** An argument of an op: an array reference, a scalar, or an inline constant. */
export const Arg = z.union([Ref, z.number(), z.array(NestedNums)]).describe(
  'an array name (or name.grad), a number, or nested lists of numbers',
);
export type Arg = z.infer<typeof Arg>;

export const ScopeKind = z.enum(['record', 'pause', 'train_mode', 'predict_mode']);
export type ScopeKind = z.infer<typeof ScopeKind>;

/** Statement kinds with their own schema: an op statement may not take these names. */
const RESERVED = new Set(['scope', 'backward', 'attach_grad', 'delete']);

export const OpStatement = z.object({
  op: z.string().min(1).max(64)
    .refine((n) => !RESERVED.has(n), { message: 'this statement is malformed: see the Programs section of the API for scope, backward, attach_grad and delete' })
    .describe('op name (MXNet name or alias), as listed by GET /v1/ops'),
  args: z.array(Arg).max(4096).optional(),
  attrs: z.record(z.string(), z.unknown()).optional(),
  out: z.union([Name, z.array(Name).min(1).max(256)]).optional().describe('name(s) to bind the output(s) to'),
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

export const BackwardStatement: z.ZodType<BackwardStatement> = z.object({
  op: z.literal('backward'),
  args: z.array(Arg).min(1).max(256),
  attrs: z.object({
    head_grads: z.array(z.union([Arg, z.null()])).optional(),
    retain_graph: z.boolean().optional(),
    train_mode: z.boolean().optional(),
  }).strict().optional(),
}).strict() as z.ZodType<BackwardStatement>;

export const AttachGradStatement: z.ZodType<AttachGradStatement> = z.object({
  op: z.literal('attach_grad'),
  args: z.tuple([Name]),
  attrs: z.object({ grad_req: GradReq.optional() }).strict().optional(),
}).strict() as z.ZodType<AttachGradStatement>;

export const DeleteStatement: z.ZodType<DeleteStatement> = z.object({
  op: z.literal('delete'),
  args: z.array(Name).min(1).max(4096).describe('names to unbind (Python del)'),
}).strict() as z.ZodType<DeleteStatement>;

export const ScopeStatement: z.ZodType<ScopeStatement> = z.lazy(() => z.object({
  op: z.literal('scope'),
  kind: ScopeKind,
  train_mode: z.boolean().optional(),
  body: z.array(Statement).max(100000),
}).strict()) as z.ZodType<ScopeStatement>;

export const Statement: z.ZodType<Statement> = z.lazy(() => z.union([
  ScopeStatement, BackwardStatement, AttachGradStatement, DeleteStatement, OpStatement.strict(),
])) as z.ZodType<Statement>;
