/**
 * The fuzz harness: request arbitraries for every endpoint, a target server with a witness
 * session (whose token the generated traffic never has) and an attacker session (which the
 * traffic owns and may wreck), and the property every answer must satisfy:
 *
 *   - never 5xx, never a hang, the process stays up;
 *   - every 4xx is application/problem+json with a `code`, and its `status` is the HTTP status;
 *   - every 429 carries Retry-After; every application/json answer parses;
 *   - nothing under the witness's path answers 2xx without the witness's token;
 *   - the witness's arrays, gradients, tapes and autograd state stay byte-identical.
 */
import fc from 'fast-check';
import { send, call, type RawAnswer } from '../helpers/http.js';
import {
  anyJson, base64Data, exprArb, name, nestedData, npyBody, number, programArb, ref, Raw, safetensorsBody, shape, toJson,
  type OpInfo,
} from './gen.js';

// ---- requests -----------------------------------------------------------------------------------

export type Target = 'attacker' | 'witness' | 'unknown';
/** `odd`: the attacker's own token in one of ODD_AUTH's spellings (some valid, most not). */
export type Auth = 'token' | 'none' | 'garbage' | 'malformed' | 'odd';

export interface FuzzReq {
  kind: string;
  method: string;
  /** `{S}` stands for /v1/sessions/<sid of target>; `{WID}` for the witness's id. */
  path: string;
  target: Target;
  auth: Auth;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** Which spelling of ODD_AUTH an `odd` request uses. */
  authStyle?: number;
}

/** Spellings of the Authorization header around a real token `T`. */
export const ODD_AUTH: ((t: string) => string)[] = [
  (t) => `bearer ${t}`, (t) => `BEARER ${t}`, (t) => `Bearer\t${t}`, (t) => `Bearer   ${t}   `, (t) => ` Bearer ${t}`,
  (t) => `Bearer "${t}"`, (t) => `Bearer ${t}, Bearer ${t}`, (t) => `Token ${t}`, (t) => `Bearer ${t.toUpperCase()}`,
  (t) => `Bearer ${t}\u00a0`, (t) => `Bearer ${t.slice(0, 8)}`, (t) => `Bearer ${'a'.repeat(8000)}`,
  (t) => `Bearer=${t}`, (t) => `Bearer:${t}`, (t) => `Basic ${Buffer.from(`x:${t}`).toString('base64')}`, () => 'Bearer __proto__',
  (t) => `Bearer ${t}%00`, (t) => `Bearer ${encodeURIComponent(t)}x`,
];

/** Limits tight enough that no generated request is slow, loose enough that ops do run. */
export const FUZZ_ENV: Record<string, string> = {
  GRADSERVE_MAX_BODY_BYTES: String(256 * 1024),
  GRADSERVE_MAX_SESSIONS: '64',
  GRADSERVE_MAX_SESSION_BYTES: String(256 * 1024),
  GRADSERVE_MAX_TOTAL_BYTES: String(32 * 1024 * 1024),
  GRADSERVE_MAX_ARRAY_ELEMENTS: '4096',
  GRADSERVE_MAX_STATEMENTS: '64',
  GRADSERVE_MAX_EXPR_LENGTH: '4096',
  // The largest depth the configuration allows: the parser's recursion at its worst.
  GRADSERVE_MAX_EXPR_DEPTH: '256',
  GRADSERVE_MAX_TAPE_NODES: '256',
  GRADSERVE_REQUEST_TIMEOUT_MS: '2000',
  GRADSERVE_MAX_STEPS: '2000',
  GRADSERVE_MAX_CALL_DEPTH: '32',
  GRADSERVE_MAX_DEFINITIONS: '16',
  GRADSERVE_MAX_KERNEL_FLOPS: '1000000',
  GRADSERVE_IDEMPOTENCY_ENTRIES: '1000',
  // One client sends everything here; a rate limit would only turn most cases into 429s.
  GRADSERVE_RATE_LIMIT_MAX: '100000000',
};

