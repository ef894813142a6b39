/**
 * Test servers: the real app on a real port (127.0.0.1, ephemeral) with the backend under test,
 * plus a tiny client that carries a session's bearer token.
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { referenceBackend } from '../../src/engine/reference.js';
import { loadNativeBackend } from '../../src/engine/native.js';
import type { Backend } from '../../src/engine/backend.js';

export function backendUnderTest(): Backend {
  if (process.env.GRADSERVE_BACKEND === 'reference') return referenceBackend;
  const native = loadNativeBackend();
  if (!native) throw new Error('native engine not built: run npm install (or set GRADSERVE_BACKEND=reference)');
  return native;
}

export interface TestServer {
  app: FastifyInstance;
  url: string;
  config: Config;
  close(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}, backend = backendUnderTest()): Promise<TestServer> {
  // Parallel test files starve the event loop on a 2-core box; back-pressure is tested on its own.
  const config = loadConfig({ GRADSERVE_PORT: '0', GRADSERVE_LOG_LEVEL: 'silent', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0', GRADSERVE_CHECK_RESPONSES: '1', GRADSERVE_CHECK_REFCOUNTS: '1', ...env });
  const { app } = await buildApp({ config, backend });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { app, url: `http://127.0.0.1:${port}`, config, close: () => app.close() };
}

/** A client bound to one session of a listening server. */
export class Client {
  constructor(readonly url: string, readonly sid: string, readonly token: string) {}

  static async open(url: string, body: Record<string, unknown> = {}): Promise<Client> {
    const r = await request(url).post('/v1/sessions').send(body).expect(201);
    return new Client(url, r.body.id, r.body.token);
  }

  private path(p: string): string {
    return `/v1/sessions/${this.sid}${p}`;
  }

  get(p: string) {
    return request(this.url).get(this.path(p)).set('Authorization', `Bearer ${this.token}`);
  }

  post(p: string, body?: unknown) {
    const r = request(this.url).post(this.path(p)).set('Authorization', `Bearer ${this.token}`);
    return body === undefined ? r : r.send(body as object);
  }

  put(p: string, body: unknown) {
    return request(this.url).put(this.path(p)).set('Authorization', `Bearer ${this.token}`).send(body as object);
  }

  del(p = '') {
    return request(this.url).delete(this.path(p)).set('Authorization', `Bearer ${this.token}`);
  }

  /** Runs an expression and returns the answer body (expects 200). */
  async expr(expr: string, extra: Record<string, unknown> = {}) {
    const r = await this.post('/ops', { expr, ...extra });
    if (r.status !== 200) throw new Error(`expr ${JSON.stringify(expr)} -> ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async data(name: string): Promise<unknown> {
    const r = await this.get(`/arrays/${name}`).expect(200);
    return r.body.data;
  }
}
