/**
 * The README's Tour runs: its ```sh blocks, in order, in one bash with real curl against a real
 * listening server, and every answer the README shows (the `# {...}` lines, `...` marking what
 * it leaves out) is found in the output, in order. So the docs cannot rot.
 */
import { runProcess, type Finished } from '../helpers/process.js';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

/** The text of the section under a `## ` heading that starts with `title`, up to the next one. */
function section(title: string): string {
  const start = readme.search(new RegExp(`^## ${title}`, 'm'));
  if (start < 0) throw new Error(`README.md has no "## ${title}" section`);
  const next = readme.slice(start + 3).search(/^## /m);
  return next < 0 ? readme.slice(start) : readme.slice(start, start + 3 + next);
}

function shBlocks(text: string): string[] {
  return [...text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

/** The answers a block shows: comment lines that start with `# {` or `# <digit>`. */
function shownAnswers(blocks: string[]): string[] {
  return blocks.flatMap((b) => b.split('\n').filter((l) => /^# [{\d]/.test(l)).map((l) => l.slice(2)));
}

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Finished> {
  return runProcess('bash', ['-c', script], { cwd, env });
}

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('README Tour', () => {
  const blocks = shBlocks(section('Tour'));

  it('has the chapter\'s cells as sh blocks that use $GRADSERVE_URL', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    const all = blocks.join('\n');
    expect(all).toContain('${GRADSERVE_URL:-http://127.0.0.1:8080}');
    for (const cell of ['x = nd.arange(4).reshape((4, 1))', 'attach-grad', 'y = 2 * nd.dot(x.T, x)', 'backward', 'arrays/x/grad', 'autograd/record', 'a.grad == c / a', 'while']) {
      expect(all, cell).toContain(cell);
    }
  });

  it('runs with real curl and answers what it shows', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gradserve-tour-'));
    // Any failed request (HTTP >= 400) or command stops the script, with the server's answer.
    const prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n';
    const r = await bash(prelude + blocks.join('\n'), cwd, { ...process.env, GRADSERVE_URL: srv.url });
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    const lines = r.stdout.split('\n');

    // Every answer shown, in order: each `...`-separated fragment occurs in one output line.
    let at = 0;
    for (const shown of shownAnswers(blocks)) {
      const fragments = shown.split('...').map((f) => f.trim()).filter(Boolean);
      const found = lines.findIndex((l, i) => i >= at && fragments.every((f) => l.includes(f)));
      expect(found, `README shows ${shown}\nbut the output from line ${at} is:\n${lines.slice(at).join('\n')}`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }

    // The chapter's results, whatever the README chose to show.
    const json = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(json.find((j) => j.name === 'x.grad' && j.data)?.data).toEqual([[0], [4], [8], [12]]);
    const states = json.filter((j) => 'is_training' in j && !('tape' in j)).map((j) => j.is_training);
    expect(states.slice(0, 2)).toEqual([false, true]);
    expect(json.find((j) => j.result)?.result).toMatchObject({ shape: [1], data: [1] });

    // The files it writes: the tape picture and the session file.
    expect(readFileSync(join(cwd, 'tape.svg'), 'utf8')).toMatch(/<svg[\s\S]*>dot<[\s\S]*<\/svg>/);
    expect(existsSync(join(cwd, 'session.safetensors'))).toBe(true);
    const file = readFileSync(join(cwd, 'session.safetensors'));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString());
    expect(Object.keys(header)).toEqual(expect.arrayContaining(['a', 'a.grad', 'x', 'x.grad', 'c']));
  }, 120_000);
});