/** Percent-encodes every byte outside the unreserved set (lone surrogates become U+FFFD). */
export function enc(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

const contentType = fc.oneof(
  { weight: 20, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom(null, 'text/plain', 'application/x-npy', 'application/octet-stream', 'application/json; charset=utf-16', 'application/JSON', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json, text/plain', '*/*', 'application/problem+json', 'application/json;', 'text/html; charset=utf-8', '') },
);

const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.record({ 'idempotency-key': fc.oneof(fc.constantFrom('k1', 'k2', ''), fc.string({ maxLength: 8 }).map((s) => enc(s)), fc.constant('k'.repeat(300))) }) },
  // A tiny pool of keys, so that keys are reused across endpoints, bodies and sessions.
  { weight: 2, arbitrary: fc.record({ 'idempotency-key': fc.constantFrom('reuse', 'reuse2', '__proto__', 'constructor') }) },
  { weight: 1, arbitrary: fc.record({ accept: fc.constantFrom('application/x-npy', 'text/html', '*/*', 'application/json', 'application/x-npy;q=0.1, application/json') }) },
  { weight: 1, arbitrary: fc.record({ 'x-api-key': fc.constantFrom('', 'key', 'k'.repeat(1000)) }) },
  { weight: 1, arbitrary: fc.record({ 'x-gradserve-session-id': fc.constantFrom('{WID}', 'abcdefgh', 'short', 'x'.repeat(64), '../../etc') }) },
);

/** A JSON body as text: usually well-formed, sometimes truncated, padded or not JSON at all. */
function bodyText(v: fc.Arbitrary<unknown>): fc.Arbitrary<string | Buffer | undefined> {
  return fc.oneof(
    { weight: 20, arbitrary: v.map(toJson) },
    { weight: 1, arbitrary: fc.tuple(v, fc.nat()).map(([x, n]) => { const t = toJson(x); return t.slice(0, n % (t.length + 1)); }) },
    { weight: 1, arbitrary: v.map((x) => `\uFEFF${toJson(x)}`) },
    { weight: 1, arbitrary: v.map((x) => Buffer.from(toJson(x), 'utf16le')) },
    { weight: 1, arbitrary: fc.constantFrom(undefined, '', ' ', 'null', '[]', '{', '{"a":1,"a":2}', '{"__proto__":{"x":1}}', 'NaN', '1e309', '"x"', '\u0000') },
  );
}

/** A valid-looking object, then maybe mutated: a field removed, retyped, oversized, or added. */
function mutated(obj: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<unknown> {
  return fc.tuple(obj, fc.integer({ min: 0, max: 9 }), fc.nat(), anyJson).map(([o, how, i, junk]) => {
    const keys = Object.keys(o);
    const k = keys.length ? keys[i % keys.length] : 'x';
    const c: Record<string, unknown> = { ...o };
    switch (how) {
      case 0: delete c[k]; return c;
      case 1: c[k] = junk; return c;
      // Oversized, but bounded: the body limit is 256 KiB and the generator must not build gigabytes.
      case 2: c[k] = typeof c[k] === 'string' ? (c[k] as string).slice(0, 50).repeat(2000) : Array(5000).fill(typeof c[k] === 'number' || typeof c[k] === 'boolean' ? c[k] : 1); return c;
      case 3: c[`${k}_extra`] = junk; return c;
      case 4: return [c];
      case 5: return junk;
      default: return c;
    }
  });
}

const bool = fc.oneof({ weight: 6, arbitrary: fc.boolean() }, { weight: 1, arbitrary: anyJson });
const headGrad = fc.oneof(fc.constant(null), ref, nestedData, number);

function bodies(ops: OpInfo[]) {
  const program = programArb(ops);
  const expr = exprArb(ops);
  const dtypes = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('float32', 'float64') }, { weight: 1, arbitrary: anyJson });
  const arrayBody = fc.oneof(
    fc.record({ name, data: nestedData, shape, dtype: dtypes }, { requiredKeys: ['name', 'data'] }),
    fc.record({ name, data: fc.array(number, { maxLength: 12 }), shape, dtype: dtypes }, { requiredKeys: ['name', 'data', 'shape'] }),
    fc.record({ name, data_base64: base64Data, shape, dtype: dtypes }, { requiredKeys: ['name', 'data_base64', 'shape'] }),
  );
  const opsBody = fc.record({
    which: fc.oneof({ weight: 1, arbitrary: program.map((ops) => ({ ops })) }, { weight: 1, arbitrary: expr.map((expr) => ({ expr })) }),
    record: bool, train_mode: bool,
    fetch: fc.oneof(fc.boolean(), fc.array(ref, { maxLength: 3 }), anyJson),
    format: fc.oneof(fc.constantFrom('nested', 'flat', 'base64'), anyJson),
  }, { requiredKeys: ['which'] }).map(({ which, ...rest }) => ({ ...which, ...rest }));
  return {
    program, expr, arrayBody, opsBody,
    session: fc.record({ ttl_seconds: fc.oneof(fc.integer({ min: -5, max: 100 }), number), seed: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), number), default_dtype: dtypes }, { requiredKeys: [] }),
    put: fc.oneof(
      fc.record({ data: nestedData, shape, dtype: dtypes, name }, { requiredKeys: ['data'] }),
      fc.record({ data_base64: base64Data, shape, dtype: dtypes }, { requiredKeys: ['data_base64', 'shape'] }),
    ),
    attach: fc.record({ grad_req: fc.oneof(fc.constantFrom('write', 'add', 'null'), anyJson) }, { requiredKeys: [] }),
    arrayBackward: fc.record({ head_grad: headGrad, retain_graph: bool, train_mode: bool }, { requiredKeys: [] }),
    scope: fc.record({ train_mode: bool }, { requiredKeys: [] }),
    backward: fc.record({ heads: fc.oneof(ref, fc.array(ref, { maxLength: 3 })), head_grads: fc.array(headGrad, { maxLength: 3 }), retain_graph: bool, train_mode: bool }, { requiredKeys: ['heads'] }),
    grad: fc.record({
      heads: fc.oneof(ref, fc.array(ref, { maxLength: 3 })), variables: fc.oneof(name, fc.array(name, { maxLength: 3 })),
      head_grads: fc.array(headGrad, { maxLength: 3 }), retain_graph: bool, create_graph: bool, train_mode: bool, out: fc.array(name, { maxLength: 3 }),
    }, { requiredKeys: ['heads', 'variables'] }),
  };
}

