/**
 * The example notebooks (examples/*.ipynb) executed by real Jupyter (Debian's nbconvert and
 * ipykernel) against a real server, as a user's "Run all" would, then exported to HTML the way
 * notebooks are shared: no cell may fail, and each shows what it claims.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../helpers/process.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { root } from './python.js';

const JUPYTER = '/usr/bin/jupyter';

interface Output { output_type: string; text?: string | string[]; data?: Record<string, string | string[]>; ename?: string; evalue?: string }
interface Notebook { cells: { cell_type: string; outputs?: Output[] }[] }

const join_ = (t: string | string[] | undefined) => (Array.isArray(t) ? t.join('') : t ?? '');
/** Everything the notebook's cells printed or displayed as text, in order. */
const texts = (nb: Notebook) => nb.cells.flatMap((c) => c.outputs ?? []).map((o) => join_(o.text) || join_(o.data?.['text/plain'])).join('\n');
const svgs = (nb: Notebook) => nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.['image/svg+xml']).length;

let srv: TestServer;
let out: string;
beforeAll(async () => {
  if (!existsSync(JUPYTER)) throw new Error('Jupyter is missing: apt-get install jupyter-nbconvert python3-ipykernel python3-nbclient (npm test installs them when run as root)');
  srv = await startServer();
  out = mkdtempSync(join(tmpdir(), 'gradserve-notebooks-'));
});
afterAll(async () => {
  await srv?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

async function execute(name: string, env: Record<string, string> = {}): Promise<Notebook> {
  const r = await runProcess(JUPYTER, ['nbconvert', '--to', 'notebook', '--execute', '--ExecutePreprocessor.timeout=300', '--output-dir', out, join(root, 'examples', name)], {
    cwd: join(root, 'examples'),
    env: { ...process.env, GRADSERVE_URL: srv.url, PYDEVD_DISABLE_FILE_VALIDATION: '1', ...env },
  });
  expect(r.code, r.stderr).toBe(0);
  const nb = JSON.parse(readFileSync(join(out, name), 'utf8')) as Notebook;
  const errors = nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === 'error');
  expect(errors.map((e) => `${e.ename}: ${e.evalue}`)).toEqual([]);
  return nb;
}

describe('example notebooks, run by Jupyter', () => {
  it('autograd-chapter.ipynb: gradients check, the tape is drawn with the notebook\'s names, and the HTML export keeps it', async () => {
    const nb = await execute('autograd-chapter.ipynb');
    const text = texts(nb);
    expect(text).toContain('gradient is 4x: True');
    expect(text).toContain('gradient equals out / v: True');
    expect(svgs(nb)).toBe(1);
    const drawing = join_(nb.cells.flatMap((c) => c.outputs ?? []).find((o) => o.data?.['image/svg+xml'])!.data!['image/svg+xml']);
    expect(drawing.startsWith('<svg')).toBe(true);
    expect(drawing).toMatch(/>x[ <]/);
    // The same picture as PNG beside it, for an untrusted notebook or an exporter without SVG.
    const bundle = nb.cells.flatMap((c) => c.outputs ?? []).find((o) => o.data?.['image/svg+xml'])!.data!;
    expect(Buffer.from(join_(bundle['image/png']), 'base64').subarray(1, 4).toString('latin1')).toBe('PNG');
    const html = await runProcess(JUPYTER, ['nbconvert', '--to', 'html', join(out, 'autograd-chapter.ipynb')], { cwd: out, env: process.env });
    expect(html.code, html.stderr).toBe(0);
    const page = readFileSync(join(out, 'autograd-chapter.html'), 'utf8');
    expect(page).toContain('<svg width="100%"');
    expect(page).not.toContain('<?xml version');
  }, 240_000);

  it('fashion-mnist.ipynb: trains softmax regression past 70% accuracy and plots loss and accuracy per epoch', async () => {
    const nb = await execute('fashion-mnist.ipynb', { EXAMPLE_IMAGES: '10000', EXAMPLE_EPOCHS: '2' });
    const epochs = [...texts(nb).matchAll(/epoch (\d+): loss ([\d.]+), accuracy ([\d.]+)/g)].map((m) => ({ loss: Number(m[2]), acc: Number(m[3]) }));
    expect(epochs).toHaveLength(2);
    expect(epochs[1].loss).toBeLessThan(epochs[0].loss);
    expect(epochs[1].acc).toBeGreaterThan(0.7);
    expect(svgs(nb)).toBe(1);
  }, 300_000);
});
