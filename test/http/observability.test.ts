/**
 * What operators and their tools rely on: X-Request-Id kept or made, echoed and carried by problem
 * bodies and logs; each problem's `type` resolving to a page that explains its code; metrics under
 * the standard names, read by the Prometheus project's own text parser.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { loggerOptions } from '../../src/logging.js';
import { ERROR_CATALOGUE } from '../../src/errors.js';
import { backendUnderTest, Client, startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.close(); });

describe('X-Request-Id', () => {
  it('is kept when usable, made when missing or unusable, and echoed on every answer', async () => {
    const kept = await request(srv.url).get('/healthz').set('X-Request-Id', 'trace-42.a:b').expect(200);
    expect(kept.headers['x-request-id']).toBe('trace-42.a:b');
    const made = await request(srv.url).get('/healthz').expect(200);
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    for (const bad of ['x'.repeat(200), 'two words', 'semi;colon']) {
      const r = await request(srv.url).get('/healthz').set('X-Request-Id', bad).expect(200);
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('is the request_id of a problem body', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { expr: 'nd.frob(1)' }).set('X-Request-Id', 'nb-cell-7');
    expect(r.status).toBe(422);
    expect(r.headers['x-request-id']).toBe('nb-cell-7');
    expect(r.body.request_id).toBe('nb-cell-7');
  });

  it('and the problem code are in the log line of an error answer', async () => {
    let text = '';
    const sink = new Writable({ write(chunk, _enc, done) { text += chunk.toString(); done(); } });
    const config = loadConfig({ GRADSERVE_LOG_LEVEL: 'info', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
    const { app } = await buildApp({ config, backend: backendUnderTest(), logger: loggerOptions(config, sink) });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const addr = app.server.address();
      const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
      const c = await Client.open(url);
      await c.post('/ops', { ops: [{ op: 'dot', args: [[[1, 2]], [[1, 2]]], out: 'd' }] }).set('X-Request-Id', 'req-shape-1').expect(422);
    } finally {
      await app.close();
    }
    const lines = text.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.reqId === 'req-shape-1');
    expect(lines.find((l) => l.msg === 'problem answered')).toMatchObject({ code: 'shape_mismatch', status: 422 });
  });
});

describe('problem pages', () => {
  it('every code\'s type resolves against the server to a page that explains it', async () => {
    const c = await Client.open(srv.url);
    const r = await c.post('/ops', { ops: [{ op: 'dot', args: [[[1, 2]], [[1, 2]]], out: 'd' }] }).expect(422);
    const page = await fetch(new URL(r.body.type, `${srv.url}/v1/sessions/${c.sid}/ops`));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toContain('<code>shape_mismatch</code>');
    expect(html).toContain('HTTP 422');
    const index = await (await fetch(`${srv.url}/problems`)).text();
    for (const code of Object.keys(ERROR_CATALOGUE)) expect(index).toContain(`>${code}</a>`);
    const missing = await request(srv.url).get('/problems/no-such-code').expect(404);
    expect(missing.body.code).toBe('not_found');
  });
});

describe('metrics', () => {
  it('parse with the Prometheus text parser, under the standard process names, with ops counted per op', async () => {
    const c = await Client.open(srv.url);
    await c.post('/ops', { expr: 'x = nd.ones((3,)); y = (x * 2).exp(); z = x * 3' }).expect(200);
    const text = (await request(srv.url).get('/metrics').expect(200)).text;
    const script = [
      'import json, sys',
      'from prometheus_client.parser import text_string_to_metric_families',
      'fams = {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(sys.stdin.read())}',
      'print(json.dumps(fams))',
    ].join('\n');
    const fams = await pipePython(script, text) as Record<string, [string, Record<string, string>, number][]>;
    expect(fams).toHaveProperty('process_cpu_seconds');
    expect(fams).toHaveProperty('nodejs_heap_size_used_bytes');
    expect(Object.keys(fams).some((k) => k.startsWith('gradserve_process_'))).toBe(false);
    const ops = Object.fromEntries(fams.gradserve_ops.map(([, labels, v]) => [labels.op, v]));
    expect(ops.multiply).toBeGreaterThanOrEqual(2);
    expect(ops.exp).toBeGreaterThanOrEqual(1);
  });
});

/** Runs Debian's python3 (with python3-prometheus-client) on `input`; the JSON it prints. */
async function pipePython(script: string, input: string): Promise<unknown> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`python3 failed (${code}): ${err}; install python3-prometheus-client`));
      resolve(JSON.parse(out));
    });
    p.stdin.end(input);
  });
}
