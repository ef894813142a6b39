/**
 * In place where safe (issue 14, item 3): an elementwise op whose input dies with the statement
 * (its name is rebound by it, or it is a temporary read for the last time; nothing else
 * references it; no tape saves it) writes its output over that input, so `x = x * 2` in a loop
 * allocates nothing. The results are the out-of-place ones, bit for bit, and an alias, a view or
 * a value saved for backward is never written over. Optimizer updates write into their state.
 */
import { describe, expect, it } from 'vitest';
import { newSession, values } from '../helpers/session.js';
import { runOps } from '../../src/session/service.js';
import { allOps } from '../../src/ops/index.js';
import type { Session } from '../../src/session/session.js';

const run = (s: Session, expr: string) => runOps(s, { expr });
const data = (s: Session, name: string) => values(s, s.resolve(name));

describe('in place where the input dies', () => {
  it('`x = x * 2` a hundred times allocates nothing after the first x, in separate requests or one program', async () => {
    const s = newSession();
    await s.run(() => run(s, 'x = nd.ones((100000,))'));
    const allocated = s.memory.allocated;
    for (let i = 0; i < 50; i++) await s.run(() => run(s, 'x = x * 2'));
    await s.run(() => run(s, Array.from({ length: 50 }, () => 'x = x * 2').join('\n')));
    expect(s.memory.allocated).toBe(allocated);
    expect(s.memory.reused).toBe(100);
    expect(s.memory.buffers).toBe(1);
    await s.run(() => expect(new Set(data(s, 'x'))).toEqual(new Set([2 ** 100])));
  });

  it('temporaries read for the last time lend their buffers: a chained expression allocates one array per line', async () => {
    const s = newSession();
    await s.run(() => run(s, 'x = nd.ones((1000,))'));
    const before = s.memory.allocated;
    // (x * 2 + x) / 3 + 0.5: `x * 2` needs a new buffer (x lives on); the other three reuse it.
    await s.run(() => run(s, 'x = (x * 2 + x) / 3 + 0.5'));
    expect(s.memory.allocated - before).toBe(1000 * 8);
    expect(s.memory.reused).toBe(3);
    await s.run(() => expect(new Set(data(s, 'x'))).toEqual(new Set([1.5])));
  });

  it('every in-place op gives bitwise the out-of-place result, broadcasting either operand', async () => {
    const inPlace = allOps().filter((d) => d.inPlace);
    expect(inPlace.length).toBeGreaterThan(40);
    const s = newSession();
    for (const def of inPlace) {
      const [lo, hi] = def.domain ?? [-2, 2];
      const init = (name: string) => `${name} = nd.array([${Array.from({ length: 12 }, (_, i) => lo + ((hi - lo) * (i + 0.5)) / 12).join(', ')}]).reshape((3, 4))\nb = nd.array([0.5, 1.5, 0.75, 1.25])`;
      const calls: ((x: string) => string)[] = def.inputs.length === 1
        ? [(x) => `nd.${def.name}(${x})`]
        : [(x) => `nd.${def.name}(${x}, b)`, (x) => `nd.${def.name}(b, ${x})`, (x) => `nd.${def.name}(${x}, ${x})`, (x) => `nd.${def.name}(${x}, 0.5)`, (x) => `nd.${def.name}(0.5, ${x})`];
      for (const call of calls) {
        await s.run(() => {
          run(s, `${init('xx')}\nexpected = ${call('xx')}`);
          const reused = s.memory.reused;
          run(s, `${init('x')}\nx = ${call('x')}`);
          expect(s.memory.reused, call('x')).toBe(reused + 1);
          expect(data(s, 'x'), call('x')).toEqual(data(s, 'expected'));
        });
      }
    }
  });

  it('large arrays too, where the native engine splits the kernel over threads and streams its stores', async () => {
    const s = newSession();
    const n = 2 ** 21;
    for (const call of [(x: string) => `${x} * 1.5 - b`, (x: string) => `nd.exp(${x})`, (x: string) => `b / ${x}`]) {
      await s.run(() => {
        run(s, `b = nd.arange(${n}).reshape((2048, 1024)) / ${n}\nxx = nd.ones((2048, 1024)) + b\nexpected = ${call('xx')}`);
        run(s, `x = nd.ones((2048, 1024)) + b\nx = ${call('x')}`);
      });
      await s.memory.backend.flush();
      const bytes = (name: string) => Buffer.from(s.memory.backend.readBytes(s.resolve(name).storage));
      await s.run(() => expect(bytes('x').equals(bytes('expected')), call('x')).toBe(true));
    }
    expect(s.memory.reused).toBeGreaterThanOrEqual(3);
  });

  it('never writes over an alias, a view or a gradient buffer', async () => {
    const s = newSession();
    await s.run(() => {
      run(s, 'x = nd.ones((6,))\ny = x\nv = x.reshape((2, 3))\nw = nd.ones((6,))\nw.attach_grad()');
      run(s, 'x = x * 2');
      expect(s.memory.reused).toBe(0);
      expect(data(s, 'x')).toEqual([2, 2, 2, 2, 2, 2]);
      expect(data(s, 'y')).toEqual([1, 1, 1, 1, 1, 1]);
      expect(data(s, 'v')).toEqual([1, 1, 1, 1, 1, 1]);
      // The variable's gradient buffer holds w's grad slot, not its data: w itself may be rebound.
      run(s, 'g = w.grad\ng = g + 5');
      expect(data(s, 'w.grad')).toEqual([0, 0, 0, 0, 0, 0]);
      expect(data(s, 'g')).toEqual([5, 5, 5, 5, 5, 5]);
    });
  });

  it('a recorded chain that rebinds one name gets the gradients of the same chain with fresh names', async () => {
    const steps = ['y + 1', 'y * 2', 'nd.exp(y)', 'y - 0.5', 'nd.sin(y)', 'nd.sigmoid(y)', 'y * y', 'nd.tanh(y)', 'y + y', 'nd.relu(y)', 'y / 3'];
    const chain = (fresh: boolean): string => {
      const lines = ['x = nd.array([0.1, -0.3, 0.7, 0.25])', 'x.attach_grad()', 'with autograd.record():', '    y0 = x * 1'];
      steps.forEach((st, i) => lines.push(`    ${fresh ? `y${i + 1}` : 'y0'} = ${st.replaceAll('y', fresh ? `y${i}` : 'y0')}`));
      lines.push(`    z = ${fresh ? `y${steps.length}` : 'y0'}.sum()`, 'z.backward()');
      return lines.join('\n');
    };
    const s1 = newSession();
    const s2 = newSession();
    let grads1: number[] = [];
    let grads2: number[] = [];
    await s1.run(() => { run(s1, chain(false)); grads1 = data(s1, 'x.grad'); });
    await s2.run(() => { run(s2, chain(true)); grads2 = data(s2, 'x.grad'); });
    // Some steps wrote in place (those that save neither input), others could not.
    expect(s1.memory.reused).toBeGreaterThan(2);
    expect(s1.memory.reused).toBeLessThan(steps.length);
    expect(s2.memory.reused).toBe(0);
    expect(grads1).toEqual(grads2);
    expect(grads1.some((g) => g !== 0)).toBe(true);
  });
});

