/**
 * Peak resident memory of an MLP training run against what its arrays need.
 *
 *   node --import tsx bench/mlp-memory.ts [batch] [hidden] [steps]
 *
 * Our server (the compiled build, in its own process, as `npm start` runs it) trains a
 * 784-hidden-10 MLP over HTTP: forward, softmax cross entropy, backward and four sgd_updates per
 * request. "Need" is the session's peak_bytes (the most bytes it held at once: parameters, inputs,
 * gradients, activations, values saved for backward, temporaries); "resident" is how far the
 * server's peak RSS (VmHWM, reset just before the steps) rose above its RSS before the session
 * existed. Prints one JSON line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { agent, request, startOurs } from './client.js';

const batch = Number(process.argv[2] ?? 256);
const hidden = Number(process.argv[3] ?? 256);
const steps = Number(process.argv[4] ?? 10);

const srv = await startOurs();

/** A field of the server's /proc/<pid>/status, in bytes (VmRSS, VmHWM). */
function status(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${srv.pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${srv.pid}/status`);
  return Number(m[1]) * 1024;
}

async function call(method: string, path: string, body: unknown, token?: string): Promise<Record<string, unknown>> {
  const r = await request(srv.url, method, path, body === null ? null : JSON.stringify(body), {
    'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}),
  });
  if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json as Record<string, unknown>;
}

/** A session holding a 784-H-10 MLP and a batch of B, with one training step per request. */
async function mlpSession(B: number, H: number) {
  const s = await call('POST', '/v1/sessions', { seed: 1 });
  const sid = s.id as string;
  const token = s.token as string;
  const ops = (body: unknown) => call('POST', `/v1/sessions/${sid}/ops`, body, token);
  await ops({
    ops: [
      { op: 'random.normal', attrs: { shape: [B, 784], scale: 1 }, out: 'X' },
      { op: 'random.normal', attrs: { shape: [H, 784], scale: 0.05 }, out: 'W1' },
      { op: 'zeros', attrs: { shape: [H] }, out: 'b1' },
      { op: 'random.normal', attrs: { shape: [10, H], scale: 0.05 }, out: 'W2' },
      { op: 'zeros', attrs: { shape: [10] }, out: 'b2' },
      { op: 'array', args: [Array.from({ length: B }, (_, i) => (i * 7) % 10)], out: 'Y' },
    ],
  });
  for (const p of ['W1', 'b1', 'W2', 'b2']) await call('POST', `/v1/sessions/${sid}/arrays/${p}/attach-grad`, {}, token);
  const step = {
    ops: [
      { op: 'scope', kind: 'record', body: [
        { op: 'FullyConnected', args: ['X', 'W1', 'b1'], attrs: { num_hidden: H }, out: 'h1' },
        { op: 'relu', args: ['h1'], out: 'a1' },
        { op: 'FullyConnected', args: ['a1', 'W2', 'b2'], attrs: { num_hidden: 10 }, out: 'z' },
        { op: 'softmax_cross_entropy', args: ['z', 'Y'], out: 'loss' },
      ] },
      { op: 'backward', args: ['loss'] },
      ...['W1', 'b1', 'W2', 'b2'].map((p) => ({ op: 'sgd_update', args: [p, `${p}.grad`], attrs: { lr: 0.01 } })),
    ],
    fetch: ['loss'],
  };
  return {
    step: () => ops(step),
    peakBytes: async () => (await call('GET', `/v1/sessions/${sid}`, null, token)).peak_bytes as number,
    close: () => call('DELETE', `/v1/sessions/${sid}`, null, token),
  };
}

try {
  // Warm the server up with the same program at a tiny size in a throwaway session: the code paths
  // are compiled and V8's heap has grown to its working size before the baseline, while the tiny
  // arrays leave no large buffers behind to be reused.
  {
    const w = await mlpSession(16, 16);
    for (let i = 0; i < 5; i++) await w.step();
    await w.close();
  }
  const rssBase = status('VmRSS');

  const m = await mlpSession(batch, hidden);
  for (let i = 0; i < 2; i++) await m.step();
  // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
  writeFileSync(`/proc/${srv.pid}/clear_refs`, '5');
  for (let i = 0; i < steps; i++) await m.step();
  const peakRss = status('VmHWM');
  const need = await m.peakBytes();
  const resident = peakRss - rssBase;
  console.log(JSON.stringify({ batch, hidden, steps, needBytes: need, residentBytes: resident, ratio: resident / need, rssBase, peakRss }));
} finally {
  agent.destroy();
  await srv.close();
}
