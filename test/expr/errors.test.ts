// Every rejected input is a 400 invalid_expression whose detail says what and where.
import { describe, expect, it } from 'vitest';
import { expectSyntaxError, failure } from '../helpers/expr.js';

describe('syntax errors name what was expected and where', () => {
  it('an unterminated paren points at the opening one', () => {
    expectSyntaxError('y = nd.dot(x,\n  x', /'\(' is never closed: expected '\)'/, 1, 11);
  });

  it('a mismatched or unmatched closer', () => {
    expectSyntaxError('y = (x]', /'\]' does not close '\(' opened at line 1, column 5/, 1, 7);
    expectSyntaxError('y = x)', /unmatched '\)'/, 1, 6);
  });

  it('a missing operand', () => {
    expectSyntaxError('y = x +', /expected an expression, found end of line/, 1, 8);
    expectSyntaxError('y = x * * 2', /expected an expression, found '\*'/, 1, 9);
  });

  it('two expressions without a separator', () => {
    expectSyntaxError('y = x z', /expected a new line or ';' after the statement, found 'z'/, 1, 7);
  });

  it('bad indentation', () => {
    expectSyntaxError('a = x\n    b = a', /unexpected indent/, 2, 5);
    expectSyntaxError('with autograd.record():\n    a = x\n  b = a', /unindent does not match any outer indentation level/, 3, 3);
    expectSyntaxError('with autograd.record():\ny = x', /expected an indented block after the with statement on line 1, found 'y'/, 2, 1);
    expectSyntaxError('with autograd.record():', /expected an indented block .* found end of input/, 1, 24);
  });

  it('what the language still refuses', () => {
    expectSyntaxError('f = lambda a: a * 2', /lambdas are not supported/, 1, 5);
    expectSyntaxError('y = [v for v in x]', /comprehensions are not supported/, 1, 8);
    expectSyntaxError('try:\n    x = 1', /exception handling is not supported/, 1, 1);
    expectSyntaxError('while x:\n    pass\nelse:\n    pass', /'else' after while is not supported/, 3, 1);
    expectSyntaxError('def f(*a):\n    return a', /'\*' parameters are not supported/, 1, 7);
    expectSyntaxError('else:\n    x = 1', /'else' must follow an if block/, 1, 1);
  });

  it('imports other than mxnet', () => {
    expectSyntaxError('import os', /imports are not supported: .* not 'os'/, 1, 8);
    expectSyntaxError('from os import path', /not 'os'/, 1, 6);
  });

  it('unknown attributes', () => {
    expectSyntaxError('x.foo', /attribute '\.foo' is not supported: only \.grad, \.T and method calls/, 1, 3);
    expectSyntaxError('y = x.shape[0]', /attribute '\.shape' is not supported/, 1, 7);
    expectSyntaxError('y = (x * 2).grad', /\.grad is read from a name only/, 1, 13);
    expectSyntaxError('y = nd.pi', /'nd\.pi' is a namespace path: expected a call/, 1, 5);
  });

  it('writes into part of an array', () => {
    expectSyntaxError('w[0] = 1', /only name\[:\] = \.\.\. writes in place/, 1, 2);
    expectSyntaxError('w[0:2] = x', /writing into part of an array is not supported yet/, 1, 2);
    expectSyntaxError('x.grad = y', /\.grad cannot be rebound/, 1, 3);
    expectSyntaxError('x * 2 = y', /cannot assign to this expression/, 1, 1);
  });

  it('statement-only calls used as values', () => {
    expectSyntaxError('z = y.backward()', /\.backward\(\) is a statement/, 1, 7);
    expectSyntaxError('z = x.attach_grad() + 1', /\.attach_grad\(\) is a statement/, 1, 7);
    expectSyntaxError('(x * 2).attach_grad()', /attach_grad\(\) applies to a name/, 1, 9);
    expectSyntaxError('autograd.record()', /opens a scope: write 'with autograd.record\(\):'/, 1, 16);
  });

  it('bad arguments of the special forms', () => {
    expectSyntaxError("x.attach_grad(grad_req='sum')", /grad_req must be 'write', 'add' or 'null'/, 1, 24);
    expectSyntaxError('y.backward(retain_graph=1)', /retain_graph must be True or False/, 1, 25);
    expectSyntaxError('y.backward(head=g)', /backward\(\) has no argument 'head'/, 1, 12);
    expectSyntaxError('autograd.backward([y, z], head_grads=[g])', /head_grads has 1 entries for 2 heads/, 1, 38);
    expectSyntaxError('with autograd.record(True, False): y = x', /record\(\) takes at most 1 positional argument/, 1, 28);
    expectSyntaxError('with open(f): y = x', /with supports autograd.record\(\), pause\(\), train_mode\(\), predict_mode\(\) and detect_anomaly\(\) only/, 1, 6);
    expectSyntaxError('with autograd.record() as r: y = x', /'with \.\.\. as' is not supported/, 1, 24);
  });

  it('other rejected syntax', () => {
    expectSyntaxError('y = x // 2', /operator '\/\/' works on Python numbers only, not on arrays/, 1, 7);
    expectSyntaxError('y = x & 2', /operator '&' is not supported/, 1, 7);
    expectSyntaxError('y = x[a]', /an index must be an integer or a slice/, 1, 7);
    expectSyntaxError('y = x[0.5]', /an index must be an integer/, 1, 7);
    expectSyntaxError('y = a < b < c', /chained comparisons/, 1, 11);
    expectSyntaxError('y = f(a=1, b)', /a positional argument cannot follow keyword arguments/, 1, 12);
    expectSyntaxError('y = f(*xs)', /'\*' unpacking of arguments is not supported/, 1, 7);
    expectSyntaxError("y = 'relu", /unterminated string/, 1, 5);
    expectSyntaxError('y = $x', /unexpected character '\$'/, 1, 5);
    expectSyntaxError('y = {1: 2}', /dict and set literals are not supported/, 1, 5);
    expectSyntaxError('y = 1 / 0 * x', /is not a finite number/, 1, 7);
    expectSyntaxError('y = nd.stack([a, b])', /a list given positionally holds numbers only/, 1, 14);
    expectSyntaxError('y = x * 1e400', /number literal '1e400' is out of range/, 1, 9);
    expectSyntaxError('with record(): with pause(): y = x', /must go on its own indented line/, 1, 16);
    expectSyntaxError('3', /a bare expression must compute an array/, 1, 1);
  });

  it('the problem carries only line and column besides the detail', () => {
    const e = failure('for x in y: pass');
    expect(e.status).toBe(400);
    expect(e.extra).toEqual({ line: 1, column: 1 });
  });
});
