/**
 * HTTP load for `npm run bench`: autocannon in a child process, so the load generator does not
 * share the event loop of the server under test (which runs in the bench's main thread).
 * (Not a worker thread: autocannon takes a worker thread for one of its own and misbehaves.)
 */
import { spawn } from 'node:child_process';

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export interface LoadSpec {
  url: string;
  /** One path per target (requests go round-robin over them): several sessions, for instance. */
  paths: string[];
  headers: Record<string, string>[];
  /** POST with body (the default), or GET without one. */
  method?: 'GET' | 'POST';
  body: string;
  connections: number;
  seconds: number;
}

const CHILD = `
const autocannon = require('autocannon');
const w = JSON.parse(process.env.GRADSERVE_LOAD_SPEC);
const parentPort = { postMessage: (m) => process.stdout.write(JSON.stringify(m) + '\\n') };
let i = 0;
autocannon({
  url: w.url,
  connections: w.connections,
  duration: w.seconds,
  requests: [{
    method: w.method || 'POST',
    setupRequest: (req) => {
      const k = i++ % w.paths.length;
      if (w.method === 'GET') return { ...req, path: w.paths[k], headers: w.headers[k] };
      return { ...req, path: w.paths[k], headers: { 'content-type': 'application/json', ...w.headers[k] }, body: w.body };
    },
  }],
}, (err, res) => {
  if (err || !res || !res.latency) { parentPort.postMessage({ error: String(err || 'autocannon gave no result') }); return; }
  parentPort.postMessage({ rps: res.requests.average, p50: res.latency.p50, p99: res.latency.p99, errors: res.errors + res.non2xx });
});
`;

export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD], { env: { ...process.env, GRADSERVE_LOAD_SPEC: JSON.stringify(spec) } });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => process.stderr.write(d));
    child.once('error', reject);
    child.once('close', () => {
      try {
        const m = JSON.parse(out.trim().split('\n').pop() ?? '') as LoadResult & { error?: string };
        if (m.error) reject(new Error(m.error));
        else resolve(m);
      } catch {
        reject(new Error(`load generator gave no result: ${out.slice(0, 200)}`));
      }
    });
  });
}
