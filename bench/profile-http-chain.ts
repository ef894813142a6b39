/**
 * Profiles the 1000-op scalar chain through the whole HTTP stack (fastify inject: routing, body
 * parsing, validation, the program, serialisation; no socket):
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-http-chain.ts [iterations]
 */
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from '../src/engine/native.js';

const N = 1000;
const iterations = Number(process.argv[2] ?? 100);
const config = loadConfig({ GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_RATE_LIMIT_MAX: '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
const { app } = await buildApp({ config, backend: nativeBackend });
await app.ready();
const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const r = await app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  if (r.statusCode >= 300) throw new Error(`${url}: ${r.statusCode} ${r.body}`);
  return r.json();
};
const s = await post('/v1/sessions', {});
const auth = { authorization: `Bearer ${s.token}` };
const base = `/v1/sessions/${s.id}`;
await post(`${base}/arrays`, { name: 'x', data: [1] }, auth);
await post(`${base}/arrays/x/attach-grad`, {}, auth);
const chain: unknown[] = [{ op: 'multiply', args: ['x', 1.0001], out: 'y' }];
for (let i = 1; i < N; i++) chain.push({ op: 'multiply', args: ['y', 1.0001], out: 'y' });
const body = { ops: [{ op: 'scope', kind: 'record', body: chain }, { op: 'backward', args: ['y'] }] };
const times: number[] = [];
for (let i = 0; i < iterations; i++) {
  const t0 = performance.now();
  await post(`${base}/ops`, body, auth);
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const med = times[times.length >> 1];
console.log(`${N}-op chain fwd+bwd over HTTP (inject): median ${med.toFixed(2)} ms per request, ${(med * 1000 / N).toFixed(2)} µs per op`);
await app.close();
