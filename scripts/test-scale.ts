/**
 * Scale-out test (issues 7.2 and 19.4): nginx with docker/nginx.conf in front of three gradserve
 * processes sharing one state directory, all on 127.0.0.1. Checks sticky sessions (every request of
 * a session reaches the replica that created it), the spread over replicas, that nginx's own errors
 * are problem+json and gradserve's pass through, and what a client sees when a replica is SIGKILLed
 * in the middle of a training loop: its sessions go on, on the next replica of the ring, with every
 * acknowledged step (the next step bit for bit the uninterrupted run's), new sessions are created
 * without a retry, and when the replica is back it takes its sessions back.
 *
 *   npm run test:scale            (npx tsx scripts/test-scale.ts)
 *
 * Needs nginx (Debian's package) on PATH or in /usr/sbin, and sh. Prints one PASS/FAIL line per
 * check and a summary; exits 1 on any failure. Environment:
 *   GRADSERVE_BACKEND   native|reference (default: native, or reference when the addon is missing)
 *   NGINX               the nginx binary to use
 *   KEEP_TMP=1          keep the temporary directory (logs, generated config) even on success
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SESSIONS = 100;
const REPLICAS = ['r1', 'r2', 'r3'];
const T0 = Date.now();

// ---- reporting ---------------------------------------------------------------------------------
let passed = 0;
const failures: string[] = [];
function check(name: string, ok: boolean, detail = ''): boolean {
  if (ok) { passed++; console.log(`PASS  ${name}${detail ? ` (${detail})` : ''}`); }
  else { failures.push(name); console.log(`FAIL  ${name}${detail ? `: ${detail}` : ''}`); }
  return ok;
}
const log = (msg: string) => console.log(`[test-scale ${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);

// ---- processes -----------------------------------------------------------------------------------
const children = new Set<ChildProcess>();
let tmp = '';

function findNginx(): string | null {
  if (process.env.NGINX) return process.env.NGINX;
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && existsSync(join(dir, 'nginx'))) return join(dir, 'nginx');
  }
  return null;
}

/** native unless asked otherwise, falling back to reference when the addon is absent or will not load. */
function chooseBackend(): { backend: 'native' | 'reference'; why: string } {
  const asked = process.env.GRADSERVE_BACKEND;
  if (asked === 'native' || asked === 'reference') return { backend: asked, why: 'GRADSERVE_BACKEND' };
  const addon = join(ROOT, 'build/Release/gradserve.node');
  if (!existsSync(addon)) return { backend: 'reference', why: 'build/Release/gradserve.node is missing' };
  // A separate process: an addon caught mid-rebuild must not take this test down with it.
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', addon], { timeout: 10000 });
  if (r.status !== 0) return { backend: 'reference', why: 'build/Release/gradserve.node does not load' };
  return { backend: 'native', why: 'addon present' };
}

/**
 * n distinct free ports. All listeners stay open until every port is known: a port closed at once
 * can be handed out again by the next call, and two processes then race for it.
 */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((ok, ko) => {
    const s = net.createServer();
    s.once('error', ko);
    s.listen(0, '127.0.0.1', () => ok(s));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return ports;
}

/** Output goes to files in the temp dir, never to pipes nobody drains. */
function start(name: string, cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const out = openSync(join(tmp, `${name}.log`), 'a');
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  closeSync(out);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function stopAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { stopAll(); process.exit(130); });

function exited(c: ChildProcess): Promise<void> {
  return c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((ok) => c.once('exit', () => ok()));
}

async function waitHealthy(url: string, child: ChildProcess, what: string, timeoutMs = 30000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}); see ${tmp}`);
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not healthy after ${timeoutMs} ms; see ${tmp}`);
}

// ---- HTTP ------------------------------------------------------------------------------------------
interface Answer { status: number; type: string; replica: string | null; retryAfter: string | null; text: string; body: any }

async function call(base: string, method: string, path: string, o: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body), signal: AbortSignal.timeout(15000) });
  const text = await r.text();
  let body: any = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* HTML or garbage: body stays null */ }
  return { status: r.status, type: r.headers.get('content-type') ?? '', replica: r.headers.get('x-gradserve-replica'), retryAfter: r.headers.get('retry-after'), text, body };
}