describe('over the array a statement rebinds, when the op does not read it', () => {
  it('`d = a + b` again and again allocates nothing after the first d, in one program or many', async () => {
    const s = newSession();
    await s.run(() => run(s, 'a = nd.arange(1000) / 7\nb = nd.ones((1000,)) * 3\nd = a + b'));
    const allocated = s.memory.allocated;
    const reused = s.memory.reused;
    for (let i = 0; i < 10; i++) await s.run(() => run(s, 'd = a + b'));
    await s.run(() => run(s, Array.from({ length: 16 }, (_, i) => (i % 2 ? 'd = a * b' : 'd = a - b')).join('\n')));
    expect(s.memory.allocated).toBe(allocated);
    expect(s.memory.reused - reused).toBe(26);
    await s.run(() => expect(data(s, 'd')).toEqual(data(s, 'a').map((x, i) => x * data(s, 'b')[i])));
  });

  it('queued kernels that read the old array see its values: the new write waits for them (native stream, 4 MB arrays)', async () => {
    const s = newSession();
    const n = 1 << 20;
    await s.run(() => {
      run(s, `a = nd.arange(${n}) / ${n}\nb = nd.ones((${n},)) + a`);
      // e reads the first d; the second d may take that d's buffer while e's kernel is still queued.
      run(s, 'd = a + b\ne = d * 2\nd = a - b\nf = d * 3\nd = b * b');
    });
    await s.memory.backend.flush();
    await s.run(() => {
      const A = data(s, 'a'), B = data(s, 'b');
      expect(data(s, 'e').every((v, i) => v === (A[i] + B[i]) * 2)).toBe(true);
      expect(data(s, 'f').every((v, i) => v === (A[i] - B[i]) * 3)).toBe(true);
      expect(data(s, 'd').every((v, i) => v === B[i] * B[i])).toBe(true);
    });
    expect(s.memory.reused).toBeGreaterThanOrEqual(2);
  });

  it('never writes over an old array that an alias, a view, a tape or a gradient still holds', async () => {
    const s = newSession();
    await s.run(() => {
      run(s, 'a = nd.ones((6,))\nb = nd.ones((6,)) * 2');
      const reused = s.memory.reused;
      run(s, 'd = a + b\ny = d\nd = a * b');
      run(s, 'p = a + b\nv = p.reshape((2, 3))\np = a - b');
      run(s, 'w = a + b\nw.attach_grad()\nw = a * 5');
      expect(s.memory.reused).toBe(reused);
      expect(data(s, 'y')).toEqual([3, 3, 3, 3, 3, 3]);
      expect(data(s, 'v')).toEqual([3, 3, 3, 3, 3, 3]);
      expect(data(s, 'd')).toEqual([2, 2, 2, 2, 2, 2]);
      expect(data(s, 'p')).toEqual([-1, -1, -1, -1, -1, -1]);
      expect(data(s, 'w')).toEqual([5, 5, 5, 5, 5, 5]);
    });
  });

  it('recorded: an old array the tape saved keeps its values, and the gradients are those of fresh names', async () => {
    const s = newSession();
    await s.run(() => {
      run(s, 'x = nd.array([0.5, 1.0, 1.5])\nx.attach_grad()\nc = nd.array([2.0, 3.0, 4.0])');
      // t is saved by the product's vjp; rebinding t must not write over it before backward.
      run(s, 'with autograd.record():\n    t = x * c\n    y = t * t\n    t = x + c\n    z = y + t * 0\nz.backward()');
      expect(data(s, 'x.grad')).toEqual([0.5, 1, 1.5].map((v, i) => 2 * v * [2, 3, 4][i] ** 2 + 0));
    });
  });
});


