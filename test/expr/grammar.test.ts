import { describe, expect, it } from 'vitest';
import { compile, stmts } from '../helpers/expr.js';

/** The op names of `src`'s statements, in order, with their args: a compact view for precedence. */
const ops = (src: string) => compile(src).statements.map((s) => [s.op, ...((s as { args?: unknown[] }).args ?? [])]);

describe('precedence and associativity', () => {
  it('* binds tighter than +, comparisons loosest', () => {
    expect(ops('a + b * c == d')).toEqual([
      ['multiply', 'b', 'c'], ['add', 'a', '%1'], ['equal', '%2', 'd'],
    ]);
  });

  it('- and / are left-associative', () => {
    expect(ops('a - b - c')).toEqual([['subtract', 'a', 'b'], ['subtract', '%1', 'c']]);
    expect(ops('a / b / c')).toEqual([['divide', 'a', 'b'], ['divide', '%1', 'c']]);
  });

  it('** is right-associative and tighter than a unary minus on its left', () => {
    expect(ops('a ** b ** c')).toEqual([['power', 'b', 'c'], ['power', 'a', '%1']]);
    expect(ops('-x ** 2')).toEqual([['power', 'x', 2], ['negative', '%1']]);
    expect(ops('x ** -1')).toEqual([['power', 'x', -1]]);
  });

  it('@ is dot, at the level of *', () => {
    expect(ops('a @ b + c')).toEqual([['dot', 'a', 'b'], ['add', '%1', 'c']]);
  });

  it('parentheses override precedence', () => {
    expect(ops('(a + b) * c')).toEqual([['add', 'a', 'b'], ['multiply', '%1', 'c']]);
  });

  it('every comparison maps to its op', () => {
    const names = ['==', '!=', '<', '<=', '>', '>='].map((o) => ops(`a ${o} b`)[0]![0]);
    expect(names).toEqual(['equal', 'not_equal', 'lesser', 'lesser_equal', 'greater', 'greater_equal']);
  });

  it('unary minus of a literal is a number, of an array is negative; unary + is nothing', () => {
    expect(ops('x * -3')).toEqual([['multiply', 'x', -3]]);
    expect(ops('-x')).toEqual([['negative', 'x']]);
    expect(compile('y = +x').statements).toEqual([{ op: '_alias', args: ['x'], out: 'y' }]);
  });

  it('folds operations of two number literals', () => {
    expect(ops('x * 2 ** 3 ** 2')).toEqual([['multiply', 'x', 512]]);
    expect(ops('x + (1 + 2) * 4')).toEqual([['add', 'x', 12]]);
    expect(ops('x * 1e-3')).toEqual([['multiply', 'x', 0.001]]);
    expect(ops('x * .5')).toEqual([['multiply', 'x', 0.5]]);
  });
});

describe('indexing and slices', () => {
  const key = (src: string) => (compile(src).statements[0] as { attrs?: Record<string, unknown> }).attrs?.key;
  const all = { start: null, stop: null, step: null };

  it('integers, negative integers and slices with omitted parts', () => {
    expect(key('x[0]')).toEqual([0]);
    expect(key('x[-1]')).toEqual([-1]);
    expect(key('x[:]')).toEqual([all]);
    expect(key('x[1:]')).toEqual([{ start: 1, stop: null, step: null }]);
    expect(key('x[:-1]')).toEqual([{ start: null, stop: -1, step: null }]);
    expect(key('x[::2]')).toEqual([{ start: null, stop: null, step: 2 }]);
    expect(key('x[1:5:2]')).toEqual([{ start: 1, stop: 5, step: 2 }]);
  });

  it('several axes', () => {
    expect(compile('x[:, 1:3]')).toEqual({
      statements: [{ op: 'getitem', args: ['x'], attrs: { key: [all, { start: 1, stop: 3, step: null }] }, out: '%1' }],
      result: '%1',
    });
    expect(key('x[0, :, -2]')).toEqual([0, all, -2]);
  });

  it('chains with methods and .T', () => {
    expect(ops('x.T[0].sum()')).toEqual([['transpose', 'x'], ['getitem', '%1'], ['sum', '%2']]);
  });
});

