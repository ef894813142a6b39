/**
 * What the benchmarks use to reach our server: a light HTTP client, and the server itself as
 * users run it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export interface Server {
  url: string;
  pid: number;
  close(): Promise<void>;
}

/**
 * The benchmark's client: node:http with keep-alive, the lightest client Node has, because it
 * runs in the same process as the server and its own cost (fetch costs about 2 ms more per large
 * request) would otherwise be counted as the service's.
 */
export const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function request(url: string, method: string, path: string, body: string | Uint8Array | null, headers: Record<string, string>): Promise<{ status: number; json: unknown }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, agent, headers: body === null ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null });
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/**
 * Our server as users run it (`npm start`): the compiled build in its own process, on a free port
 * of 127.0.0.1, with rate limits and the event-loop check out of the way of the load.
 */
export async function startOurs(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Server> {
  const entry = fileURLToPath(new URL('../dist/src/server.js', import.meta.url));
  if (!existsSync(entry)) throw new Error('dist/src/server.js is missing: npm run build (npm run bench runs it first)');
  // BENCH_PORT pins the port (a shared machine may give each user a range); otherwise any free one.
  const port = process.env.BENCH_PORT ? Number(process.env.BENCH_PORT) : await new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  const proc = spawn(process.execPath, [...nodeArgs, entry], {
    env: {
      ...process.env, GRADSERVE_HOST: '127.0.0.1', GRADSERVE_PORT: String(port), GRADSERVE_LOG_LEVEL: 'error',
      GRADSERVE_RATE_LIMIT_MAX: '100000000', GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: '0', ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await request(url, 'GET', '/readyz', null, {})).status === 200) break;
    } catch {
      if (i > 300 || proc.exitCode !== null) throw new Error('our server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    pid: proc.pid!,
    close: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}
