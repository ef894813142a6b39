/**
 * A real gradserve process (node + tsx running src/server.ts) for the tests that must see the
 * process itself: that it stays up under fuzzing, its resident memory, its exit code on SIGTERM.
 * An in-process server would share the test runner's heap, signals and fate.
 *
 * Shared by the tests that spawn servers (test/fuzz, test/session, test/server) and scripts/*.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The package root; FUZZ_ROOT points at another copy (the sanitizer build uses one). */
export const ROOT = process.env.FUZZ_ROOT ?? join(HERE, '..', '..');

/** A free TCP port on 127.0.0.1 (closed again before the server takes it; the race is harmless here). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface ChildServer {
  proc: ChildProcess;
  url: string;
  port: number;
  /** Everything the process wrote (pino JSON lines on stdout, anything else on stderr). */
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** Resident set size in bytes, read from /proc (Linux). */
  rss(): number;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | string>;
}

/**
 * Node flags for a server whose memory a test measures: a collection on demand, and the SIGWINCH
 * hook of gc-preload.mjs that settledRss uses.
 */
export const GC_NODE_ARGS: readonly string[] = ['--expose-gc', '--import', fileURLToPath(new URL('./gc-preload.mjs', import.meta.url))];

export interface SpawnOptions {
  /** Extra node flags, e.g. --expose-gc. */
  nodeArgs?: string[];
  /** How long to wait for /healthz. */
  startTimeoutMs?: number;
  /** The variable that gives the port: ours, or the platforms' $PORT. */
  portVariable?: 'GRADSERVE_PORT' | 'PORT';
  /** A port of the caller's choosing (a restart on the port its clients know); a free one otherwise. */
  port?: number;
}

/**
 * Starts `node --import tsx src/server.ts` with env on a free port and waits until /healthz
 * answers. The backend follows GRADSERVE_BACKEND of this process unless env sets it.
 */
export async function spawnServer(env: Record<string, string> = {}, o: SpawnOptions = {}): Promise<ChildServer> {
  // Test files run in parallel, and a port found free can be taken before the server binds it:
  // start again on another port when that happens.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOnce(env, o);
    } catch (e) {
      if (attempt >= 5 || !/EADDRINUSE/.test(String((e as Error).message))) throw e;
    }
  }
}

async function spawnOnce(env: Record<string, string>, o: SpawnOptions): Promise<ChildServer> {
  const port = o.port ?? await freePort();
  const { GRADSERVE_PORT: _ours, PORT: _platforms, ...inherited } = process.env;
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), '--import', 'tsx', join(ROOT, 'src', 'server.ts')], {
    cwd: ROOT,
    env: {
      ...inherited,
      GRADSERVE_HOST: '127.0.0.1',
      [o.portVariable ?? 'GRADSERVE_PORT']: String(port),
      GRADSERVE_LOG_LEVEL: 'error',
      GRADSERVE_CHECK_RESPONSES: '1',
      GRADSERVE_CHECK_REFCOUNTS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // Keep only the tail: a long fuzz run may log many errors, and the tail is what a report needs.
  const keep = (b: Buffer) => { out += b.toString(); if (out.length > 4_000_000) out = out.slice(-2_000_000); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  // Never leave a server behind when the process that started it ends (a crash included).
  const reap = () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); };
  process.once('exit', reap);
  void exited.then(() => process.off('exit', reap));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (o.startTimeoutMs ?? 30000);
  let dead: number | string | null = null;
  void exited.then((c) => { dead = c; });
  for (;;) {
    if (dead !== null) throw new Error(`server exited (${dead}) before it answered:\n${out}`);
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`server did not answer /healthz in time:\n${out}`); }
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(`${url}/healthz`, { agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      req.on('error', () => resolve(false));
      req.setTimeout(1000, () => { req.destroy(); resolve(false); });
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc, url, port, exited,
    output: () => out,
    rss() {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
      if (!m) throw new Error('no VmRSS in /proc/<pid>/status');
      return Number(m[1]) * 1024;
    },
    async stop() {
      if (dead === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * The resident memory of a server started with --expose-gc and test/helpers/gc-preload.mjs, after
 * full collections: two (the second collects what finalizers released in the first), then more
 * while it stays above `ceiling`, up to `rounds` in all, because V8 hands freed heap pages back
 * some time after a collection (later on Node 26 than on 20).
 */
export async function settledRss(srv: ChildServer, o: { ceiling?: number; rounds?: number; pauseMs?: number } = {}): Promise<number> {
  let rss = Infinity;
  for (let round = 0; round < (o.rounds ?? 1) && rss > (o.ceiling ?? 0); round++) {
    for (let k = 0; k < 2; k++) {
      srv.proc.kill('SIGWINCH');
      await new Promise((r) => setTimeout(r, o.pauseMs ?? 300));
    }
    rss = srv.rss();
  }
  return rss;
}

/** One value of the server's /metrics (a metric without labels). */
export async function metricOf(srv: ChildServer, name: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get(`${srv.url}/metrics`, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}