/** A problem+json answer with the contract's members, not an HTML page. */
function isProblem(a: Answer, status: number, code?: string): boolean {
  return a.status === status && a.type.startsWith('application/problem+json') && !a.text.trimStart().startsWith('<')
    && a.body !== null && a.body.status === status && typeof a.body.type === 'string' && typeof a.body.title === 'string'
    && typeof a.body.detail === 'string' && typeof a.body.code === 'string' && (code === undefined || a.body.code === code);
}
const brief = (a: Answer) => `${a.status} ${a.type} replica=${a.replica} ${a.text.slice(0, 160)}`;

async function pool<T, R>(items: T[], width: number, f: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await f(items[i], i); }
  }));
  return out;
}

/** A raw request, for what fetch will not send (a huge Content-Length without the body, garbage). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((ok, ko) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    let buf = '';
    s.setTimeout(5000, () => { s.destroy(); ko(new Error('raw request timed out')); });
    // Done once the whole answer is in: nginx may linger before closing (lingering_close).
    const complete = () => {
      const end = buf.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(buf.slice(0, end));
      return end >= 0 && len !== null && Buffer.byteLength(buf.slice(end + 4), 'latin1') >= Number(len[1]);
    };
    s.on('data', (d) => { buf += d.toString('latin1'); if (complete()) { s.destroy(); ok(buf); } });
    s.on('end', () => ok(buf));
    s.on('close', () => ok(buf));
    s.on('error', (e) => (buf ? ok(buf) : ko(e)));
    s.write(bytes);
  });
}
function parseRaw(text: string): Answer {
  const [head, ...rest] = text.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const status = Number(lines[0]?.split(' ')[1] ?? 0);
  const h = (n: string) => lines.find((l) => l.toLowerCase().startsWith(`${n}:`))?.slice(n.length + 1).trim() ?? null;
  const bodyText = rest.join('\r\n\r\n');
  let body: any = null;
  try { body = JSON.parse(bodyText); } catch { /* not JSON */ }
  return { status, type: h('content-type') ?? '', replica: h('x-gradserve-replica'), retryAfter: h('retry-after'), text: bodyText, body };
}

/** A session's tenures in the shared state directory: epoch → replica. */
function tenures(state: string, id: string): Record<string, string> {
  try {
    return Object.fromEntries(readdirSync(join(state, 'sessions', id)).map((e) => [e, readFileSync(join(state, 'sessions', id, e), 'utf8')]));
  } catch {
    return {};
  }
}

// ---- a training loop -------------------------------------------------------------------------------
const SETUP = 'X = nd.random.normal(shape=(32, 8))\ny = nd.random.normal(shape=(32, 1))\nw = nd.random.normal(shape=(8, 1)) * 0.1\nw.attach_grad()';
const STEP = 'with autograd.record():\n    l = ((nd.dot(nd.tanh(X), w) - y) ** 2).mean()\nl.backward()\nw[:] = w - 0.1 * w.grad';

async function trainer(lb: string): Promise<Sess> {
  const a = await call(lb, 'POST', '/v1/sessions', { body: { seed: 11 } });
  if (a.status !== 201) throw new Error(`training session: ${brief(a)}`);
  const s = { id: a.body.id, token: a.body.token, replica: a.replica!, k: 0 };
  const b = await call(lb, 'POST', `/v1/sessions/${s.id}/ops`, { token: s.token, body: { expr: SETUP } });
  if (b.status !== 200) throw new Error(`setup: ${brief(b)}`);
  return s;
}
/** One step; w's bytes after it, with the replica that answered. */
async function step(lb: string, s: Sess): Promise<Answer> {
  return call(lb, 'POST', `/v1/sessions/${s.id}/ops`, { token: s.token, body: { expr: STEP, fetch: ['w'], format: 'base64' } });
}

// ---- the session workload -----------------------------------------------------------------------
interface Sess { id: string; token: string; replica: string; k: number }

