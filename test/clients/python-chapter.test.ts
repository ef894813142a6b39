/**
 * The seed chapter (test/fixtures/d2l-automatic-gradient/chapter.txt), verbatim, through the Python
 * client: its `In [n]:` cells run in order in ONE python3 process against a real server, with only
 * the import line changed to `from gradserve import autograd, nd`; each cell's printed output and
 * displayed value (Jupyter-style) must equal the chapter's, `@cpu(0)` reading `@gradserve`.
 *
 * The chapter's cells 9/10 draw `a = nd.random.normal(shape=1)`. GRADSERVE_SEED=0 fixes the
 * session's stream (the reference and native engines produce the same bits): a = 1.6901706e-05,
 * which is positive, so `f` takes the `if` branch, `c = b` (b = a * 2**26 = 1134.2543 after the while loop),
 * hence a.grad = 2**26 exactly, c / a = 2**26 exactly and `a.grad == c / a` prints [1.]
 * (on the `c = 100 * b` branch float32 rounding could make it print [0.]).
 * The test checks that branch explicitly after the chapter's cells.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { chapterCells, hasNumpy, pythonEnv, runCells, type Cell } from './python.js';

const SEED = '0';
const IMPORT_MXNET = 'from mxnet import autograd, nd';
const IMPORT_GRADSERVE = 'from gradserve import autograd, nd';

let server: TestServer;
let numpy = false;

beforeAll(async () => {
  server = await startServer();
  numpy = await hasNumpy();
});
afterAll(async () => {
  await server?.close();
});

function chapterForGradserve(): Cell[] {
  const cells = chapterCells();
  const imports = cells.filter((c) => c.code.includes(IMPORT_MXNET));
  expect(imports).toHaveLength(1);
  return cells.map((c) => ({ ...c, code: c.code.replace(IMPORT_MXNET, IMPORT_GRADSERVE) }));
}

const device = (s: string) => s.replace(/@cpu\(0\)/g, '@gradserve');

// After the chapter: which branch `f` took, and how many arrays the session still holds (the
// client deletes the server binding of every collected NDArray, so the while loop leaves none).
const PROBE = `
import gradserve
_client = gradserve.get_client()
print(a.asscalar() > 0, c.sum().asscalar() > 0, a.grad.asscalar(), (c / a).asscalar())
_client.flush()
print(sorted(d['name'] for d in _client.session('GET', '/arrays')['arrays']) == sorted([x.name, y.name, a.name, c.name]))
`;

describe('the chapter through the Python client', () => {
  it('parses the chapter: 10 cells, Out[2], Out[6], Out[10] and the print output of cell 7', () => {
    const cells = chapterCells();
    expect(cells.map((c) => c.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(cells.filter((c) => c.out).map((c) => c.n)).toEqual([2, 6, 10]);
    expect(cells.find((c) => c.n === 7)?.printed).toBe('False\nTrue\n');
    expect(cells.find((c) => c.n === 7)?.code).toBe(
      'print(autograd.is_training())\nwith autograd.record():\n    print(autograd.is_training())\n',
    );
    expect(cells.find((c) => c.n === 10)?.out).toBe('\n[1.]\n<NDArray 1 @cpu(0)>');
  });

  for (const mode of ['numpy', 'no numpy'] as const) {
    it(`runs every cell verbatim in one python3 process and prints the chapter's outputs (${mode})`, async (ctx) => {
      if (mode === 'numpy' && !numpy) ctx.skip();
      const cells = chapterForGradserve();
      const env = pythonEnv(server.url, { GRADSERVE_SEED: SEED, ...(mode === 'no numpy' ? { BROKEN_NUMPY: '1' } : {}) });
      const run = await runCells([...cells, { n: 'probe', code: PROBE }], env);
      const errors = run.results.filter((r) => r.error);
      expect(errors, run.stderr + errors.map((e) => e.error).join('\n')).toEqual([]);
      expect(run.results).toHaveLength(cells.length + 1);

      for (const cell of cells) {
        const got = run.results.find((r) => r.n === cell.n)!;
        expect(got.display, `Out[${cell.n}]`).toBe(cell.out === undefined ? null : device(cell.out));
        expect(got.stdout, `print output of In [${cell.n}]`).toBe(cell.printed ?? '');
      }

      const probe = run.results.at(-1)!.stdout.trim().split('\n');
      // seed 0: a > 0, so f took the `c = b` branch, and a.grad == c / a == 2**26 exactly
      expect(probe[0]).toBe(`True True ${2 ** 26}.0 ${2 ** 26}.0`);
      expect(probe[1]).toBe('True'); // only x, y, a and c are bound: nothing left by the loop
      expect(run.code).toBe(0);
    }, 60_000);
  }

  it('without numpy, the client really runs without numpy', async () => {
    const run = await runCells(
      [{ n: 1, code: 'import sys, gradserve\nm = sys.modules["gradserve.ndarray"]  # gradserve.ndarray itself is nd, as mx.ndarray is\nprint(m.np is None)\nprint("numpy" in sys.modules and sys.modules["numpy"] is not None)\n' }],
      pythonEnv(server.url, { BROKEN_NUMPY: '1' }),
    );
    expect(run.results[0].error).toBeNull();
    expect(run.results[0].stdout).toBe('True\nFalse\n');
  });
});

// The chapter's exercise: `a` a random vector, then a random matrix. c = f(a) is no longer a
// scalar; c.backward() differentiates sum(c), and since f(a) = x * a with one scalar x for the
// whole array (x = 2**k, or 100 * 2**k when sum(a) < 0), a.grad is x everywhere and equals c / a
// elementwise (exactly on the `c = b` branch, within float32 rounding on the other).
const EXERCISE = (f: string) => `
import json
from gradserve import autograd, nd
${f}
def trial(shape):
    a = nd.random.normal(shape=shape)
    a.attach_grad()
    with autograd.record():
        c = f(a)
    c.backward()
    g = a.grad
    ratio = c / a
    flat_g = [v for row in (g.tolist() if len(shape) > 1 else [g.tolist()]) for v in row]
    flat_r = [v for row in (ratio.tolist() if len(shape) > 1 else [ratio.tolist()]) for v in row]
    close = (nd.abs(g - ratio) <= 1e-6 * nd.abs(g)).min().asscalar()
    return {
        'shape': list(c.shape),
        'branch': 'c = b' if a.sum().asscalar() > 0 else 'c = 100 * b',
        'x': flat_g[0],
        'same_x': all(v == flat_g[0] for v in flat_g),
        'max_rel_err': max(abs(u - v) / abs(u) for u, v in zip(flat_g, flat_r)),
        'server_close': close,
        'equal': (g == ratio).tolist(),
    }

out = [trial((5,)) for _ in range(6)] + [trial((3, 4)) for _ in range(6)]
print(json.dumps(out))
`;

describe("the chapter's exercise: a random vector and a random matrix for a", () => {
  for (const mode of ['numpy', 'no numpy'] as const) {
    it(`a.grad == c / a elementwise within 1e-6 (${mode})`, async (ctx) => {
      if (mode === 'numpy' && !numpy) ctx.skip();
      const f = chapterCells().find((c) => c.code.startsWith('def f(a):'))!.code;
      const env = pythonEnv(server.url, { GRADSERVE_SEED: '7', ...(mode === 'no numpy' ? { BROKEN_NUMPY: '1' } : {}) });
      const run = await runCells([{ n: 1, code: EXERCISE(f) }], env);
      expect(run.results[0]?.error ?? null, run.stderr).toBeNull();
      const trials = JSON.parse(run.results[0].stdout) as {
        shape: number[]; branch: string; x: number; same_x: boolean; max_rel_err: number; server_close: number;
      }[];
      expect(trials).toHaveLength(12);
      for (const t of trials) {
        expect(t.same_x).toBe(true);
        expect(t.max_rel_err).toBeLessThanOrEqual(1e-6);
        expect(t.server_close).toBe(1);
        const k = Math.log2(t.branch === 'c = b' ? t.x : t.x / 100);
        expect(Number.isInteger(k), `x = ${t.x} on ${t.branch}`).toBe(true);
      }
      expect(trials.slice(0, 6).every((t) => t.shape.join() === '5')).toBe(true);
      expect(trials.slice(6).every((t) => t.shape.join() === '3,4')).toBe(true);
      // the fixed seed exercises both branches of f
      expect(new Set(trials.map((t) => t.branch))).toEqual(new Set(['c = b', 'c = 100 * b']));
    }, 60_000);
  }
});
