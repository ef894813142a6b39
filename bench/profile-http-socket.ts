/**
 * The 1000-op chain through a real socket on 127.0.0.1, with node:http and with fetch, to tell
 * the server's cost from the client's:  node --import tsx bench/profile-http-socket.ts [iterations]
 */
import http from 'node:http';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from '../src/engine/native.js';

const N = 1000;
const iterations = Number(process.argv[2] ?? 50);
const config = loadConfig({ GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_RATE_LIMIT_MAX: '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
const { app } = await buildApp({ config, backend: nativeBackend });
let serverMs = 0;
await app.listen({ host: '127.0.0.1', port: 0 });
// From the request's headers to the end of the answer, as the server sees it.
app.server.prependListener('request', (_req, res) => {
  const t0 = performance.now();
  res.on('finish', () => { serverMs += performance.now() - t0; });
});
const addr = app.server.address();
const port = typeof addr === 'object' && addr ? addr.port : 0;
const url = `http://127.0.0.1:${port}`;
const agent = new http.Agent({ keepAlive: true });

function post(path: string, body: string, token?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: {
      'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(token ? { authorization: `Bearer ${token}` } : {}),
    } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const s = JSON.parse((await post('/v1/sessions', '{}')).text);
const base = `/v1/sessions/${s.id}`;
await post(`${base}/arrays`, JSON.stringify({ name: 'x', data: [1] }), s.token);
await post(`${base}/arrays/x/attach-grad`, '{}', s.token);
const chain: unknown[] = [{ op: 'multiply', args: ['x', 1.0001], out: 'y' }];
for (let i = 1; i < N; i++) chain.push({ op: 'multiply', args: ['y', 1.0001], out: 'y' });
const body = JSON.stringify({ ops: [{ op: 'scope', kind: 'record', body: chain }, { op: 'backward', args: ['y'] }] });

async function measure(name: string, once: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 5; i++) await once();
  serverMs = 0;
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const med = times[times.length >> 1];
  console.log(`${name}: median ${med.toFixed(2)} ms per request (${(med * 1000 / N).toFixed(2)} µs per op); server: ${(serverMs / iterations).toFixed(2)} ms mean`);
}
await measure('node:http', async () => {
  const r = await post(`${base}/ops`, body, s.token);
  if (r.status !== 200) throw new Error(r.text);
});
await measure('fetch', async () => {
  const r = await fetch(`${url}${base}/ops`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` }, body });
  await r.json();
});
agent.destroy();
await app.close();
