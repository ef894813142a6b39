/**
 * The wire schemas of the program format (src/program/format.ts): they generate openapi.yaml and
 * schemas/, and produce every validation error. Each is checked against the format's type at
 * compile time. Big programs are checked first by the exact hand-written walk in ./fast.ts;
 * test/http/fast-validation.test.ts holds the two to the same verdicts.
 */
import { z } from 'zod';
import * as format from '../../program/format.js';
import { GRAD_REQS, LIMITS, NAME_RE, NAME_RULE, REF_RE, SCOPE_KINDS } from '../../program/format.js';

const NOT_RESERVED_RE = new RegExp(`^(?!(?:${format.RESERVED_OPS.join('|')})$)`);

export const Name = z.string().regex(NAME_RE, NAME_RULE);
export const Ref = z.string().regex(REF_RE, 'an array reference is a name or name.grad');

export const Num = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])], {
  error: 'expected a number or "NaN", "Infinity", "-Infinity"',
}) satisfies z.ZodType<format.Num>;

export const NestedNums: z.ZodType<format.NestedNums> = z.lazy(() => z.union([Num, z.array(NestedNums)], {
  error: 'expected a number ("NaN", "Infinity", "-Infinity" included) or a list of them',
}));

export const Arg = z.union([Ref, z.number(), z.array(NestedNums)], {
  error: 'an argument is an array name (or name.grad), a number, or nested lists of numbers',
}).describe('an array name (or name.grad), a number, or nested lists of numbers') satisfies z.ZodType<format.Arg>;

export const ScopeKind = z.enum(SCOPE_KINDS);
export const GradReq = z.enum(GRAD_REQS);

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
}) satisfies z.ZodType<format.OpStatement>;

export const BackwardStatement = z.object({
  op: z.literal('backward'),
  args: z.array(Arg).min(1).max(LIMITS.heads),
  attrs: z.object({
    head_grads: z.array(z.union([Arg, z.null()])).optional(),
    retain_graph: z.boolean().optional(),
    train_mode: z.boolean().optional(),
  }).strict().optional(),
}).strict() satisfies z.ZodType<format.BackwardStatement>;

export const AttachGradStatement = z.object({
  op: z.literal('attach_grad'),
  args: z.tuple([Name]),
  attrs: z.object({ grad_req: GradReq.optional() }).strict().optional(),
}).strict() satisfies z.ZodType<format.AttachGradStatement>;

export const SetGradStateStatement = z.object({
  op: z.literal('set_grad_state'),
  args: z.tuple([Name]),
  attrs: z.object({ fresh: z.boolean().describe('whether the gradient counts as written by the last backward (MXNet _fresh_grad)') }).strict(),
}).strict() satisfies z.ZodType<format.SetGradStateStatement>;

export const DeleteStatement = z.object({
  op: z.literal('delete'),
  args: z.array(Name).min(1).max(LIMITS.deletes).describe('names to unbind (Python del)'),
}).strict() satisfies z.ZodType<format.DeleteStatement>;

export const ScopeStatement = z.object({
  op: z.literal('scope'),
  kind: ScopeKind,
  train_mode: z.boolean().optional(),
  // A getter: the body refers back to Statement (zod's form of a recursive object).
  get body(): z.ZodArray<z.ZodType<format.Statement>> {
    return z.array(Statement).max(LIMITS.statements);
  },
}).strict();

/**
 * A statement: an op, tried first since nearly every statement is one, or one of the statement
 * kinds, picked by `op` (a discriminated union, so a malformed scope is reported by the scope
 * schema instead of by every alternative).
 */
export const Statement: z.ZodType<format.Statement> = z.union([
  OpStatement.strict(),
  z.discriminatedUnion('op', [ScopeStatement, BackwardStatement, AttachGradStatement, SetGradStateStatement, DeleteStatement]),
], { error: 'a statement is an op {op, args?, attrs?, out?, into?} or a scope, backward, attach_grad, set_grad_state or delete statement' }) as z.ZodType<format.Statement>;
