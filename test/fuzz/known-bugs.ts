/**
 * Server bugs the fuzzer has found and reported, not yet fixed. The vitest fuzz suite counts
 * them without failing (so `npm test` stays meaningful for everything else); `npm run fuzz`
 * still counts them as failures. Remove an entry once the server is fixed: the suite then
 * fails again if the bug comes back. Fixed findings move to regressions.test.ts.
 *
 * Each entry says how to reproduce it with one request. None is open today.
 */
import type { Finding } from './harness.js';

const KNOWN: { id: string; matches: (f: Finding) => boolean }[] = [];

/** The id of the known bug a finding is, or null for a new finding. */
export function knownBug(f: Finding): string | null {
  return KNOWN.find((k) => k.matches(f))?.id ?? null;
}