const target: fc.Arbitrary<Target> = fc.oneof({ weight: 30, arbitrary: fc.constant('attacker' as const) }, { weight: 3, arbitrary: fc.constant('witness' as const) }, { weight: 1, arbitrary: fc.constant('unknown' as const) });
const authFor = (t: Target): fc.Arbitrary<Auth> => (t === 'attacker'
  ? fc.oneof({ weight: 30, arbitrary: fc.constant('token' as const) }, { weight: 1, arbitrary: fc.constantFrom<Auth>('none', 'garbage', 'malformed') }, { weight: 2, arbitrary: fc.constant<Auth>('odd') })
  : fc.constantFrom<Auth>('token', 'none', 'garbage', 'malformed', 'odd'));

const tapeId = fc.oneof(fc.constantFrom('t1', 't2', 't3', 't0', 't999999', 'T1', '..', '%2e%2e', '__proto__', 'constructor'), fc.string({ maxLength: 70 }).map(enc));
const fmtQuery = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('', '?format=nested', '?format=flat', '?format=base64') }, { weight: 1, arbitrary: fc.constantFrom('?format=npy', '?format=', '?format=base64&format=flat', '?format[]=flat', '?format=%00', '?format=dot', '?format=svg') });

type Bare = Omit<FuzzReq, 'target' | 'auth' | 'headers'>;
type Weighted = { weight: number; arbitrary: fc.Arbitrary<Bare> };

