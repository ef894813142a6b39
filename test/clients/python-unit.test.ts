/**
 * The Python client's own unit tests (clients/python/tests, stdlib unittest) against a real
 * server, with numpy (when it imports) and with numpy made unimportable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { clientDir, hasNumpy, pythonEnv, runPython } from './python.js';

let server: TestServer;
let numpy = false;

beforeAll(async () => {
  // Small body and base64 limits, so that the client's split uploads, its reading of a 413 and its
  // .npy reads of large arrays are exercised.
  server = await startServer({ GRADSERVE_MAX_BODY_BYTES: String(4 << 20), GRADSERVE_MAX_BASE64_BYTES: String(8 << 20) });
  numpy = await hasNumpy();
});
afterAll(async () => {
  await server?.close();
});

describe('python3 -m unittest (clients/python/tests)', () => {
  for (const mode of ['numpy', 'no numpy'] as const) {
    it(`passes (${mode})`, async (ctx) => {
      if (mode === 'numpy' && !numpy) ctx.skip();
      const env = pythonEnv(server.url, mode === 'no numpy' ? { BROKEN_NUMPY: '1' } : {});
      const r = await runPython(['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.', '-v'], env, clientDir);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/\nOK/);
      expect(r.stderr).not.toMatch(/skipped 'GRADSERVE_URL is not set'/);
    }, 120_000);
  }
});
