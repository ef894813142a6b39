/**
 * A minimal HTTP client over node:http with keep-alive: it sends exactly the bytes and headers it
 * is given (any method, any content type, malformed JSON, odd paths), which supertest and fetch
 * would normalise or refuse.
 */
import http from 'node:http';

export interface RawRequest {
  method: string;
  /** Path and query, sent as is (already percent-encoded where needed). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

export function send(base: string, r: RawRequest, timeoutMs = 30000): Promise<RawAnswer> {
  const u = new URL(base);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(r.headers ?? {}) };
    if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
    const req = http.request({ host: u.hostname, port: u.port, method: r.method, path: r.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

/** JSON POST/PUT/GET helper with a bearer token; throws on transport errors only. */
export async function call(base: string, method: string, path: string, token?: string | null, body?: unknown): Promise<{ status: number; json: any; raw: RawAnswer }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (body !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  const raw = await send(base, { method, path, headers, body: payload });
  let json: any = null;
  try { json = raw.body.length ? JSON.parse(raw.body.toString()) : null; } catch { json = raw.body.toString(); }
  return { status: raw.status, json, raw };
}