describe('calls', () => {
  it('keyword arguments become attrs', () => {
    expect(stmts('s = x.sum(axis=1, keepdims=True)')).toEqual([
      { op: 'sum', args: ['x'], attrs: { axis: 1, keepdims: true }, out: 's' },
    ]);
    expect(stmts("y = nd.Activation(x, act_type='relu', axes=(0, -1), z=None)")).toEqual([
      { op: 'Activation', args: ['x'], attrs: { act_type: 'relu', axes: [0, -1], z: null }, out: 'y' },
    ]);
  });

  it('nd., mx.nd. and bare calls name the same op; namespaces keep their path', () => {
    expect(ops('nd.dot(a, b)')).toEqual([['dot', 'a', 'b']]);
    expect(ops('mx.nd.dot(a, b)')).toEqual([['dot', 'a', 'b']]);
    expect(ops('dot(a, b)')).toEqual([['dot', 'a', 'b']]);
    expect(compile('random.normal(0, 1, shape=(2, 3))').statements[0]).toEqual({
      op: 'random.normal', args: [0, 1], attrs: { shape: [2, 3] }, out: '%1',
    });
    expect(compile('nd.linalg.gemm2(a, b)').statements[0]).toMatchObject({ op: 'linalg.gemm2' });
  });

  it('inline constants and array-valued keywords', () => {
    expect(ops('nd.array([[1, 2], [3, -4.5]])')).toEqual([['array', [[1, 2], [3, -4.5]]]]);
    expect(compile('nd.where(condition=c > 0, x=a, y=b)').statements).toEqual([
      { op: 'greater', args: ['c', 0], out: '%1' },
      { op: 'where', args: [], attrs: { condition: '%1', x: 'a', y: 'b' }, out: '%2' },
    ]);
  });

  it('positional strings pass through for the executor to match against positional attrs', () => {
    expect(ops("x.astype('float64')")).toEqual([['astype', 'x', 'float64']]);
  });

  it('out= writes in place and is the value of the call', () => {
    expect(compile('nd.dot(a, b, out=w)')).toEqual({
      statements: [{ op: 'dot', args: ['a', 'b'], into: 'w' }],
      result: 'w',
    });
    expect(stmts('y = nd.dot(a, b, out=w)')).toEqual([
      { op: 'dot', args: ['a', 'b'], into: 'w' },
      { op: '_alias', args: ['w'], out: 'y' },
    ]);
    expect(stmts('nd.sgd_update(w, w.grad, lr=0.1, out=w)')).toEqual([
      { op: 'sgd_update', args: ['w', 'w.grad'], attrs: { lr: 0.1 }, into: 'w' },
    ]);
  });
});

describe('statements', () => {
  it('; separates statements, comments and blank lines are ignored', () => {
    expect(compile('# setup\n\nb = a * 2;  b = b * 2 # twice\n\n   # indented comment\nb.sum();')).toEqual({
      statements: [
        { op: 'multiply', args: ['a', 2], out: 'b' },
        { op: 'multiply', args: ['b', 2], out: 'b' },
        { op: 'sum', args: ['b'], out: '%3' },
      ],
      result: '%3',
    });
  });

  it('a bare name as the last statement is the result, with no statement', () => {
    expect(compile('x = nd.ones((2,))\nx')).toEqual({ statements: [{ op: 'ones', args: [[2]], out: 'x' }], result: 'x' });
  });

  it('only the last statement gives the result', () => {
    expect(compile('a * 2\nb = a').result).toBeUndefined();
  });

  it('a = b = expr binds both names to one array', () => {
    expect(stmts('a = b = x * 2')).toEqual([
      { op: 'multiply', args: ['x', 2], out: 'a' },
      { op: '_alias', args: ['a'], out: 'b' },
    ]);
  });

  it('unpacks several outputs', () => {
    expect(stmts('p, q = nd.split(x, num_outputs=2)')).toEqual([
      { op: 'split', args: ['x'], attrs: { num_outputs: 2 }, out: ['p', 'q'] },
    ]);
  });

  it('line continuations and brackets over several lines', () => {
    expect(ops('y = nd.dot(a,\n         b) + \\\n  c')).toEqual([['dot', 'a', 'b'], ['add', '%1', 'c']]);
  });

  it('backward with arguments', () => {
    expect(stmts('y.backward(g)')).toEqual([{ op: 'backward', args: ['y'], attrs: { head_grads: ['g'] } }]);
    expect(stmts('y.backward(out_grad=g, retain_graph=True, train_mode=False)')).toEqual([
      { op: 'backward', args: ['y'], attrs: { head_grads: ['g'], retain_graph: true, train_mode: false } },
    ]);
    expect(stmts('autograd.backward([y, z], head_grads=[None, g], retain_graph=True)')).toEqual([
      { op: 'backward', args: ['y', 'z'], attrs: { head_grads: [null, 'g'], retain_graph: true } },
    ]);
    expect(stmts('(y * 2).backward()')).toEqual([
      { op: 'multiply', args: ['y', 2], out: '%1' },
      { op: 'backward', args: ['%1'] },
    ]);
  });

  it('attach_grad with grad_req', () => {
    expect(stmts("x.attach_grad(grad_req='add')")).toEqual([{ op: 'attach_grad', args: ['x'], attrs: { grad_req: 'add' } }]);
    expect(stmts('x.attach_grad("null")')).toEqual([{ op: 'attach_grad', args: ['x'], attrs: { grad_req: 'null' } }]);
  });
});