/** Requests to the session endpoints, with bodies generated for each; `only` picks families. */
function sessionRequest(ops: OpInfo[], only: (kind: string) => boolean = () => true): fc.Arbitrary<Bare> {
  const b = bodies(ops);
  const nm = name.map(enc);
  const j = (kind: string, method: string, path: fc.Arbitrary<string>, body?: fc.Arbitrary<unknown>, mut = true) =>
    fc.record({ path, body: body ? bodyText(mut ? fc.oneof({ weight: 15, arbitrary: body }, { weight: 5, arbitrary: mutated(body as fc.Arbitrary<Record<string, unknown>>) }) : body) : fc.constant(undefined) })
      .map(({ path, body }) => ({ kind, method, path, body }));
  const c = fc.constant;
  const all: (Weighted & { kind: string })[] = [
    { kind: 'ops-json', weight: 60, arbitrary: j('ops-json', 'POST', c('{S}/ops'), b.program.map((ops) => ({ ops })), false) },
    { kind: 'ops-expr', weight: 70, arbitrary: j('ops-expr', 'POST', c('{S}/ops'), b.expr.map((expr) => ({ expr })), false) },
    { kind: 'ops-mutated', weight: 30, arbitrary: j('ops-mutated', 'POST', c('{S}/ops'), b.opsBody) },
    { kind: 'arrays-post', weight: 25, arbitrary: j('arrays-post', 'POST', fc.constantFrom('{S}/arrays'), b.arrayBody) },
    { kind: 'arrays-put', weight: 15, arbitrary: j('arrays-put', 'PUT', nm.map((n) => `{S}/arrays/${n}`), b.put) },
    {
      kind: 'npy',
      weight: 10,
      arbitrary: fc.record({ q: fc.oneof(nm.map((n) => `?name=${n}`), fc.constantFrom('', '?name=', '?name=x&dtype=float64', '?name=x&dtype=int8')), npy: npyBody, put: fc.boolean() })
        .map(({ q, npy, put }) => ({ kind: 'npy', method: put ? 'PUT' : 'POST', path: put ? `{S}/arrays/x${q}` : `{S}/arrays${q}`, body: npy as string | Buffer | undefined })),
    },
    { kind: 'arrays-get', weight: 15, arbitrary: fc.tuple(nm, fmtQuery, fc.boolean()).map(([n, q, g]) => ({ kind: 'arrays-get', method: 'GET', path: `{S}/arrays/${n}${g ? '/grad' : ''}${q}`, body: undefined })) },
    { kind: 'get', weight: 5, arbitrary: fc.constantFrom('{S}/arrays', '{S}', '{S}/autograd', '{S}/tapes').map((p) => ({ kind: 'get', method: 'GET', path: p, body: undefined })) },
    { kind: 'arrays-delete', weight: 5, arbitrary: nm.map((n) => ({ kind: 'arrays-delete', method: 'DELETE', path: `{S}/arrays/${n}`, body: undefined })) },
    { kind: 'attach-grad', weight: 10, arbitrary: j('attach-grad', 'POST', nm.map((n) => `{S}/arrays/${n}/attach-grad`), b.attach) },
    { kind: 'array-backward', weight: 15, arbitrary: j('array-backward', 'POST', nm.map((n) => `{S}/arrays/${n}/backward`), b.arrayBackward) },
    { kind: 'scope', weight: 15, arbitrary: j('scope', 'POST', fc.constantFrom('record', 'pause', 'train-mode', 'predict-mode', 'exit').map((p) => `{S}/autograd/${p}`), b.scope) },
    { kind: 'backward', weight: 15, arbitrary: j('backward', 'POST', c('{S}/backward'), b.backward) },
    { kind: 'grad', weight: 15, arbitrary: j('grad', 'POST', c('{S}/grad'), b.grad) },
    { kind: 'tapes', weight: 10, arbitrary: fc.tuple(tapeId, fc.constantFrom('', '?format=json', '?format=dot', '?format=svg', '?format=png', '?format=x'), fc.boolean()).map(([t, q, del]) => ({ kind: 'tapes', method: del ? 'DELETE' : 'GET', path: `{S}/tapes/${t}${del ? '' : q}`, body: undefined })) },
    {
      kind: 'import',
      weight: 10,
      arbitrary: fc.record({ file: safetensorsBody, how: fc.integer({ min: 0, max: 9 }) })
        .map(({ file, how }) => ({ kind: 'import', method: how === 9 ? 'GET' : 'POST', path: how === 9 ? '{S}/export' : '{S}/import', body: how === 9 ? undefined : file as string | Buffer })),
    },
    // One key, sent again with the same or another body, to another endpoint, or while the first runs.
    {
      kind: 'idem-reuse',
      weight: 8,
      arbitrary: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom<[string, unknown]>(['{S}/ops', { expr: 'x = x + 1', fetch: ['x'] }], ['{S}/ops', { expr: 'q = x * 2' }], ['{S}/backward', { heads: ['y'], retain_graph: true }], ['{S}/grad', { heads: ['y'], variables: ['x'], retain_graph: true }], ['{S}/arrays/l/backward', { retain_graph: true }], ['/v1/sessions', {}]) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom('{S}/ops', '{S}/backward', '{S}/grad'), fc.oneof(b.opsBody, b.backward)) },
      ).map(([path, body]) => ({ kind: 'idem-reuse', method: 'POST', path, body: toJson(body) as string | Buffer | undefined })),
    },
    { kind: 'sessions-post', weight: 10, arbitrary: j('sessions-post', 'POST', c('/v1/sessions'), b.session) },
    // Rare: the attacker deletes its own session (the harness then makes a new one).
    { kind: 'session-delete', weight: 1, arbitrary: c({ kind: 'session-delete', method: 'DELETE', path: '{S}', body: undefined }) },
  ];
  const picked = all.filter((w) => only(w.kind)).map(({ weight, arbitrary }) => ({ weight, arbitrary }));
  if (!picked.length) throw new Error('no request family matches');
  return fc.oneof(...picked);
}

