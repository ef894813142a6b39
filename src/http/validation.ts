/**
 * Request validation: zod schemas (src/http/schemas), with two additions.
 *
 * - A schema registered with an exact fast check (schemas/fast.ts) is tried with it first; only a
 *   body the check refuses goes through zod, which then produces the error.
 * - A union registered with a variant (schemas/fast.ts) checks a value that plainly means one of
 *   its alternatives against that one alone, so that the error is the alternative's.
 * - A union failure is narrowed to the issue of the alternative the client meant, so that a bad
 *   argument deep in a program is reported at its path (`ops.0.body.3.args.1`) with its own
 *   message, not as "invalid input" at the statement.
 */
import type { FastifySchemaCompiler } from 'fastify';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { fastCheckOf, variantOf } from './schemas/fast.js';

export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = (route) => {
  const whole = zodValidatorCompiler(route);
  const pick = variantOf(route.schema);
  const compiled = new Map<z.ZodType, ReturnType<typeof zodValidatorCompiler>>();
  const slow = !pick ? whole : (data: unknown) => {
    const meant = pick(data);
    if (!meant) return whole(data);
    let v = compiled.get(meant);
    if (!v) compiled.set(meant, (v = zodValidatorCompiler({ ...route, schema: meant })));
    return v(data);
  };
  const fast = fastCheckOf(route.schema);
  if (!fast) return slow;
  return (data: unknown) => (fast(data) ? { value: data } : slow(data));
};

/** The part of a zod issue the narrowing reads (zod issues, and fastify's copies of them). */
export interface IssueLike {
  code: string;
  path: readonly PropertyKey[];
  message: string;
  errors?: IssueLike[][];
}

/**
 * The discriminator of program statements: an alternative that failed on `op` itself (a literal
 * that did not match, a reserved name) is one the client did not mean.
 */
const DISCRIMINATOR = 'op';

function missedKind(branch: IssueLike[]): boolean {
  return branch.some((i) => (i.path.length === 1 && i.path[0] === DISCRIMINATOR)
    // A failed z.custom type test at the root (the .npy alternative of an upload).
    || (i.path.length === 0 && i.code === 'custom'));
}

const hasUnknownKeys = (branch: IssueLike[]) => branch.some((i) => i.path.length === 0 && i.code === 'unrecognized_keys');

/**
 * The most specific issue under `issue`, with its full path: a union's failure is replaced by
 * the failure of the one alternative that fits the value best, when one stands out.
 */
export function specificIssue(issue: IssueLike, prefix: readonly PropertyKey[] = []): { path: PropertyKey[]; message: string } {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors?.length) {
    let branches = issue.errors.filter((b) => b.length > 0 && !missedKind(b));
    // An alternative the value has keys foreign to is a worse fit than one it only lacks keys of.
    if (branches.length > 1 && branches.some((b) => !hasUnknownKeys(b))) branches = branches.filter((b) => !hasUnknownKeys(b));
    // Otherwise prefer the one alternative that got inside the value.
    if (branches.length > 1) branches = branches.filter((b) => b[0].path.length > 0);
    if (branches.length === 1) return specificIssue(branches[0][0], path);
  }
  return { path, message: issue.message };
}