describe('in-place writes', () => {
  it('w[:] = expr retargets the last op', () => {
    expect(stmts('w[:] = w - 0.1 * w.grad')).toEqual([
      { op: 'multiply', args: [0.1, 'w.grad'], out: '%1' },
      { op: 'subtract', args: ['w', '%1'], into: 'w' },
    ]);
  });

  it('w[:] = name copies, w[:] = number fills', () => {
    expect(stmts('w[:] = v')).toEqual([{ op: 'copy', args: ['v'], into: 'w' }]);
    expect(stmts('w[:] = 0')).toEqual([{ op: '_fill', args: [], attrs: { value: 0 }, into: 'w' }]);
    expect(stmts('x.grad[:] = 0')).toEqual([{ op: '_fill', args: [], attrs: { value: 0 }, into: 'x.grad' }]);
    expect(stmts('w[:] = [1, 2]')).toEqual([{ op: 'copy', args: [[1, 2]], into: 'w' }]);
  });

  it('augmented assignment writes in place', () => {
    expect(stmts('w += 1')).toEqual([{ op: 'add', args: ['w', 1], into: 'w' }]);
    expect(stmts('w -= lr * g')).toEqual([
      { op: 'multiply', args: ['lr', 'g'], out: '%1' },
      { op: 'subtract', args: ['w', '%1'], into: 'w' },
    ]);
    expect(stmts('w *= 2; w /= 2; w **= 2; w.grad *= 0')).toEqual([
      { op: 'multiply', args: ['w', 2], into: 'w' },
      { op: 'divide', args: ['w', 2], into: 'w' },
      { op: 'power', args: ['w', 2], into: 'w' },
      { op: 'multiply', args: ['w.grad', 0], into: 'w.grad' },
    ]);
  });
});

describe('with blocks', () => {
  it('each scope kind, with or without autograd.', () => {
    const scope = (src: string) => compile(`${src}: y = x`).statements[0];
    expect(scope('with autograd.record()')).toEqual({ op: 'scope', kind: 'record', body: [{ op: '_alias', args: ['x'], out: 'y' }] });
    expect(scope('with record(train_mode=False)')).toMatchObject({ kind: 'record', train_mode: false });
    expect(scope('with autograd.pause()')).toMatchObject({ kind: 'pause' });
    expect(scope('with pause(train_mode=True)')).toMatchObject({ kind: 'pause', train_mode: true });
    expect(scope('with autograd.train_mode()')).toMatchObject({ kind: 'train_mode' });
    expect(scope('with mx.autograd.predict_mode()')).toMatchObject({ kind: 'predict_mode' });
    expect(scope('with autograd.record()')).not.toHaveProperty('train_mode');
  });

  it('a one-line body may hold several statements', () => {
    expect(stmts('with autograd.record(): y = x * 2; z = y + 1')).toEqual([
      { op: 'scope', kind: 'record', body: [
        { op: 'multiply', args: ['x', 2], out: 'y' },
        { op: 'add', args: ['y', 1], out: 'z' },
      ] },
    ]);
  });

  it('nested blocks close on dedent', () => {
    const src = [
      'with autograd.record():',
      '    a = x + 1',
      '    with autograd.pause():',
      '        b = a * 2',
      '',
      '        c = b * 3',
      '    d = a * 4',
      'e = d * 5',
    ].join('\n');
    expect(stmts(src)).toEqual([
      { op: 'scope', kind: 'record', body: [
        { op: 'add', args: ['x', 1], out: 'a' },
        { op: 'scope', kind: 'pause', body: [
          { op: 'multiply', args: ['a', 2], out: 'b' },
          { op: 'multiply', args: ['b', 3], out: 'c' },
        ] },
        { op: 'multiply', args: ['a', 4], out: 'd' },
      ] },
      { op: 'multiply', args: ['d', 5], out: 'e' },
    ]);
  });

  it('two dedents at once, tabs, and CRLF line ends', () => {
    expect(stmts('with record():\r\n\twith pause():\r\n\t\ta = x\r\nb = a')).toEqual([
      { op: 'scope', kind: 'record', body: [{ op: 'scope', kind: 'pause', body: [{ op: '_alias', args: ['x'], out: 'a' }] }] },
      { op: '_alias', args: ['a'], out: 'b' },
    ]);
  });

  it('with a(), b(): nests the scopes', () => {
    expect(stmts('with autograd.record(), autograd.train_mode(): y = x')).toEqual([
      { op: 'scope', kind: 'record', body: [{ op: 'scope', kind: 'train_mode', body: [{ op: '_alias', args: ['x'], out: 'y' }] }] },
    ]);
  });

  it('a uniformly indented source is accepted', () => {
    expect(stmts('    a = x * 2\n    b = a')).toHaveLength(2);
  });

  it('the result is never taken from inside a block', () => {
    expect(compile('with autograd.record():\n    x * 2').result).toBeUndefined();
  });
});
