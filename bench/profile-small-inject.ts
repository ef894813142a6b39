/**
 * Server-side cost of one small-op request, without sockets or a load generator (fastify inject,
 * sequential): ours (the compiled app: `npm run build` first) against a bare fastify route with
 * the same body. RL=0 turns rate limiting off, to see its share.
 *   node --import tsx bench/profile-small-inject.ts [requests]
 */
import Fastify from 'fastify';
import { buildApp } from '../dist/src/app.js';
import { loadConfig } from '../dist/src/config.js';
import { nativeBackend } from '../dist/src/engine/native.js';

const n = Number(process.argv[2] ?? 20000);
const env = { GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_RATE_LIMIT_MAX: process.env.RL ?? '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' };
const { app } = await buildApp({ config: loadConfig(env), backend: nativeBackend });
await app.ready();
const s = (await app.inject({ method: 'POST', url: '/v1/sessions', payload: {} })).json();
const headers = { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' };
await app.inject({ method: 'POST', url: `/v1/sessions/${s.id}/arrays`, payload: { name: 'x', data: [1, 2, 3] }, headers });
const body = JSON.stringify({ expr: 'y = x + 1' });

const bare = Fastify({ logger: false });
bare.post('/v1/sessions/:sid/ops', async (req) => ({ outputs: {}, echo: (req.body as { expr?: string }).expr?.length ?? 0 }));
await bare.ready();

async function time(name: string, a: typeof bare) {
  const url = `/v1/sessions/${s.id}/ops`;
  for (let i = 0; i < 2000; i++) await a.inject({ method: 'POST', url, payload: body, headers });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await a.inject({ method: 'POST', url, payload: body, headers });
  const us = (performance.now() - t0) * 1000 / n;
  console.log(`${name}: ${us.toFixed(1)} µs per request`);
  return us;
}
for (let r = 0; r < 2; r++) {
  const o = await time('ours', app as unknown as typeof bare);
  const b = await time('bare', bare);
  console.log(`ratio bare/ours ${(b / o).toFixed(2)}`);
}
await app.close();
await bare.close();
