/**
 * Property-based fuzzing of every endpoint against a real gradserve process (test/helpers/spawn.ts)
 * with tight limits: random and mutated bodies, op programs from the live op table, expressions
 * from the grammar, uploads, odd content types, tokens and paths. The property (harness.ts): no
 * 5xx, no hang, the process stays up, every error is problem+json with a code, nothing under the
 * witness's path answers without its token, and the witness is byte-identical afterwards.
 *
 * A few thousand cases here; `npm run fuzz` runs 100,000. FUZZ_SEED=<n> replays a run; the seed
 * of a failing run is printed by fast-check. Findings listed in known-bugs.ts are reported but
 * do not fail the suite until the server is fixed (then their entries are removed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { spawnServer, type ChildServer } from '../helpers/spawn.js';
import { FUZZ_ENV, FuzzTarget, fetchOps, requestArb, showRequest, type FuzzReq } from './harness.js';
import type { OpInfo } from './gen.js';
import { knownBug } from './known-bugs.js';

const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;

let server: ChildServer;
let target: FuzzTarget;
let ops: OpInfo[];
const known = new Map<string, number>();

beforeAll(async () => {
  server = await spawnServer(FUZZ_ENV);
  target = new FuzzTarget(server.url, server.output);
  await target.setup();
  ops = await fetchOps(server.url);
}, 60000);

afterAll(async () => {
  if (known.size) console.warn(`fuzz: known server bugs hit (not failing the suite): ${[...known].map(([k, n]) => `${k} x${n}`).join(', ')}`);
  const alive = await target.alive();
  const code = await server.stop();
  expect(alive).toBe(true);
  // The process drains and exits cleanly after all that.
  expect(code).toBe(0);
});

/** The property for one request: sends it, fails with the request and answer on a violation. */
async function property(req: FuzzReq): Promise<void> {
  const f = await target.check(req);
  if (!f) return;
  const bug = knownBug(f);
  if (bug) { known.set(bug, (known.get(bug) ?? 0) + 1); return; }
  throw new Error(`${f.problem}\n  request: ${showRequest(req)}\n  answer: ${f.status ?? '-'} ${f.answer ?? ''}${f.log ? `\n  server log: ${f.log.slice(0, 2000)}` : ''}`);
}

async function fuzz(only: (kind: string) => boolean, numRuns: number): Promise<void> {
  await fc.assert(fc.asyncProperty(requestArb(ops, only), property), { numRuns: Math.round(numRuns * SCALE), seed, endOnFailure: false });
  // After every family, the witness must be exactly as it was, and the server up.
  expect(await target.witnessChanged()).toBeNull();
  expect(await target.alive()).toBe(true);
}

const T = 120000;

describe('fuzz: no 5xx, problem+json errors, witness untouched', () => {
  it('expressions from the grammar (deep nesting, long input, unicode, odd literals)', { timeout: T }, () =>
    fuzz((k) => k === 'ops-expr', 600));

  it('JSON op programs from the op table (scopes, backward, attach_grad, into, internal ops)', { timeout: T }, () =>
    fuzz((k) => k === 'ops-json', 600));

  it('array uploads: nested, flat, base64, .npy; shapes with zeros, rank up to 6, both dtypes', { timeout: T }, () =>
    fuzz((k) => ['arrays-post', 'arrays-put', 'npy', 'arrays-get', 'arrays-delete'].includes(k), 300));

  it('safetensors imports with hostile headers, Idempotency-Key reuse, odd Authorization spellings', { timeout: T }, () =>
    fuzz((k) => ['import', 'idem-reuse', 'npy'].includes(k), 400));

  it('mutated bodies of every endpoint (fields removed, retyped, oversized, added)', { timeout: T }, () =>
    fuzz((k) => !['ops-expr', 'ops-json', 'random'].includes(k), 500));

  it('random methods, paths, content types and credentials', { timeout: T }, () =>
    fuzz((k) => k === 'random', 300));

  it('everything mixed', { timeout: T }, () => fuzz(() => true, 300));
});
