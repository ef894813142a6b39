/**
 * Profiles small-op requests under load (`y = x + 1` on 8 sessions, autocannon in a child
 * process), as the bench's http section runs them:
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-small-ops.ts [seconds]
 */
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { nativeBackend } from '../src/engine/native.js';
import { runLoad } from './load.js';

const seconds = Number(process.argv[2] ?? 5);
const config = loadConfig({ GRADSERVE_PORT: '0', GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_RATE_LIMIT_MAX: '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
const { app } = await buildApp({ config, backend: nativeBackend });
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
const sessions: { id: string; token: string }[] = [];
for (let i = 0; i < 8; i++) {
  const s = (await (await fetch(`${url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { id: string; token: string };
  await fetch(`${url}/v1/sessions/${s.id}/arrays`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` }, body: JSON.stringify({ name: 'x', data: [1, 2, 3] }) });
  sessions.push(s);
}
const r = await runLoad({
  url, body: JSON.stringify({ expr: 'y = x + 1' }), connections: 16, seconds,
  paths: sessions.map((s) => `/v1/sessions/${s.id}/ops`), headers: sessions.map((s) => ({ authorization: `Bearer ${s.token}` })),
});
console.log(`${r.rps.toFixed(0)} req/s, p99 ${r.p99} ms, errors ${r.errors}`);
await app.close();
