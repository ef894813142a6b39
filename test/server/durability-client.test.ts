/**
 * Sessions that outlive their process, as a user meets them: a training loop written for MXNet
 * runs in the Python client while its server is killed with SIGKILL at random points and started
 * again on the same port and state directory. The client sends each request of its session again
 * until the server is back (a fresh Idempotency-Key on each POST, so nothing runs twice); the
 * script runs to its end without an error, and every loss it printed and its final weights equal,
 * bit for bit, those of an uninterrupted run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnServer, freePort, type ChildServer } from '../helpers/spawn.js';
import { PYTHON, pythonEnv } from '../clients/python.js';

const servers: ChildServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
});

const STEPS = 40;
const SCRIPT = `
import json
from gradserve import nd, autograd
X = nd.random.normal(shape=(64, 8))
y = nd.random.normal(shape=(64, 1))
w = nd.random.normal(shape=(8, 1)) * 0.1
w.attach_grad()
for i in range(${STEPS}):
    with autograd.record():
        l = ((nd.dot(nd.tanh(X), w) - y) ** 2).mean()
    l.backward()
    w[:] = w - 0.1 * w.grad
    print(json.dumps({'step': i, 'loss': l.asscalar()}), flush=True)
print(json.dumps({'w': w.tolist()}), flush=True)
`;

async function server(dir: string | null, port?: number): Promise<ChildServer> {
  const s = await spawnServer({
    GRADSERVE_RATE_LIMIT_MAX: '0',
    ...(dir ? { GRADSERVE_STATE_DIR: dir, GRADSERVE_STATE_LEASE_MS: '500' } : {}),
  }, { port });
  servers.push(s);
  return s;
}

/** Runs the script against url; calls onLine with each line it prints as it prints it. */
function train(url: string, onLine: (line: string) => void = () => undefined): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gradserve-train-'));
  const file = join(dir, 'train.py');
  writeFileSync(file, SCRIPT);
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [file], { env: pythonEnv(url, { GRADSERVE_SEED: '5' }), stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let buf = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        onLine(line);
      }
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => { rmSync(dir, { recursive: true, force: true }); resolve({ code, lines, stderr }); });
  });
}

describe('a training loop in the Python client, its server killed under it', () => {
  it('runs to its end, bit for bit the uninterrupted run, across SIGKILLs and restarts', { timeout: 180000 }, async () => {
    const plain = await server(null);
    const ref = await train(plain.url);
    expect(ref.code, ref.stderr).toBe(0);
    expect(ref.lines.length).toBe(STEPS + 1);

    const dir = mkdtempSync(join(tmpdir(), 'gradserve-state-'));
    const port = await freePort();
    let srv = await server(dir, port);
    // Killed after these steps have printed, a few milliseconds later (mid-request, most likely).
    const killAt = [6, 17, 29];
    let restarts = Promise.resolve();
    let kills = 0;
    const run = train(srv.url, (line) => {
      const step = (JSON.parse(line) as { step?: number }).step;
      if (step === undefined || !killAt.includes(step)) return;
      restarts = restarts.then(async () => {
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 8)));
        srv.proc.kill('SIGKILL');
        await srv.exited;
        kills++;
        srv = await server(dir, port);
      });
    });
    const got = await run;
    await restarts;
    expect(kills).toBe(killAt.length);
    expect(got.code, got.stderr).toBe(0);
    expect(got.lines).toEqual(ref.lines);
    rmSync(dir, { recursive: true, force: true });
  });
});
