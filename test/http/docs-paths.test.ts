/** Paths that climb out of the explorer's static files are a 4xx problem, never a 500 (issue 15, finding 11). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { send } from '../helpers/http.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('/docs static files', () => {
  it.each([
    '/docs/static/../../package.json',
    '/docs/static/%2e%2e/%2e%2e/package.json',
    '/docs/static/..%2f..%2fpackage.json',
    '/docs/static/../../../etc/passwd',
  ])('%s answers a 4xx problem and no file', async (path) => {
    const r = await send(srv.url, { method: 'GET', path, headers: {} }, 5000);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body.toString()).not.toContain('"dependencies"');
    expect(r.body.toString()).not.toContain('root:');
  });

  it('the explorer itself still loads', async () => {
    const r = await send(srv.url, { method: 'GET', path: '/docs/static/swagger-ui.css', headers: {} }, 5000);
    expect(r.status).toBe(200);
  });
});