/** The chapter's first cell with session-specific data: x = k + arange(4), y = 2 x^T x, dy/dx = 4x. */
async function chapter(lb: string, s: Sess): Promise<string | null> {
  const x = [[s.k], [s.k + 1], [s.k + 2], [s.k + 3]];
  const steps: [string, string, unknown?][] = [
    ['POST', '/arrays', { name: 'x', data: x }],
    ['POST', '/arrays/x/attach-grad'],
    ['POST', '/ops', { record: true, expr: 'y = 2 * nd.dot(x.T, x)' }],
    ['POST', '/arrays/y/backward'],
    ['GET', '/arrays/x/grad'],
    ['GET', ''],
  ];
  let grad: any = null;
  for (const [method, p, body] of steps) {
    const a = await call(lb, method, `/v1/sessions/${s.id}${p}`, { token: s.token, body });
    if (a.status >= 300) return `${method} ${p}: ${brief(a)}`;
    if (a.replica !== s.replica) return `${method} ${p} answered by ${a.replica}, session lives on ${s.replica}`;
    if (p === '/arrays/x/grad') grad = a.body?.data;
  }
  const want = JSON.stringify(x.map(([v]) => [4 * v]));
  return JSON.stringify(grad) === want ? null : `grad ${JSON.stringify(grad)} != ${want}`;
}

/** A later request of a session: uses the arrays it built, so a session that moved would show. */
async function reuse(lb: string, s: Sess): Promise<Answer> {
  return call(lb, 'POST', `/v1/sessions/${s.id}/ops`, { token: s.token, body: { expr: 'z = x.grad.sum()', fetch: ['z'] } });
}
/** The later request's answer is right (and, unless `anywhere`, from the session's replica). */
const reuseOk = (a: Answer, s: Sess, anywhere = false) => a.status === 200 && (anywhere || a.replica === s.replica) && a.body?.outputs?.z?.data?.[0] === 4 * (4 * s.k + 6);


