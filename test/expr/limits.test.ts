import { describe, expect, it } from 'vitest';
import { compile, failure } from '../helpers/expr.js';

describe('limits', () => {
  it('a source longer than maxLength is quota_exceeded with limit expr_length', () => {
    const e = failure('y = x * 2', { maxLength: 5 });
    expect(e.code).toBe('quota_exceeded');
    expect(e.message).toBe('expression is 9 characters; the limit is 5');
    expect(e.extra).toEqual({ limit: 'expr_length', value: 9 });
  });

  it('nesting deeper than maxDepth is quota_exceeded with limit expr_depth', () => {
    expect(compile('y = ((x))', { maxDepth: 2 }).statements).toHaveLength(1);
    const e = failure('y = (((x)))', { maxDepth: 2 });
    expect(e.code).toBe('quota_exceeded');
    expect(e.extra).toMatchObject({ limit: 'expr_depth', line: 1, column: 7 });
  });

  it('calls, brackets, unary operators, ** and with-blocks all count as nesting', () => {
    for (const src of ['y = f(g(h(x)))', 'y = x[[[1]]]', 'y = ---x', 'y = x**x**x**x', 'with record():\n with pause():\n  with record():\n   y = x']) {
      expect(failure(src, { maxDepth: 2 }).extra).toMatchObject({ limit: 'expr_depth' });
    }
  });

  it('100000 nested parentheses, closed or not, stop early without overflowing the stack', () => {
    const n = 100_000;
    for (const src of ['('.repeat(n) + 'x' + ')'.repeat(n), '('.repeat(n), 'y = ' + 'f('.repeat(n) + 'x' + ')'.repeat(n), '-'.repeat(n) + 'x']) {
      const e = failure(src, { maxLength: 1_000_000 });
      expect(e.code).toBe('quota_exceeded');
      expect(e.extra).toMatchObject({ limit: 'expr_depth' });
    }
  });

  it('a maxDepth too large for the stack is clamped', () => {
    const n = 100_000;
    const e = failure('y = ' + '('.repeat(n) + 'x' + ')'.repeat(n), { maxLength: 1_000_000, maxDepth: 1_000_000 });
    expect(e.extra).toMatchObject({ limit: 'expr_depth' });
  });

  it('long flat chains are not nesting and compile without recursion', () => {
    const out = compile('y = ' + Array(20_000).fill('x').join(' + '), { maxLength: 1_000_000, maxStatements: 100_000 });
    expect(out.statements).toHaveLength(19_999);
    expect(compile('x' + '.sum()'.repeat(5_000), { maxStatements: 100_000 }).result).toBe('%5000');
  });

  it('more than maxStatements compiled statements is quota_exceeded with limit statements', () => {
    expect(compile('a = x * 2; b = a * 2', { maxStatements: 2 }).statements).toHaveLength(2);
    const e = failure('a = x * 2; b = a * 2; c = b * 2', { maxStatements: 2 });
    expect(e.code).toBe('quota_exceeded');
    expect(e.extra).toEqual({ limit: 'statements', value: 3 });
  });

  it('statements inside blocks and the blocks themselves count', () => {
    expect(failure('with autograd.record():\n    a = x * 2', { maxStatements: 1 }).extra).toMatchObject({ limit: 'statements' });
  });
});