describe('a dense layer and its activation', () => {
  it('recorded, relu(FullyConnected(...)) writes the activation over the product; the gradients are those of the two-name form', async () => {
    const setup = 'x = nd.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])\nW = nd.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.6]])\nb = nd.array([0.05, -0.5])\nW.attach_grad()\nb.attach_grad()';
    const fused = newSession();
    const named = newSession();
    await fused.run(() => runOps(fused, { expr: `${setup}\nwith autograd.record():\n    h = nd.relu(nd.FullyConnected(x, W, b, num_hidden=2))\n    z = (h * h).sum()\nz.backward()` }));
    await named.run(() => runOps(named, { expr: `${setup}\nwith autograd.record():\n    p = nd.FullyConnected(x, W, b, num_hidden=2)\n    h = nd.relu(p)\n    z = (h * h).sum()\nz.backward()` }));
    expect(fused.memory.reused).toBe(1);
    expect(named.memory.reused).toBe(0);
    for (const s of [fused, named]) await s.run(() => undefined);
    await fused.run(() => {
      expect(data(fused, 'h')).toEqual(values(named, named.resolve('h')));
      expect(data(fused, 'W.grad')).toEqual(values(named, named.resolve('W.grad')));
      expect(data(fused, 'b.grad')).toEqual(values(named, named.resolve('b.grad')));
      // One element of the product is negative: relu zeroes it, and its gradient too.
      expect(data(fused, 'h').filter((v) => v === 0).length).toBeGreaterThan(0);
    });
  });
});

describe('optimizer updates in place', () => {
  it('sgd_update allocates one scratch array per step, adam_update two; both give the reference formulas', async () => {
    const s = newSession();
    const n = 1000;
    await s.run(() => run(s, `w = nd.ones((${n},))\ng = nd.ones((${n},)) * 0.5\nm = nd.zeros((${n},))\nv = nd.zeros((${n},))`));
    let before = s.memory.allocated;
    await s.run(() => run(s, 'sgd_update(w, g, lr=0.1, wd=0.01, clip_gradient=0.25, out=w)'));
    expect(s.memory.allocated - before).toBe(n * 8);
    // w = (1 - 0.001) * 1 - 0.1 * clip(0.5, 0.25)
    await s.run(() => expect(data(s, 'w')[0]).toBe(1 * (1 - 0.1 * 0.01) - 0.25 * 0.1));
    before = s.memory.allocated;
    await s.run(() => run(s, 'adam_update(w, g, m, v, lr=0.01, out=w)'));
    expect(s.memory.allocated - before).toBe(2 * n * 8);
  });

  it('with the weight passed as its own gradient, the update reads the old values throughout', async () => {
    const s = newSession();
    await s.run(() => {
      run(s, 'w = nd.array([1.0, 2.0])\nsgd_update(w, w, lr=0.5, out=w)');
      expect(data(s, 'w')).toEqual([0.5, 1]);
    });
  });
});
