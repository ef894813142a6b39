/** Tokens, API keys and array data never reach the logs, even at the most verbose level. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import request from 'supertest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { loggerOptions } from '../../src/logging.js';
import { backendUnderTest } from '../helpers/server.js';

describe('logs', () => {
  it('carry requests but no token, key or data, at trace level, errors included', async () => {
    let text = '';
    let token = '';
    const sink = new Writable({ write(chunk, _enc, done) { text += chunk.toString(); done(); } });
    const config = loadConfig({ GRADSERVE_LOG_LEVEL: 'trace', GRADSERVE_API_KEYS: 'key-7f3a9c', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0' });
    const { app } = await buildApp({ config, backend: backendUnderTest(), logger: loggerOptions(config, sink) });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const addr = app.server.address();
      const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
      const s = (await request(url).post('/v1/sessions').set('X-API-Key', 'key-7f3a9c').expect(201)).body;
      token = s.token;
      const auth = `Bearer ${s.token}`;
      await request(url).post(`/v1/sessions/${s.id}/arrays`).set('Authorization', auth).send({ name: 'x', data: [31415.9265, 27182.8182] }).expect(201);
      await request(url).post(`/v1/sessions/${s.id}/ops`).set('Authorization', auth).send({ expr: 'y = x * 271.828' }).expect(200);
      await request(url).post(`/v1/sessions/${s.id}/ops`).set('Authorization', auth).send({ expr: 'nd.frob(x, 161.803)' }).expect(422);
      await request(url).get(`/v1/sessions/${s.id}`).set('Authorization', 'Bearer wrong-token-5521').expect(401);
    } finally {
      await app.close();
    }
    expect(text).toMatch(/"url":"\/v1\/sessions\//);
    for (const secret of ['key-7f3a9c', 'wrong-token-5521', '31415.9265', '271.828', '161.803']) expect(text).not.toContain(secret);
    expect(token.length).toBeGreaterThan(20);
    expect(text).not.toContain(token);
  });
});
