/**
 * Peak resident memory of an MLP training run over HTTP against what its arrays need.
 *
 *   node --import tsx --expose-gc bench/mlp-memory.ts [batch] [hidden] [steps]
 *
 * A server (the real app, on 127.0.0.1) runs 784-hidden-10 training steps (forward, softmax cross
 * entropy, backward, four sgd_updates) in one session. "Need" is the most bytes the session held
 * at any moment (parameters, inputs, gradients, activations, values saved for backward and
 * temporaries); "resident" is how far the process's peak RSS (VmHWM, reset just before the run)
 * rose above its RSS before the session existed. Prints one JSON line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from '../src/engine/native.js';

const batch = Number(process.argv[2] ?? 256);
const hidden = Number(process.argv[3] ?? 256);
const steps = Number(process.argv[4] ?? 10);

/** A field of /proc/self/status in bytes (VmRSS, VmHWM). */
function status(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

const config = loadConfig({ GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_RATE_LIMIT_MAX: '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
const { app, services } = await buildApp({ config, backend: nativeBackend });
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

async function post(path: string, body: unknown, token?: string): Promise<Record<string, unknown>> {
  const r = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const j = (await r.json()) as Record<string, unknown>;
  if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

// Warm the server up (JIT, pools) with a throwaway session, so the baseline is a working server.
{
  const s = await post('/v1/sessions', {});
  await post(`/v1/sessions/${s.id}/ops`, { expr: 'x = ones((64, 64)); y = dot(x, x)' }, s.token as string);
  await fetch(`${url}/v1/sessions/${s.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${s.token}` } });
}
gc();
const rssBase = status('VmRSS');
const heapBase = process.memoryUsage().heapTotal;

const s = await post('/v1/sessions', { seed: 1 });
const sid = s.id as string;
const token = s.token as string;
const ops = (body: unknown) => post(`/v1/sessions/${sid}/ops`, body, token);
await ops({
  ops: [
    { op: 'random.normal', attrs: { shape: [batch, 784], scale: 1 }, out: 'X' },
    { op: 'random.normal', attrs: { shape: [hidden, 784], scale: 0.05 }, out: 'W1' },
    { op: 'zeros', attrs: { shape: [hidden] }, out: 'b1' },
    { op: 'random.normal', attrs: { shape: [10, hidden], scale: 0.05 }, out: 'W2' },
    { op: 'zeros', attrs: { shape: [10] }, out: 'b2' },
    { op: 'array', args: [Array.from({ length: batch }, (_, i) => (i * 7) % 10)], out: 'Y' },
  ],
});
for (const p of ['W1', 'b1', 'W2', 'b2']) await post(`/v1/sessions/${sid}/arrays/${p}/attach-grad`, {}, token);
const step = {
  ops: [
    { op: 'scope', kind: 'record', body: [
      { op: 'FullyConnected', args: ['X', 'W1', 'b1'], attrs: { num_hidden: hidden }, out: 'h1' },
      { op: 'relu', args: ['h1'], out: 'a1' },
      { op: 'FullyConnected', args: ['a1', 'W2', 'b2'], attrs: { num_hidden: 10 }, out: 'z' },
      { op: 'softmax_cross_entropy', args: ['z', 'Y'], out: 'loss' },
    ] },
    { op: 'backward', args: ['loss'] },
    ...['W1', 'b1', 'W2', 'b2'].map((p) => ({ op: 'sgd_update', args: [p, `${p}.grad`], attrs: { lr: 0.01 } })),
  ],
  fetch: ['loss'],
};
for (let i = 0; i < 2; i++) await ops(step);

const session = [...services.store.all()].find((x) => x.id === sid);
if (!session) throw new Error('session not found');
const memory = session.memory as unknown as { bytes: number; peakBytes: number };
gc();
memory.peakBytes = memory.bytes;
// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
writeFileSync('/proc/self/clear_refs', '5');
for (let i = 0; i < steps; i++) await ops(step);
const peakRss = status('VmHWM');
const resident = peakRss - rssBase;
console.log(JSON.stringify({
  batch, hidden, steps,
  needBytes: memory.peakBytes,
  residentBytes: resident,
  ratio: resident / memory.peakBytes,
  rssBase, peakRss,
  heapGrowth: process.memoryUsage().heapTotal - heapBase,
}));
await app.close();
