/**
 * Helpers for the Python client tests: the chapter's cells, and running python3 against a server.
 */
import { runProcess, type Finished } from '../helpers/process.js';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const clientDir = join(root, 'clients', 'python');
/** The seed chapter (d2l "Automatic Gradient"), kept in the repository; see its SOURCE.md. */
export const chapterPath = join(root, 'test', 'fixtures', 'd2l-automatic-gradient', 'chapter.txt');
export const runnerPath = join(root, 'test', 'clients', 'jupyter_runner.py');
/** Put first on PYTHONPATH, this makes `import numpy` fail, as on a machine where it is broken. */
export const brokenNumpyDir = join(root, 'test', 'clients', 'fixtures', 'broken-numpy');
export const PYTHON = process.env.PYTHON ?? 'python3';

export interface Cell {
  n: number;
  code: string;
  /** What Jupyter displays for the cell's last expression (the Out[n] block), if any. */
  out?: string;
  /** What the cell prints (stream output), if any. */
  printed?: string;
}

/** Lines printed by `print` right after a cell's code in the text dump of the page. */
const OUTPUT_LINE = /^(True|False|None|[-+]?\d[\d.eE+-]*|\[.*|<NDArray .*>)$/;

/**
 * The `In [n]:` cells of the chapter, with their `Out[n]:` blocks and print output.
 * A cell's code runs from the line after `In [n]:` to the next blank line or `Out[n]:` line; in that run, trailing
 * lines that look like printed values (True, numbers, ...) are the cell's print output when the
 * cell calls print. An `Out[n]:` block is a blank line (MXNet's repr starts with a newline) and
 * the lines up to the next blank line.
 */
export function chapterCells(text = readFileSync(chapterPath, 'utf8')): Cell[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const cells: Cell[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^In \[(\d+)\]:\s*$/.exec(lines[i]);
    if (!m) continue;
    const n = Number(m[1]);
    let j = i + 1;
    const block: string[] = [];
    while (j < lines.length && lines[j].trim() !== '' && !/^Out\[\d+\]:/.test(lines[j])) block.push(lines[j++]);
    let printed: string | undefined;
    if (block.some((l) => /\bprint\(/.test(l))) {
      let k = block.length;
      while (k > 0 && OUTPUT_LINE.test(block[k - 1])) k--;
      if (k < block.length) printed = block.splice(k).join('\n') + '\n';
    }
    const cell: Cell = { n, code: block.join('\n') + '\n', printed };
    while (j < lines.length && lines[j].trim() === '') j++;
    if (lines[j] === `Out[${n}]:`) {
      j++;
      const out: string[] = [];
      if (lines[j]?.trim() === '') j++;
      while (j < lines.length && lines[j].trim() !== '') out.push(lines[j++]);
      cell.out = '\n' + out.join('\n');
    }
    cells.push(cell);
    i = j - 1;
  }
  return cells;
}

export interface CellResult {
  n: number;
  stdout: string;
  display: string | null;
  error: string | null;
}

export interface RunResult {
  code: number | null;
  results: CellResult[];
  stdout: string;
  stderr: string;
}

/** Environment for python3 with the client importable and pointed at `url`. */
export function pythonEnv(url: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const paths = [clientDir];
  if (extra.BROKEN_NUMPY === '1') paths.unshift(brokenNumpyDir);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYTHONPATH: [...paths, process.env.PYTHONPATH].filter(Boolean).join(':'),
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    GRADSERVE_URL: url,
    ...extra,
  };
  delete env.BROKEN_NUMPY;
  return env;
}

export function runPython(args: string[], env: NodeJS.ProcessEnv, cwd = root): Promise<Finished> {
  return runProcess(PYTHON, args, { env, cwd });
}

/** Runs cells in ONE python3 process, Jupyter-style (see jupyter_runner.py). */
export async function runCells(cells: { n: number | string; code: string }[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gradserve-py-'));
  const file = join(dir, 'cells.json');
  writeFileSync(file, JSON.stringify(cells));
  const r = await runPython([runnerPath, file], env);
  const results = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as CellResult);
  return { ...r, results };
}

/** Whether numpy imports in this python3 (it is optional for the client). */
export async function hasNumpy(): Promise<boolean> {
  const r = await runPython(['-c', 'import numpy; numpy.zeros(1)'], { ...process.env });
  return r.code === 0;
}
