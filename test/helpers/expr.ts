import { expect } from 'vitest';
import { ApiError } from '../../src/errors.js';
import { compileExpression, type CompiledExpr, type ExprLimits } from '../../src/expr/index.js';

export const LIMITS: ExprLimits = { maxLength: 100_000, maxDepth: 64, maxStatements: 10_000 };

export function compile(src: string, limits: Partial<ExprLimits> = {}): CompiledExpr {
  return compileExpression(src, { ...LIMITS, ...limits });
}

/** The statements of `src`, for sources without a result. */
export function stmts(src: string): unknown[] {
  return compile(src).statements;
}

/** Compiles `src` expecting an ApiError; answers it for further checks. */
export function failure(src: string, limits: Partial<ExprLimits> = {}): ApiError {
  try {
    compile(src, limits);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error(`expected ${JSON.stringify(src)} to fail`);
}

/** Expects invalid_expression at line:column with a detail matching `detail`. */
export function expectSyntaxError(src: string, detail: RegExp, line: number, column: number): void {
  const e = failure(src);
  expect(e.code).toBe('invalid_expression');
  expect(e.message).toMatch(detail);
  expect(e.message).toContain(`line ${line}, column ${column}`);
  expect(e.extra).toEqual({ line, column });
}
