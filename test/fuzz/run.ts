/**
 * npm run fuzz: 100,000 generated requests (FUZZ_CASES) against a real gradserve process with
 * tight limits, checking the property of harness.ts on every answer and the witness session
 * every FUZZ_WITNESS_EVERY cases. Prints the count of cases and failures, and for each kind of
 * failure the smallest request that showed it (and the server's log lines about it).
 *
 *   FUZZ_CASES=100000 FUZZ_SEED=<n> FUZZ_CONCURRENCY=4 [FUZZ_ONLY=ops-expr,random] npm run fuzz
 *
 * Exit code 1 when anything failed. Runs with GRADSERVE_BACKEND from the environment
 * (native by default; reference when the addon is not built).
 */
import fc from 'fast-check';
import { spawnServer, GC_NODE_ARGS } from '../helpers/spawn.js';
import { knownBug } from './known-bugs.js';
import { FUZZ_ENV, FuzzTarget, fetchOps, loggedMessage, requestArb, showRequest, type Finding, type FuzzReq } from './harness.js';
import { call } from '../helpers/http.js';

const CASES = Number(process.env.FUZZ_CASES ?? 100000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 4);
const WITNESS_EVERY = Number(process.env.FUZZ_WITNESS_EVERY ?? 2000);
const BATCH = 1000;

const t0 = Date.now();
// --expose-gc and the SIGWINCH hook of test/helpers/gc-preload.mjs: the memory line at the end is measured after
// a full GC, so growth there is memory the server still holds, not garbage.
const server = await spawnServer(FUZZ_ENV, { nodeArgs: [...GC_NODE_ARGS] });
console.log(`fuzz: ${CASES} cases, seed ${SEED}, concurrency ${CONCURRENCY}, backend ${process.env.GRADSERVE_BACKEND ?? 'native'}, server ${server.url} (pid ${server.proc.pid})`);

const target = new FuzzTarget(server.url, server.output);
await target.setup();
const ops = await fetchOps(server.url);
// FUZZ_ONLY=ops-expr,random narrows the run to some request families (see harness.ts).
const only = process.env.FUZZ_ONLY ? new Set(process.env.FUZZ_ONLY.split(',')) : null;
const arb = requestArb(ops, only ? (k) => only.has(k) : undefined);

const groups = new Map<string, { count: number; smallest: Finding; size: number }>();
let failures = 0;
let done = 0;
let down = false;
const byKind = new Map<string, number>();

function record(f: Finding): void {
  failures++;
  const key = `${knownBug(f) ? `[known: ${knownBug(f)}] ` : ''}${f.kind} | ${f.problem.split('\n')[0].replace(/\d+ ms/, 'N ms')}${f.log ? ` | ${loggedMessage(f.log)}` : ''}`;
  const size = showRequest(f.req).length;
  const g = groups.get(key);
  if (!g) groups.set(key, { count: 1, smallest: f, size });
  else { g.count++; if (size < g.size) { g.smallest = f; g.size = size; } }
}

let nextWitness = WITNESS_EVERY;
for (let b = 0; done < CASES && !down; b++) {
  const n = Math.min(BATCH, CASES - done);
  let reqs: ReturnType<typeof fc.sample<FuzzReq>>;
  try {
    reqs = fc.sample(arb, { numRuns: n, seed: SEED + b });
  } catch (e) {
    // A generator bug is ours, not the server's: say so and go on with the next batch.
    console.log(`  generator failed on batch ${b} (seed ${SEED + b}): ${(e as Error).message}`);
    continue;
  }
  let i = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (i < reqs.length && !down) {
      const req = reqs[i++];
      byKind.set(req.kind, (byKind.get(req.kind) ?? 0) + 1);
      const f = await target.check(req);
      done++;
      if (f) {
        record(f);
        if (f.problem.startsWith('server down')) down = true;
      }
    }
  }));
  if (!down && done >= nextWitness) {
    nextWitness += WITNESS_EVERY;
    const changed = await target.witnessChanged();
    if (changed) { record({ kind: 'witness', problem: changed, req: reqs[reqs.length - 1] }); await target.setup(); }
    const rate = (done / ((Date.now() - t0) / 1000)).toFixed(0);
    console.log(`  ${done} cases, ${failures} failures, ${rate}/s, server rss ${(server.rss() / 2 ** 20).toFixed(0)} MiB`);
  }
}

if (!down) {
  const changed = await target.witnessChanged();
  if (changed) record({ kind: 'witness', problem: changed, req: { kind: 'witness', method: '-', path: '-', target: 'witness', auth: 'none', headers: {} } });
}
const alive = await target.alive();
// Where the server's memory is at the end (a leak under hostile traffic shows here).
if (alive) for (let k = 0; k < 2; k++) { server.proc.kill('SIGWINCH'); await new Promise((r) => setTimeout(r, 500)); }
const metrics = alive ? String((await call(server.url, 'GET', '/metrics')).json) : '';
const m = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
const memLine = `server memory at the end (after a full GC): rss ${(server.rss() / 2 ** 20).toFixed(0)} MiB, heap used ${(m('nodejs_heap_size_used_bytes') / 2 ** 20).toFixed(0)} MiB, external ${(m('nodejs_external_memory_bytes') / 2 ** 20).toFixed(0)} MiB, gradserve_bytes ${m('gradserve_bytes')}, sessions ${m('gradserve_sessions')}`;
const code = await server.stop();
console.log(memLine);

console.log(`\nfuzz done: ${done} cases, ${failures} failures, ${((Date.now() - t0) / 1000).toFixed(1)} s; server ${alive ? 'up until stopped' : 'DOWN'}; exit ${code}`);
console.log(`cases by kind: ${[...byKind].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
console.log(`statuses by kind: ${[...target.statusByKind].map(([k, m]) => `${k} {${[...m].sort((a, b) => a[0] - b[0]).map(([st, n]) => `${st}: ${n}`).join(', ')}}`).join('; ')}`);
console.log(`server time by kind (ms): ${[...target.timeByKind].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n.toFixed(0)}`).join(', ')}`);
for (const s of target.slow) console.log(`slow: ${s.ms.toFixed(0)} ms -> ${s.status}  ${showRequest(s.req).slice(0, 400)}`);
const log = server.output();
for (const [key, g] of groups) {
  console.log(`\n## ${g.count} x ${key}\n  ${showRequest(g.smallest.req)}\n  -> ${g.smallest.status ?? '-'} ${g.smallest.answer ?? g.smallest.problem}`);
  if (g.smallest.log) console.log(`  server log: ${g.smallest.log.slice(0, 1500)}`);
}
if (failures && log.trim()) console.log(`\nserver log (tail):\n${log.slice(-3000)}`);
process.exit(failures || !alive ? 1 : 0);