const SEGMENTS = ['v1', 'sessions', '{SID}', 'arrays', 'ops', 'grad', 'backward', 'autograd', 'record', 'exit', 'tapes', 'x', 'attach-grad', '..', '%2e%2e', '%00', '%2F', '', 'metrics', 'healthz', 'readyz', 'docs', 'openapi.json', 'static', 'index.html', 'json', 'yaml', 'a'.repeat(300), '%C3%A9', '%FF%FE', '__proto__', ';', '*'];

/** Anything: a random method and path (probes, docs, nonsense), any body and content type. */
const randomRequest: fc.Arbitrary<Omit<FuzzReq, 'target' | 'auth' | 'headers'>> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND'),
  segs: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SEGMENTS) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }).map(enc) }), { maxLength: 7 }),
  fixed: fc.option(fc.constantFrom('/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/docs/', '/docs/json', '/docs/yaml', '/docs/static/index.html', '/docs/static/swagger-ui.css', '/v1/ops', '/v1/sessions', '/v1', '/', '//', '/v1/sessions/', '/v1//sessions', '/V1/SESSIONS'), { nil: undefined }),
  query: fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('?', '?a=1&a=2', '?format=base64', `?${'q'.repeat(5000)}`, '?%zz', '?__proto__[x]=1') }),
  body: fc.oneof(fc.constant(undefined), bodyText(anyJson)),
}).map(({ method, segs, fixed, query, body }) => ({ kind: 'random', method, path: (fixed ?? `/${segs.join('/')}`) + query, body }));

/**
 * Every kind of request the fuzzer sends; `only` narrows it to some families (their `kind`s:
 * ops-json, ops-expr, ops-mutated, arrays-post, ..., random).
 */
export function requestArb(ops: OpInfo[], only?: (kind: string) => boolean): fc.Arbitrary<FuzzReq> {
  const parts: { weight: number; arbitrary: fc.Arbitrary<Bare> }[] = [];
  const sessionKinds = only ?? (() => true);
  try { parts.push({ weight: 9, arbitrary: sessionRequest(ops, sessionKinds) }); } catch { /* no session family picked */ }
  if (!only || only('random')) parts.push({ weight: 1, arbitrary: randomRequest });
  const any = fc.oneof(...parts);
  return fc.record({ r: any, t: target, extra: extraHeaders, ct: contentType, style: fc.nat({ max: ODD_AUTH.length - 1 }) }).chain(({ r, t, extra, ct, style }) => authFor(t).map((auth) => {
    const headers: Record<string, string> = { ...extra };
    if (r.kind === 'idem-reuse') headers['idempotency-key'] = ['reuse', 'reuse2'][style % 2];
    // GETs and DELETEs mostly come without a content type, as real clients send them.
    if (ct !== null && (r.body !== undefined || ct !== 'application/json')) headers['content-type'] = ct;
    if (r.kind === 'npy' && ct === 'application/json') headers['content-type'] = 'application/x-npy';
    if (r.kind === 'import' && ct === 'application/json' && r.body !== undefined) headers['content-type'] = style % 2 ? 'application/x-safetensors' : 'application/octet-stream';
    return { ...r, target: t, auth, headers, ...(auth === 'odd' ? { authStyle: style } : {}) };
  }));
}

// ---- the target server ------------------------------------------------------------------------

interface Creds { sid: string; token: string }