// ---- main ------------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const nginxBin = findNginx();
  if (!nginxBin) { check('nginx is installed', false, 'apt-get install -y nginx'); return; }
  const { backend, why } = chooseBackend();
  log(`backend: ${backend} (${why}); nginx: ${nginxBin}`);

  tmp = mkdtempSync(join(tmpdir(), 'gradserve-scale-'));
  // nginx's workers drop to an unprivileged user when run as root: they must reach the temp dirs.
  chmodSync(tmp, 0o755);

  // Replicas.
  const all = await freePorts(REPLICAS.length + 1);
  const ports = all.slice(0, REPLICAS.length);
  const lbPort = all[REPLICAS.length];
  const lb = `http://127.0.0.1:${lbPort}`;
  const direct = (i: number) => `http://127.0.0.1:${ports[i]}`;
  const tsx = ['--import', 'tsx', 'src/server.ts']; // node itself, so SIGKILL hits the server, not a wrapper
  const state = join(tmp, 'state');
  const replicaEnv = (i: number) => ({
    GRADSERVE_HOST: '127.0.0.1', GRADSERVE_PORT: String(ports[i]), GRADSERVE_REPLICA: REPLICAS[i],
    GRADSERVE_BACKEND: backend, GRADSERVE_LOG_LEVEL: 'warn', GRADSERVE_RATE_LIMIT_MAX: '0',
    // One directory for all three: a replica that dies leaves its sessions to the next one.
    GRADSERVE_STATE_DIR: state, GRADSERVE_STATE_LEASE_MS: '1000',
  });
  const procs = REPLICAS.map((name, i) => start(name, process.execPath, tsx, replicaEnv(i)));

  // nginx: the repository's nginx.conf, linked (not copied) into a prefix of its own, with the two
  // generated include files next to it (nginx resolves includes relative to the -c file's dir).
  symlinkSync(join(ROOT, 'docker/nginx.conf'), join(tmp, 'nginx.conf'));
  const render = spawnSync('sh', [join(ROOT, 'docker/nginx-render.sh'), tmp], {
    env: { ...process.env, GRADSERVE_UPSTREAMS: ports.map((p) => `127.0.0.1:${p}`).join(' '), NGINX_LISTEN: `127.0.0.1:${lbPort}` },
    encoding: 'utf8',
  });
  if (!check('nginx-render.sh writes the upstream and listen includes', render.status === 0, render.stderr.trim())) return;
  // stdout not a pipe: node's pipes are sockets, and nginx cannot open /dev/stdout (the access log) on one.
  const test = spawnSync(nginxBin, ['-t', '-p', `${tmp}/`, '-c', join(tmp, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (!check('nginx -t accepts docker/nginx.conf', test.status === 0, test.status === 0 ? '' : test.stderr.trim())) return;
  const nginx = start('nginx', nginxBin, ['-p', `${tmp}/`, '-c', join(tmp, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;']);

  await Promise.all(procs.map((p, i) => waitHealthy(direct(i), p, `replica ${REPLICAS[i]}`)));
  await waitHealthy(lb, nginx, 'nginx');
  log(`3 replicas on ${ports.join(', ')}, nginx on ${lbPort}; temp dir ${tmp}`);

  // 1. Sessions through nginx: ids minted by the proxy, one replica each, every request sticks.
  const created = await pool(Array.from({ length: SESSIONS }, (_, k) => k), 20, async (k) => {
    const a = await call(lb, 'POST', '/v1/sessions', { body: { seed: k } });
    return { a, k };
  });
  const sessions: Sess[] = [];
  const badCreate = created.filter(({ a }) => a.status !== 201 || !a.replica);
  for (const { a, k } of created) if (a.status === 201 && a.replica) sessions.push({ id: a.body.id, token: a.body.token, replica: a.replica, k });
  check(`${SESSIONS} sessions created through nginx`, badCreate.length === 0, badCreate.length ? brief(badCreate[0].a) : '');
  check('session ids are minted by nginx ($request_id: 32 hex digits)', sessions.every((s) => /^[0-9a-f]{32}$/.test(s.id)));
  const own = await call(lb, 'POST', '/v1/sessions', { body: {}, headers: { 'x-gradserve-session-id': 'client-chosen-id' } });
  check('a client cannot choose the session id through nginx', own.status === 201 && own.body.id !== 'client-chosen-id', brief(own));

  const walk = await pool(sessions, 20, (s) => chapter(lb, s));
  const walkErr = walk.filter((e) => e !== null);
  check('every request of every session reaches its replica, and the chapter runs (arrays, ops, backward, grad)', walkErr.length === 0, walkErr.length ? `${walkErr.length} sessions: ${walkErr[0]}` : `${sessions.length * 6} requests`);

  // Held where nginx says: one tenure each, by the replica that answered (asking another replica
  // directly would move the session there).
  const placement = sessions.map((s) => JSON.stringify(tenures(state, s.id)) === JSON.stringify({ 1: s.replica }));
  check('each session is held by exactly the replica that answered for it (its one claim in the state directory)', placement.every(Boolean));

  const per = Object.fromEntries(REPLICAS.map((r) => [r, sessions.filter((s) => s.replica === r).length]));
  check('sessions spread over all three replicas', REPLICAS.every((r) => per[r] >= 10), JSON.stringify(per));

  const info = await call(lb, 'GET', `/v1/sessions/${sessions[0].id}`, { token: sessions[0].token });
  log(`a chapter session (x, y, x.grad, one tape) holds ${info.body?.bytes} bytes`);

  // 2. gradserve's own errors pass through nginx untouched; unknown sessions look as on one server.
  const s0 = sessions[0];
  const unk = await call(lb, 'POST', `/v1/sessions/${s0.id}/ops`, { token: s0.token, body: { ops: [{ op: 'no_such_op', args: ['x'] }] } });
  check("gradserve's own problem+json passes through (422 unknown_op, from the replica)", isProblem(unk, 422, 'unknown_op') && unk.replica === s0.replica, brief(unk));
  const ghost = randomBytes(16).toString('hex');
  const viaLb = await call(lb, 'GET', `/v1/sessions/${ghost}`, { token: 'x'.repeat(20) });
  const single = await call(direct(0), 'GET', `/v1/sessions/${ghost}`, { token: 'x'.repeat(20) });
  const same = (a: Answer, b: Answer) => a.status === b.status && a.body?.code === b.body?.code && a.body?.type === b.body?.type && a.body?.title === b.body?.title;
  check('an unknown session through nginx gets the 404 problem+json a single server gives', isProblem(viaLb, 404, 'not_found') && same(viaLb, single), brief(viaLb));

  // 3. nginx's own errors are problem+json too.
  const big = parseRaw(await raw(lbPort, `POST /v1/sessions/${s0.id}/arrays HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * 1024 * 1024 + 1}\r\nConnection: close\r\n\r\n`));
  check('a body over 64 MiB: 413 problem+json from nginx', isProblem(big, 413, 'payload_too_large') && big.replica === null, brief(big));
  const garbage = parseRaw(await raw(lbPort, 'THIS IS NOT HTTP\r\n\r\n'));
  check('a malformed request: 400 problem+json from nginx', isProblem(garbage, 400, 'invalid_request'), brief(garbage));

  // 4. One replica dies (SIGKILL, no drain) in the middle of a training loop on it.
  const victimIdx = 1;
  const victim = REPLICAS[victimIdx];
  const STEPS = 12;
  const ref = await trainer(lb);
  const refW: string[] = [];
  for (let i = 0; i <= STEPS; i++) refW.push((await step(lb, ref)).body?.outputs?.w?.data);
  let t: Sess | null = null;
  for (let i = 0; i < 40 && !t; i++) {
    const c = await trainer(lb);
    if (c.replica === victim) t = c;
  }
  if (!check(`a training session lands on ${victim}`, t !== null)) return;
  const trained = t!;
  let acked = 0;
  for (; acked < 5; acked++) if ((await step(lb, trained)).body?.outputs?.w?.data !== refW[acked]) break;
  check('the training loop runs through nginx, bit for bit the reference run', acked === 5);
  // One step in flight when the replica dies: it may or may not have been kept.
  const inflight = step(lb, trained);
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5)));
  procs[victimIdx].kill('SIGKILL');
  await exited(procs[victimIdx]);
  log(`killed replica ${victim} (${per[victim]} sessions and the training session)`);
  const lostStep = await inflight;
  const read = await call(lb, 'GET', `/v1/sessions/${trained.id}/arrays/w?format=base64`, { token: trained.token });
  const at = refW.indexOf(read.body?.data);
  const keptAll = lostStep.status === 200 ? at === acked : at === acked || at === acked - 1;
  check(`the training session goes on on another replica with every acknowledged step (in-flight step: ${lostStep.status})`, read.status === 200 && read.replica !== victim && keptAll, `${brief(read)}; w is step ${at + 1}, ${acked} acknowledged`);
  let resumed = at + 1;
  let stuck = true;
  const mover = read.replica;
  for (; resumed < STEPS; resumed++) {
    const a = await step(lb, trained);
    if (a.body?.outputs?.w?.data !== refW[resumed]) break;
    stuck &&= a.replica === mover;
  }
  check('its next steps are bit for bit the uninterrupted run, all on the replica that took it over', resumed === STEPS && stuck, `${resumed}/${STEPS}`);

  const after = await pool(sessions, 20, async (s) => ({ s, a: await reuse(lb, s) }));
  const moved = after.filter(({ s }) => s.replica === victim);
  const kept = after.filter(({ s }) => s.replica !== victim);
  const movedBad = moved.filter(({ s, a }) => !reuseOk(a, s, true) || a.replica === victim);
  check(`the dead replica's ${moved.length} sessions are taken over by the others, arrays and all`, moved.length > 0 && movedBad.length === 0, movedBad.length ? brief(movedBad[0].a) : '');
  const keptBad = kept.filter(({ s, a }) => !reuseOk(a, s));
  check(`the other ${kept.length} sessions keep working on their replicas`, keptBad.length === 0, keptBad.length ? brief(keptBad[0].a) : '');
  const twice = moved.filter(({ s, a }) => { const tt = tenures(state, s.id); return Object.keys(tt).length !== 2 || tt[2] !== a.replica; });
  check('each moved session has exactly one new tenure, by the replica that answered', twice.length === 0, twice.length ? JSON.stringify(tenures(state, twice[0].s.id)) : '');
  for (const { s, a } of moved) s.replica = a.replica!;

  // Stateless routes skip the dead replica (proxy_next_upstream).
  const probes = await pool(Array.from({ length: 30 }, () => 0), 10, () => call(lb, 'GET', '/healthz'));
  check('stateless routes (/healthz) keep answering 200 through nginx', probes.every((a) => a.status === 200), brief(probes.find((a) => a.status !== 200) ?? probes[0]));

  // New sessions: an id that hashes to the dead replica is created by the next one.
  const fresh = await pool(Array.from({ length: 40 }, () => 0), 10, () => call(lb, 'POST', '/v1/sessions', { body: {} }));
  const freshBad = fresh.filter((a) => a.status !== 201 || !a.replica || a.replica === victim);
  check('new sessions are created on live replicas at the first attempt', freshBad.length === 0, freshBad.length ? brief(freshBad[0]) : '40 sessions');
  const freshSessions: Sess[] = fresh.filter((a) => a.status === 201).map((a, i) => ({ id: a.body.id, token: a.body.token, replica: a.replica!, k: 1000 + i }));
  const freshWalk = await pool(freshSessions, 10, (s) => chapter(lb, s));
  const freshErr = freshWalk.filter((e) => e !== null);
  check('the new sessions work and stick to their replicas', freshErr.length === 0, freshErr[0] ?? `${freshSessions.length} sessions`);

  // 5. The replica comes back: nginx sends it its sessions again, and it takes them back.
  procs[victimIdx] = start(`${victim}-restarted`, process.execPath, tsx, replicaEnv(victimIdx));
  await waitHealthy(direct(victimIdx), procs[victimIdx], `replica ${victim} (restarted)`);
  // nginx tries it again once its fail_timeout (10 s) has passed.
  let back: Answer[] = [];
  for (let round = 0; round < 30; round++) {
    back = await pool(moved, 20, ({ s }) => reuse(lb, s));
    if (back.every((a) => a.replica === victim)) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  check(`after ${victim} is back, it takes its sessions back, arrays and all`, back.every((a, i) => a.replica === victim && reuseOk(a, moved[i].s, true)), brief(back.find((a) => a.replica !== victim) ?? back[0]));
  const tb = await step(lb, trained);
  check('the training session too: its next step is bit for bit the uninterrupted run', tb.status === 200 && tb.replica === victim && tb.body?.outputs?.w?.data === refW[STEPS], brief(tb));
  const survivors = await pool([...kept.map(({ s }) => s), ...freshSessions], 20, async (s) => reuseOk(await reuse(lb, s), s, true));
  check('sessions on the other replicas are unaffected by the restart', survivors.every(Boolean));
  const again = await pool(Array.from({ length: 30 }, () => 0), 10, () => call(lb, 'POST', '/v1/sessions', { body: {} }));
  const againBy = new Set(again.map((a) => a.replica));
  check('with all replicas up, creation reaches all three', again.every((a) => a.status === 201) && againBy.size === 3, [...againBy].join(','));

  // 6. Everything listened on 127.0.0.1 only.
  const conf = readFileSync(join(tmp, 'nginx-listen.conf'), 'utf8');
  check('nginx listens on 127.0.0.1 only', conf.trim() === `listen 127.0.0.1:${lbPort};`, conf.trim());
}

main()
  .catch((e) => { check('test ran to completion', false, (e as Error).stack ?? String(e)); })
  .finally(async () => {
    const live = [...children];
    for (const c of live) c.kill('SIGTERM');
    await Promise.race([Promise.all(live.map(exited)), new Promise((r) => setTimeout(r, 5000))]);
    stopAll();
    const secs = ((Date.now() - T0) / 1000).toFixed(1);
    console.log(`\n${passed} passed, ${failures.length} failed (${secs} s)`);
    if (failures.length) {
      for (const f of failures) console.log(`  failed: ${f}`);
      if (tmp) console.log(`logs kept in ${tmp}`);
      console.log('RESULT: FAIL');
      process.exitCode = 1;
    } else {
      if (tmp && process.env.KEEP_TMP !== '1') rmSync(tmp, { recursive: true, force: true });
      else if (tmp) console.log(`logs kept in ${tmp}`);
      console.log('RESULT: PASS');
    }
  });
