// The grammar of the interpreted statements, and which programs need the interpreter at all.
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/errors.js';
import { needsInterpreter, parseProgram } from '../../src/expr/index.js';
import type { Stmt } from '../../src/expr/parser.js';
import { LIMITS } from '../helpers/expr.js';

const parse = (src: string): Stmt[] => parseProgram(src, LIMITS);
const needs = (src: string, defined: string[] = []) => needsInterpreter(parse(src), (n) => defined.includes(n));

function syntaxError(src: string): ApiError {
  try {
    parse(src);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).code).toBe('invalid_expression');
    return e as ApiError;
  }
  throw new Error(`expected ${JSON.stringify(src)} to fail`);
}

describe('statements of the interpreter', () => {
  it('def with defaults, and the lines it spans (for listings)', () => {
    const [d] = parse('def f(a, b=2,):\n    c = a * b\n\n    return c\nx = 1');
    expect(d).toMatchObject({ k: 'def', name: 'f', pos: { line: 1 }, lastLine: 4 });
    expect((d as Extract<Stmt, { k: 'def' }>).params.map((p) => [p.name, !!p.default])).toEqual([['a', false], ['b', true]]);
  });

  it('if/elif/else chains, while, for with tuple targets, one-line bodies', () => {
    const [i, w, f] = parse('if a:\n    x = 1\nelif b: x = 2\nelse:\n    pass\nwhile n < 3: n += 1\nfor k, v in zip(a, b):\n    break');
    expect(i).toMatchObject({ k: 'if', branches: [{ pos: { line: 1 } }, { pos: { line: 3 } }], orelse: [{ k: 'pass' }] });
    expect(w).toMatchObject({ k: 'while', body: [{ k: 'aug' }] });
    expect(f).toMatchObject({ k: 'for', target: { k: 'seq', items: [{ id: 'k' }, { id: 'v' }] }, body: [{ k: 'break' }] });
  });

  it('boolean operators bind looser than comparisons, not tighter than and; the conditional expression loosest', () => {
    const [s] = parse('y = not a < b and c or d if e else f');
    const v = (s as Extract<Stmt, { k: 'assign' }>).value;
    expect(v).toMatchObject({
      k: 'ifexp',
      body: { k: 'boolop', op: 'or', values: [{ k: 'boolop', op: 'and', values: [{ k: 'not', operand: { k: 'binary' } }, { k: 'name', id: 'c' }] }, { k: 'name', id: 'd' }] },
      test: { k: 'name', id: 'e' },
      orelse: { k: 'name', id: 'f' },
    });
  });

  it('class with bases, return without a value, assert with a message', () => {
    const [c] = parse('class S(autograd.Function):\n    def forward(self, x):\n        return\n    def backward(self, d):\n        assert d, "no grad"\n        return d');
    expect(c).toMatchObject({ k: 'class', name: 'S', lastLine: 6, body: [{ k: 'def', body: [{ k: 'return' }] }, { k: 'def', body: [{ k: 'assert', msg: { k: 'str' } }, { k: 'return' }] }] });
  });

  it('refuses what Python would, with the place', () => {
    expect(syntaxError('def f(a=1, b):\n    pass').message).toMatch(/without a default cannot follow one with a default at line 1, column 12/);
    expect(syntaxError('def f(a, a):\n    pass').message).toMatch(/duplicate parameter 'a'/);
    expect(syntaxError('if x:\ny = 1').message).toMatch(/expected an indented block after the if statement on line 1/);
    expect(syntaxError('for 1 in x:\n    pass').message).toMatch(/expected a loop variable/);
    expect(syntaxError('y = a if b').message).toMatch(/expected 'else' in the conditional expression/);
    expect(syntaxError('if x: for i in y: pass').message).toMatch(/a for statement after a colon must go on its own indented line/);
    expect(syntaxError('for i in x:\n    pass\nelse:\n    pass').message).toMatch(/'else' after for is not supported/);
  });

  it('keeps nesting of blocks under the depth limit', () => {
    const deep = Array.from({ length: 70 }, (_, i) => `${'  '.repeat(i)}if x:`).join('\n') + `\n${'  '.repeat(70)}pass`;
    try {
      parse(deep);
      throw new Error('expected the depth limit');
    } catch (e) {
      expect((e as ApiError).extra).toMatchObject({ limit: 'expr_depth' });
    }
  });
});

describe('which programs are interpreted', () => {
  it('control flow, boolean operators, builtins, runtime attributes and session functions', () => {
    for (const src of ['if x:\n    pass', 'y = a and b', 'y = not a', 'print(x)', 'n = len(x)', 'y = x.shape', 'y = f(x)', 'with autograd.record():\n    c = f(a)', 'del f', 'a, b = (x, y)', 'self.k = 1']) {
      expect(needs(src, ['f']), src).toBe(true);
    }
  });

  it('straight-line array code stays compiled ahead, checked whole', () => {
    for (const src of ['y = 2 * nd.dot(x.T, x)', 'with autograd.record():\n    l = (w * x).sum()\nl.backward()', 'w[:] = w - 0.1 * w.grad', 'a, b = nd.split(x, num_outputs=2)', 'x.grad[:] = 0', 'y = f(x)', 'y = x.reshape((4, 1))']) {
      expect(needs(src), src).toBe(false);
    }
  });
});