/** How the attacker session is set up: the names of gen.ts KNOWN_NAMES, a gradient, a live tape. */
const ATTACKER_SETUP = [
  'x = nd.array([[1, 2, 3], [4, 5, 6]])',
  "v = nd.array([1, -2, 0.5, 4], dtype='float64')",
  'm = nd.ones((3, 3))',
  'e = nd.zeros((0, 3))',
  's = nd.array([2])',
  "w = nd.ones((2, 2), dtype='float64')",
  'r6 = nd.ones((1, 2, 1, 2, 1, 1))',
  'i3 = nd.array([0, 2, 1])',
  "b64 = nd.ones((2, 3), dtype='float64')",
  'x.attach_grad()',
  'w.attach_grad()',
  'with autograd.record():',
  '    y = (x * x).sum()',
  '    l = (w * 2).sum()',
].join('\n');

/** The witness: both dtypes, an empty array, non-finite values, a gradient, a live tape. */
const WITNESS_SETUP = [
  'a = nd.array([[1.5, -2, 3], [0.1, 1e30, 7]])',
  "b = nd.array([1, 2, 3, 4], dtype='float64')",
  'z = nd.zeros((0, 3))',
  'k = nd.random.normal(shape=(2, 2))',
  'a.attach_grad()',
  'with autograd.record():',
  '    y = (a * a).sum()',
  'y.backward()',
  'with autograd.record():',
  '    h = a * 3',
].join('\n');

export interface Finding {
  kind: string;
  problem: string;
  req: FuzzReq;
  status?: number;
  answer?: string;
  /** What the server logged about it (5xx): the error message and stack. */
  log?: string;
}

/** The first error message in pino output, for grouping 5xx findings by cause. */
export function loggedMessage(log: string | undefined): string {
  const m = /"message":"((?:[^"\\]|\\.)*)"/.exec(log ?? '');
  return m ? m[1].slice(0, 120) : '';
}

export class FuzzTarget {
  witness!: Creds;
  attacker!: Creds | null;
  private witnessImage = '';
  sent = 0;
  private sinceFresh = 0;

  /** `log` reads the server's output so far: 5xx findings carry the lines logged meanwhile. */
  constructor(readonly url: string, private readonly log?: () => string) {}
  private logSeen = 0;

  async setup(): Promise<void> {
    this.witness = await this.newSession({ seed: 1 }, WITNESS_SETUP);
    // Plus values JSON cannot carry, uploaded the way the contract says they travel.
    const up = await call(this.url, 'POST', `/v1/sessions/${this.witness.sid}/arrays`, this.witness.token, { name: 'n', data: ['NaN', 'Infinity', '-Infinity', 0], dtype: 'float64' });
    if (up.status !== 201) throw new Error(`witness upload: ${up.status} ${JSON.stringify(up.json)}`);
    const add = await call(this.url, 'POST', `/v1/sessions/${this.witness.sid}/arrays/b/attach-grad`, this.witness.token, { grad_req: 'add' });
    if (add.status !== 200) throw new Error(`witness attach: ${add.status}`);
    this.witnessImage = await this.witnessSnapshot();
    this.attacker = null;
  }

  private async newSession(body: object, setup: string): Promise<Creds> {
    const r = await call(this.url, 'POST', '/v1/sessions', null, body);
    if (r.status !== 201) throw new Error(`create session: ${r.status} ${JSON.stringify(r.json)}`);
    const c = { sid: r.json.id as string, token: r.json.token as string };
    const s = await call(this.url, 'POST', `/v1/sessions/${c.sid}/ops`, c.token, { expr: setup });
    if (s.status !== 200) throw new Error(`session setup: ${s.status} ${JSON.stringify(s.json)}`);
    return c;
  }

