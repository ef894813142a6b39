/**
 * The Python client installs with the one command the README gives, on Debian's Python, whose
 * environment is externally managed (PEP 668) and which has no index to download from: into the
 * user's site-packages (a temporary PYTHONUSERBASE here), then imports from anywhere and works.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../helpers/process.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { clientDir } from './python.js';

let srv: TestServer;
let base: string;
beforeAll(async () => {
  srv = await startServer();
  base = mkdtempSync(join(tmpdir(), 'gradserve-userbase-'));
});
afterAll(async () => {
  await srv?.close();
  rmSync(base, { recursive: true, force: true });
});

describe('installing the Python client', () => {
  it('python3 -m pip install --user --break-system-packages --no-build-isolation ./clients/python', async () => {
    const env = { ...process.env, PYTHONUSERBASE: base, PIP_NO_INDEX: '1' };
    const install = await runProcess('/usr/bin/python3', ['-m', 'pip', 'install', '--user', '--break-system-packages', '--no-build-isolation', clientDir], { env, cwd: tmpdir() });
    expect(install.code, install.stderr + install.stdout).toBe(0);
    const use = await runProcess('/usr/bin/python3', ['-c', [
      'import gradserve as mx',
      'from gradserve import nd',
      `mx.connect(${JSON.stringify(srv.url)})`,
      'print(mx.__file__)',
      'print(nd.array([1, 2, 3]).sum().asscalar())',
    ].join('\n')], { env, cwd: tmpdir() });
    expect(use.code, use.stderr).toBe(0);
    expect(use.stdout).toContain(base);
    expect(use.stdout.trim().split('\n').pop()).toBe('6.0');
  }, 120_000);
});
