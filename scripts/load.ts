/**
 * npm run load: a bounded load run against a real server process on 127.0.0.1 (autocannon).
 *
 *   phase 1  50 sessions send sustained small ops (`y = x * 2 + 1`), one connection each;
 *   phase 2  the same, while one more session runs 1024x1024 matrix products back to back.
 *
 * Prints a Markdown table: throughput, latency percentiles of the small ops in both phases, errors,
 * and what the heavy session got done. Exit code 1 if the small ops saw any error or non-2xx.
 * Not part of `npm test`: timings depend on the machine.
 *
 *   LOAD_SECONDS=15 LOAD_SESSIONS=50 LOAD_MATMUL=1024 npm run load
 *   GRADSERVE_BACKEND=reference npm run load     (without the native engine)
 */
import { createRequire } from 'node:module';
import { spawnServer } from '../test/helpers/spawn.js';
import { call } from '../test/helpers/http.js';

const SECONDS = Number(process.env.LOAD_SECONDS ?? 15);
const SESSIONS = Number(process.env.LOAD_SESSIONS ?? 50);
const MATMUL = Number(process.env.LOAD_MATMUL ?? 1024);

// autocannon ships no types; this is the part of its API used here.
interface Histogram { average: number; mean: number; p50: number; p90: number; p99: number; max: number }
interface Result {
  requests: Histogram & { total: number };
  latency: Histogram;
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  statusCodeStats?: Record<string, { count: number }>;
}
interface Req { method?: string; path?: string; headers?: Record<string, string>; body?: string }
interface Options {
  url: string;
  connections: number;
  duration: number;
  pipelining?: number;
  requests: { setupRequest: (req: Req, context: Record<string, unknown>) => Req }[];
}
const autocannon = createRequire(import.meta.url)('autocannon') as (o: Options) => Promise<Result>;

const server = await spawnServer({ GRADSERVE_LOG_LEVEL: 'warn' });
const backend = process.env.GRADSERVE_BACKEND ?? 'native';
console.error(`load: server ${server.url} (pid ${server.proc.pid}, backend ${backend}); ${SESSIONS} sessions, ${SECONDS} s per phase`);

interface Sess { sid: string; token: string }
async function open(setup: string): Promise<Sess> {
  const r = await call(server.url, 'POST', '/v1/sessions', null, { seed: 1 });
  if (r.status !== 201) throw new Error(`create session: ${r.status} ${JSON.stringify(r.json)}`);
  const s = { sid: r.json.id, token: r.json.token };
  const o = await call(server.url, 'POST', `/v1/sessions/${s.sid}/ops`, s.token, { expr: setup });
  if (o.status !== 200) throw new Error(`setup: ${o.status} ${JSON.stringify(o.json)}`);
  return s;
}

const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => open('x = nd.ones((4,))')));
const body = JSON.stringify({ expr: 'y = x * 2 + 1' });

function smallOps(): Promise<Result> {
  let next = 0;
  return autocannon({
    url: server.url,
    connections: SESSIONS,
    duration: SECONDS,
    requests: [{
      // One session per connection: each connection is one client with its own token.
      setupRequest: (req, ctx) => {
        ctx.s ??= sessions[next++ % sessions.length];
        const s = ctx.s as Sess;
        return { ...req, method: 'POST', path: `/v1/sessions/${s.sid}/ops`, headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }, body };
      },
    }],
  });
}

/** The heavy client: matrix products back to back until told to stop. */
async function heavy(stop: () => boolean): Promise<{ done: number; errors: number; ms: number[] }> {
  const s = await open(`a = nd.random.normal(shape=(${MATMUL}, ${MATMUL})); b = nd.random.normal(shape=(${MATMUL}, ${MATMUL}))`);
  const ms: number[] = [];
  let errors = 0;
  while (!stop()) {
    const t = performance.now();
    const r = await call(server.url, 'POST', `/v1/sessions/${s.sid}/ops`, s.token, { expr: 'c = nd.dot(a, b)' });
    ms.push(performance.now() - t);
    if (r.status !== 200) errors++;
  }
  return { done: ms.length, errors, ms };
}

// A short warm-up so that JIT and first-allocation costs do not land in phase 1.
const warm = sessions[0];
await autocannon({
  url: server.url, connections: 10, duration: 2,
  requests: [{ setupRequest: (req) => ({ ...req, method: 'POST', path: `/v1/sessions/${warm.sid}/ops`, headers: { authorization: `Bearer ${warm.token}`, 'content-type': 'application/json' }, body }) }],
});

const phase1 = await smallOps();
let stopping = false;
const heavyRun = heavy(() => stopping);
const phase2 = await smallOps();
stopping = true;
const hv = await heavyRun;
const rss = server.rss();
const exit = await server.stop();

const f = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 0) : '-');
const sorted = [...hv.ms].sort((a, b) => a - b);
const hp = (q: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
const errs = (r: Result) => `${r.errors} / ${r.timeouts} / ${r.non2xx}`;

console.log(`\n### gradserve load (${backend} backend, ${SESSIONS} sessions, ${SECONDS} s per phase, ${new Date().toISOString()})\n`);
console.log('| phase | small-op req/s | p50 ms | p90 ms | p99 ms | max ms | errors / timeouts / non-2xx |');
console.log('|---|---|---|---|---|---|---|');
console.log(`| small ops only | ${f(phase1.requests.average)} | ${f(phase1.latency.p50)} | ${f(phase1.latency.p90)} | ${f(phase1.latency.p99)} | ${f(phase1.latency.max)} | ${errs(phase1)} |`);
console.log(`| + one session doing ${MATMUL}x${MATMUL} dot in a loop | ${f(phase2.requests.average)} | ${f(phase2.latency.p50)} | ${f(phase2.latency.p90)} | ${f(phase2.latency.p99)} | ${f(phase2.latency.max)} | ${errs(phase2)} |`);
console.log(`\nheavy session: ${hv.done} products of ${MATMUL}x${MATMUL} in ${SECONDS} s (${hv.errors} errors), latency p50 ${f(hp(0.5))} ms, p99 ${f(hp(0.99))} ms, max ${f(sorted[sorted.length - 1])} ms`);
console.log(`server rss at the end ${(rss / 2 ** 20).toFixed(0)} MiB; exit code ${exit}`);

const bad = phase1.errors + phase1.timeouts + phase1.non2xx + phase2.errors + phase2.timeouts + phase2.non2xx;
process.exit(bad || exit !== 0 ? 1 : 0);