  /** Everything observable about the witness, as one string (data as base64 bytes). */
  async witnessSnapshot(): Promise<string> {
    const { sid, token } = this.witness;
    const p = `/v1/sessions/${sid}`;
    const get = async (path: string) => {
      const r = await call(this.url, 'GET', path, token);
      if (r.status !== 200) throw new Error(`witness ${path}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json;
    };
    const info = await get(p);
    delete info.expires_at; // renewed by every request, including these reads
    const list = (await get(`${p}/arrays`)).arrays as { name: string; grad_req: string | null }[];
    const data: Record<string, unknown> = {};
    for (const a of list) {
      data[a.name] = await get(`${p}/arrays/${a.name}?format=base64`);
      if (a.grad_req) data[`${a.name}.grad`] = await get(`${p}/arrays/${a.name}/grad?format=base64`);
    }
    const tapes = await get(`${p}/tapes`);
    const autograd = await get(`${p}/autograd`);
    return JSON.stringify({ info, list, data, tapes, autograd });
  }

  /** null when the witness is exactly as it was set up, else what differs. */
  async witnessChanged(): Promise<string | null> {
    const now = await this.witnessSnapshot();
    if (now === this.witnessImage) return null;
    return `witness changed:\n  before ${this.witnessImage}\n  after  ${now}`;
  }

  private pending: Promise<Creds> | null = null;

  private async attackerCreds(): Promise<Creds> {
    // A fresh attacker now and then, so that quotas it exhausted or scopes it left open do not
    // mask everything after them. One creation at a time: concurrent workers share it.
    if (this.attacker && this.sinceFresh++ > 150) {
      const old = this.attacker;
      this.attacker = null;
      await call(this.url, 'DELETE', `/v1/sessions/${old.sid}`, old.token);
    }
    if (this.attacker) return this.attacker;
    this.pending ??= this.newSession({ seed: 7 }, ATTACKER_SETUP).then((c) => {
      this.attacker = c;
      this.sinceFresh = 0;
      return c;
    }).finally(() => { this.pending = null; });
    return this.pending;
  }

  readonly timeByKind = new Map<string, number>();
  /** How often each kind got each status: a kind that never succeeds tests only its refusals. */
  readonly statusByKind = new Map<string, Map<number, number>>();
  /** The slowest answers seen (for finding what makes a run slow). */
  readonly slow: { ms: number; req: FuzzReq; status: number }[] = [];

  /** Resolves the symbolic parts of a request into what goes on the wire. */
  async resolve(req: FuzzReq): Promise<{ path: string; headers: Record<string, string> }> {
    const att = await this.attackerCreds();
    const sid = req.target === 'attacker' ? att.sid : req.target === 'witness' ? this.witness.sid : '00000000-0000-4000-8000-000000000000';
    const path = req.path.replace('{S}', `/v1/sessions/${sid}`).replaceAll('{SID}', sid);
    const headers = { ...req.headers };
    for (const [k, v] of Object.entries(headers)) headers[k] = v.replace('{WID}', this.witness.sid);
    // Never the witness's token: the witness is reached only with someone else's or none.
    if (req.auth === 'token') headers.authorization = `Bearer ${att.token}`;
    else if (req.auth === 'garbage') headers.authorization = `Bearer ${att.token.slice(0, -1)}A`;
    else if (req.auth === 'odd') headers.authorization = ODD_AUTH[(req.authStyle ?? 0) % ODD_AUTH.length](att.token);
    else if (req.auth === 'malformed') headers.authorization = ['Basic eDp5', 'Bearer', 'Bearer  ', `bearer ${att.token} extra`, `Bearer ${att.token}${att.token}`, 'Bearer \u00e9'.replace('\u00e9', '%C3%A9')][att.token.charCodeAt(0) % 6];
    return { path, headers };
  }

  /**
   * Sends one request and answers the property violation it shows, or null. Transport errors
   * count as violations only when the server is then no longer answering.
   */
  async check(req: FuzzReq): Promise<Finding | null> {
    const { path, headers } = await this.resolve(req);
    let ans: RawAnswer;
    this.sent++;
    try {
      ans = await send(this.url, { method: req.method, path, headers, body: req.body });
    } catch (e) {
      const msg = (e as Error).message;
      // The client itself refused to send it (an invalid header or path): not a server finding.
      if (/ERR_INVALID_CHAR|ERR_UNESCAPED|Invalid character|ERR_HTTP_INVALID|Request path contains/.test(`${(e as NodeJS.ErrnoException).code} ${msg}`)) return null;
      if (await this.alive()) {
        // A closed connection on nonsense is fine; a hang is not.
        if (/no answer within/.test(msg)) return { kind: req.kind, problem: `hang: ${msg}`, req };
        return null;
      }
      return { kind: req.kind, problem: `server down after request: ${msg}`, req };
    }
    this.timeByKind.set(req.kind, (this.timeByKind.get(req.kind) ?? 0) + ans.ms);
    const statuses = this.statusByKind.get(req.kind) ?? new Map<number, number>();
    statuses.set(ans.status, (statuses.get(ans.status) ?? 0) + 1);
    this.statusByKind.set(req.kind, statuses);
    if (ans.ms > 250) {
      this.slow.push({ ms: ans.ms, req, status: ans.status });
      this.slow.sort((a, b) => b.ms - a.ms);
      this.slow.length = Math.min(this.slow.length, 10);
    }
    const problem = this.violation(req, ans);
    await this.after(req, ans);
    let logged: string | undefined;
    if (this.log) {
      let all = this.log();
      if (problem && ans.status >= 500) {
        // The log line may reach our pipe a little after the answer does.
        for (let i = 0; i < 20 && all.length === this.logSeen; i++) { await new Promise((r) => setTimeout(r, 10)); all = this.log(); }
        logged = all.slice(this.logSeen);
      }
      this.logSeen = all.length;
    }
    if (!problem) return null;
    return { kind: req.kind, problem, req, status: ans.status, answer: ans.body.toString('utf8').slice(0, 2000), log: logged };
  }

  violation(req: FuzzReq, ans: RawAnswer): string | null {
    const ct = String(ans.headers['content-type'] ?? '');
    if (ans.status >= 500) return `${ans.status} answer`;
    if (ans.status >= 400 && req.method !== 'HEAD') {
      if (!ct.startsWith('application/problem+json')) return `${ans.status} without problem+json (content-type ${ct || 'none'})`;
      let p: any;
      try { p = JSON.parse(ans.body.toString('utf8')); } catch { return `${ans.status} problem+json that does not parse`; }
      if (typeof p?.code !== 'string' || !p.code) return `${ans.status} problem without a code`;
      if (p.status !== ans.status) return `problem status ${p.status} != HTTP ${ans.status}`;
      if (typeof p.detail !== 'string' || typeof p.title !== 'string' || typeof p.type !== 'string') return 'problem without type/title/detail';
    }
    if (ans.status === 429 && !ans.headers['retry-after']) return '429 without Retry-After';
    if (ans.status < 400 && req.method !== 'HEAD' && ct.startsWith('application/json')) {
      try { JSON.parse(ans.body.toString('utf8')); } catch { return `${ans.status} application/json that does not parse`; }
    }
    if (req.target === 'witness' && req.path.startsWith('{S}') && ans.status < 400) {
      return `witness path answered ${ans.status} without the witness's token`;
    }
    return null;
  }

  /** Housekeeping after a request: sessions the traffic created are deleted, a dead attacker replaced. */
  private async after(req: FuzzReq, ans: RawAnswer): Promise<void> {
    if (req.method === 'POST' && ans.status === 201 && /^\/v1\/sessions\/?(\?|$)/.test(req.path)) {
      try {
        const j = JSON.parse(ans.body.toString('utf8'));
        if (j.id && j.token && j.id !== this.witness.sid) await call(this.url, 'DELETE', `/v1/sessions/${j.id}`, j.token);
      } catch { /* the violation check reports unparsable answers */ }
    }
    if (req.target === 'attacker' && req.auth === 'token' && (
      (req.method === 'DELETE' && req.path === '{S}' && ans.status === 204)
      || (ans.status === 404 && /there is no session|was deleted/.test(ans.body.toString('utf8')))
    )) this.attacker = null;
  }

  async alive(): Promise<boolean> {
    try {
      const r = await send(this.url, { method: 'GET', path: '/healthz' }, 5000);
      return r.status === 200;
    } catch {
      return false;
    }
  }
}

export async function fetchOps(url: string): Promise<OpInfo[]> {
  const r = await call(url, 'GET', '/v1/ops');
  if (r.status !== 200) throw new Error(`GET /v1/ops: ${r.status}`);
  return r.json.ops as OpInfo[];
}

/** A request in a form a report can quote: method, path, headers and body text. */
export function showRequest(req: FuzzReq): string {
  const body = req.body === undefined ? '' : Buffer.isBuffer(req.body) ? `\n  body (base64): ${req.body.toString('base64').slice(0, 1500)}` : `\n  body: ${req.body.length > 1500 ? `${req.body.slice(0, 1500)}... (${req.body.length} chars)` : req.body}`;
  return `${req.method} ${req.path}  [target=${req.target} auth=${req.auth}] headers=${JSON.stringify(req.headers)}${body}`;
}

export { Raw };
