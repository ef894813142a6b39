// Every statement of the seed chapter (d2l "Automatic Gradient") and the book's training step.
import { describe, expect, it } from 'vitest';
import { compile, stmts } from '../helpers/expr.js';

describe('the seed chapter', () => {
  it('x = nd.arange(4).reshape((4, 1))', () => {
    expect(compile('x = nd.arange(4).reshape((4, 1))')).toEqual({
      statements: [
        { op: 'arange', args: [4], out: '%1' },
        { op: 'reshape', args: ['%1', [4, 1]], out: 'x' },
      ],
    });
  });

  it('x.attach_grad()', () => {
    expect(compile('x.attach_grad()')).toEqual({ statements: [{ op: 'attach_grad', args: ['x'] }] });
  });

  it('the record block with y = 2 * nd.dot(x.T, x)', () => {
    expect(stmts('with autograd.record():\n    y = 2 * nd.dot(x.T, x)')).toEqual([
      {
        op: 'scope',
        kind: 'record',
        body: [
          { op: 'transpose', args: ['x'], out: '%1' },
          { op: 'dot', args: ['%1', 'x'], out: '%2' },
          { op: 'multiply', args: [2, '%2'], out: 'y' },
        ],
      },
    ]);
  });

  it('y.backward() is a statement, not a result', () => {
    expect(compile('y.backward()')).toEqual({ statements: [{ op: 'backward', args: ['y'] }] });
  });

  it('x.grad as a result needs no statement', () => {
    expect(compile('x.grad')).toEqual({ statements: [], result: 'x.grad' });
  });

  it('(x.grad - 4 * x).norm().asscalar()', () => {
    expect(compile('(x.grad - 4 * x).norm().asscalar()')).toEqual({
      statements: [
        { op: 'multiply', args: [4, 'x'], out: '%1' },
        { op: 'subtract', args: ['x.grad', '%1'], out: '%2' },
        { op: 'norm', args: ['%2'], out: '%3' },
        { op: 'asscalar', args: ['%3'], out: '%4' },
      ],
      result: '%4',
    });
  });

  it('a = nd.random.normal(shape=1)', () => {
    expect(stmts('a = nd.random.normal(shape=1)')).toEqual([
      { op: 'random.normal', args: [], attrs: { shape: 1 }, out: 'a' },
    ]);
  });

  it('the steps of f(a)', () => {
    expect(stmts('b = a * 2')).toEqual([{ op: 'multiply', args: ['a', 2], out: 'b' }]);
    expect(compile('b.norm().asscalar()')).toEqual({
      statements: [
        { op: 'norm', args: ['b'], out: '%1' },
        { op: 'asscalar', args: ['%1'], out: '%2' },
      ],
      result: '%2',
    });
    expect(stmts('b = b * 2')).toEqual([{ op: 'multiply', args: ['b', 2], out: 'b' }]);
    expect(compile('b.sum().asscalar()').result).toBe('%2');
    expect(stmts('c = b')).toEqual([{ op: '_alias', args: ['b'], out: 'c' }]);
    expect(stmts('c = 100 * b')).toEqual([{ op: 'multiply', args: [100, 'b'], out: 'c' }]);
    expect(stmts('c.backward()')).toEqual([{ op: 'backward', args: ['c'] }]);
  });

  it('bare a * 2, c / a and x == y are results', () => {
    expect(compile('a * 2')).toEqual({ statements: [{ op: 'multiply', args: ['a', 2], out: '%1' }], result: '%1' });
    expect(compile('c / a')).toEqual({ statements: [{ op: 'divide', args: ['c', 'a'], out: '%1' }], result: '%1' });
    expect(compile('x == y')).toEqual({ statements: [{ op: 'equal', args: ['x', 'y'], out: '%1' }], result: '%1' });
  });

  it('a.grad == c / a', () => {
    expect(compile('a.grad == c / a')).toEqual({
      statements: [
        { op: 'divide', args: ['c', 'a'], out: '%1' },
        { op: 'equal', args: ['a.grad', '%1'], out: '%2' },
      ],
      result: '%2',
    });
  });

  it('the import line of the chapter is ignored', () => {
    expect(compile('from mxnet import autograd, nd\nimport mxnet as mx\nx = mx.nd.ones((2,))')).toEqual({
      statements: [{ op: 'ones', args: [[2]], out: 'x' }],
    });
  });

  it('cell 9 as one request', () => {
    const src = 'a = nd.random.normal(shape=1)\na.attach_grad()\nwith autograd.record():\n    c = 100 * a\nc.backward()\na.grad == c / a\n';
    const out = compile(src);
    expect(out.statements.map((s) => s.op)).toEqual(['random.normal', 'attach_grad', 'scope', 'backward', 'divide', 'equal']);
    expect(out.result).toBe('%4'); // retargeted temporaries leave gaps in the numbering
  });
});

describe("the book's training step (API.md)", () => {
  it('compiles forward under record, backward, then in-place updates', () => {
    const src = [
      'with autograd.record():',
      '    l = -nd.pick(nd.log_softmax(nd.dot(X, W) + b), y).mean()',
      'l.backward()',
      'W[:] = W - lr * W.grad',
      'b[:] = b - lr * b.grad',
    ].join('\n');
    expect(compile(src)).toEqual({
      statements: [
        {
          op: 'scope',
          kind: 'record',
          body: [
            { op: 'dot', args: ['X', 'W'], out: '%1' },
            { op: 'add', args: ['%1', 'b'], out: '%2' },
            { op: 'log_softmax', args: ['%2'], out: '%3' },
            { op: 'pick', args: ['%3', 'y'], out: '%4' },
            { op: 'mean', args: ['%4'], out: '%5' },
            { op: 'negative', args: ['%5'], out: 'l' },
          ],
        },
        { op: 'backward', args: ['l'] },
        { op: 'multiply', args: ['lr', 'W.grad'], out: '%7' },
        { op: 'subtract', args: ['W', '%7'], into: 'W' },
        { op: 'multiply', args: ['lr', 'b.grad'], out: '%9' },
        { op: 'subtract', args: ['b', '%9'], into: 'b' },
      ],
    });
  });

  it('a number bound in the same request is substituted where used', () => {
    expect(stmts('lr = 0.1\nW[:] = W - lr * W.grad')).toEqual([
      { op: 'multiply', args: [0.1, 'W.grad'], out: '%1' },
      { op: 'subtract', args: ['W', '%1'], into: 'W' },
    ]);
  });
});
