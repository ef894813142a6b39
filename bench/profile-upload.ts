/**
 * Array uploads over a real socket (fetch), the three encodings of bench/run.ts's `upload` section,
 * each at 1e6 float32, with the median of several rounds:
 *   node --import tsx [--cpu-prof --cpu-prof-dir=/tmp/prof] bench/profile-upload.ts [rounds] [case...]
 * cases: base64, json, npy (all by default).
 */
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from '../src/engine/native.js';

const rounds = Number(process.argv[2] ?? 7);
const only = new Set(process.argv.slice(3));
const config = loadConfig({ GRADSERVE_PORT: '0', GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_RATE_LIMIT_MAX: '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
const { app } = await buildApp({ config, backend: nativeBackend });
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

async function post(path: string, body: string | Uint8Array, contentType = 'application/json', token = ''): Promise<any> {
  const r = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body as string,
  });
  const j = await r.json();
  if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(j).slice(0, 300)}`);
  return j;
}

const s = await post('/v1/sessions', '{}');
const n = 1_000_000;
const values = new Float32Array(n);
for (let i = 0; i < n; i++) values[i] = Math.fround(Math.sin(i) * 3);
const npyOf = (v: Float32Array) => {
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${v.length},), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length + pad + 1, 8);
  return Buffer.concat([head, Buffer.from(header + ' '.repeat(pad) + '\n', 'latin1'), Buffer.from(v.buffer)]);
};
const b64 = JSON.stringify({ name: 'u', shape: [n], dtype: 'float32', data_base64: Buffer.from(values.buffer).toString('base64') });
const json = JSON.stringify({ name: 'u', dtype: 'float32', data: Array.from(values) });
const npy = new Uint8Array(npyOf(values));
const path = `/v1/sessions/${s.id}/arrays`;
const cases: [string, () => Promise<unknown>][] = [
  ['base64', () => post(path, b64, 'application/json', s.token)],
  ['json', () => post(path, json, 'application/json', s.token)],
  ['npy', () => post(`${path}?name=u`, npy, 'application/x-npy', s.token)],
];
const t0 = performance.now();
JSON.parse(json);
console.log(`JSON.parse of the 1e6 list alone: ${(performance.now() - t0).toFixed(1)} ms`);
for (const [name, fn] of cases) {
  if (only.size && !only.has(name)) continue;
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(`1e6 float32 ${name.padEnd(7)} median ${times[times.length >> 1].toFixed(1)} ms (min ${times[0].toFixed(1)})`);
}
await app.close();
