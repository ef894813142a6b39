/**
 * A connection to one session of a gradserve server: the typed HTTP client (openapi-fetch over
 * the generated `schema.d.ts`), and the `nd` and `autograd` namespaces built on it.
 */
import createClient, { type Client as FetchClient, type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema.js';
import { GradserveError, errorFromAnswer, networkError } from './errors.js';
import { LazyArray, NDArray, fromJson, type DType, type Nested, type OpArg } from './ndarray.js';
import type { OpName, OpRoot } from './op-names.js';
import { Progress, type ProgressCallback } from './progress.js';

export type Descriptor = components['schemas']['ArrayDescriptor'];
export type OpInfo = components['schemas']['OpList']['ops'][number];
export type AutogradState = components['schemas']['AutogradState'];
export type GradReq = 'write' | 'add' | 'null';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ConnectOptions {
  /** Seed of the session's random stream (random when absent). */
  seed?: number;
  /** dtype of created arrays unless an op says otherwise (float32). */
  defaultDtype?: 'float32' | 'float64';
  ttlSeconds?: number;
  /** Sent as X-API-Key when the server requires a key to create sessions. */
  apiKey?: string;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** JSON has no NaN or infinities: they travel as the strings the API defines (both ways). */
const serialize = (body: unknown) => JSON.stringify(body, (_k, v) => (typeof v === 'number' && !Number.isFinite(v)
  ? (Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity')
  : v));

/**
 * Turns thrown network failures into a GradserveError naming the URL tried. Answers with an
 * error status are not thrown by openapi-fetch; `Session.call` turns those into errors.
 */
const networkErrors: Middleware = {
  onError({ request, error }) {
    return error instanceof GradserveError ? error : networkError(request.method, request.url, error);
  },
};

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** Named arguments of autograd.backward and NDArray.backward. */
export interface BackwardOptions {
  /** Aligned with the heads; null (or absent) means ones. */
  headGrads?: (OpArg | null)[];
  retainGraph?: boolean;
  trainMode?: boolean;
}

export interface GradOptions extends BackwardOptions {
  createGraph?: boolean;
}

/** The transforms of functions the server runs on a def of the session. */
export type TransformKind = 'vjp' | 'jvp' | 'jacobian' | 'hessian' | 'hvp';

/** One array, a list per input or output, or a list of lists (Jacobians and Hessians of several). */
export type ArrayTree = NDArray | NDArray[] | NDArray[][];

export interface TransformOptions {
  /** vjp: one cotangent per output; jvp and hvp: one tangent per input. */
  v?: (NDArray | LazyArray)[];
  createGraph?: boolean;
}

export type GradcheckReport = components['schemas']['GradcheckAnswer'];

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Check the gradient of v^T J (gradgradcheck) instead of J. */
  secondOrder?: boolean;
  gradOutputs?: (NDArray | LazyArray)[];
}

/** A plain object of op attributes: `{axis: 1, keepdims: true}`. */
export type Attrs = Record<string, unknown>;

/**
 * An op of the server's table called from JS: array args, then positional attributes (numbers,
 * lists), then optionally a plain object of keyword attributes. Dotted op names are namespaces:
 * `gs.nd.random.normal({shape: [2, 3]})`.
 */
export type OpFunction = ((...args: (OpArg | Attrs)[]) => LazyArray) & { readonly [sub: string]: OpFunction };

export interface NdBuiltins {
  /** A new array from nested lists (or a typed array with `shape`), like `nd.array`. */
  array(data: Nested | Float32Array | Float64Array, options?: { dtype?: DType; shape?: number[]; onProgress?: ProgressCallback }): LazyArray;
  /** A handle for an array already bound on the server under `name` (e.g. by an expression). */
  get(name: string): LazyArray;
  /** Calls any op by name; resolves to all its outputs (for ops with several, like `split`). An op
   * newer than this client's list is called as `call(name as OpName, ...)`. */
  call(op: OpName, args?: (OpArg | Attrs)[]): Promise<NDArray[]>;
}

/**
 * `gs.nd`: the builtins, and every op of the server's table this client was built with (names,
 * aliases and dotted namespaces): a misspelt op is a type error; at run time the server's own list
 * (GET /v1/ops) decides.
 */
export type Nd = NdBuiltins & { readonly [K in Exclude<OpRoot, keyof NdBuiltins>]: OpFunction };

export class Session {
  /** The typed HTTP client, for endpoints the thin layer does not wrap. */
  readonly api: FetchClient<paths>;
  readonly nd: Nd;
  readonly autograd: Autograd;
  private nextName = 0;
  /** Names of collected NDArray handles, deleted on the server in batches. */
  private dead: string[] = [];
  private readonly registry = new FinalizationRegistry<string>((name) => { this.dead.push(name); });
  private closed = false;

  constructor(
    readonly url: string,
    readonly id: string,
    token: string,
    readonly ops: OpInfo[],
    fetchImpl?: typeof fetch,
    /** The largest request body the server takes (its `limits.body_bytes`). */
    readonly bodyLimit: number = 64 << 20,
  ) {
    // The token lives only in the HTTP client's headers: not a field, so printing, logging or
    // JSON.stringify of a session never shows it.
    this.api = createClient<paths>({
      baseUrl: url,
      headers: { Authorization: `Bearer ${token}` },
      bodySerializer: serialize,
      ...(fetchImpl ? { fetch: fetchImpl } : {}),
    });
    this.api.use(networkErrors);
    this.nd = makeNd(this);
    this.autograd = new Autograd(this);
  }

  toString(): string {
    return `<gradserve Session ${this.id} at ${this.url}>`;
  }

  toJSON(): { url: string; id: string } {
    return { url: this.url, id: this.id };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /** The body of a successful answer, or a GradserveError for an error status. */
  async call<T>(method: string, path: string, request: () => Promise<Answer<T>>): Promise<T> {
    if (this.closed) throw new GradserveError('closed', 0, 'this session was closed', method, this.url + path);
    const { data, error, response } = await request();
    if (!response.ok) throw errorFromAnswer(method, response.url || this.url + path, response.status, error);
    return data as T;
  }

  private get sid() {
    return { path: { sid: this.id } };
  }

  /** A fresh server name for a client-made array (the server names op outputs `_out<N>`). */
  newName(): string {
    return `_ts${++this.nextName}`;
  }

  /** Makes a handle; `owned` handles unbind their server name when they are garbage-collected. */
  handle(d: { name: string; shape: number[]; dtype: DType; grad_req?: GradReq | null }, owned: boolean): NDArray {
    const a = new NDArray(this, d.name, d.shape, d.dtype, d.grad_req ?? null);
    if (owned) this.registry.register(a, d.name);
    return a;
  }

  /** Deletes the server names of collected handles once a few have piled up. */
  private async releaseDead(): Promise<void> {
    if (this.dead.length < 16) return;
    const names = this.dead.splice(0);
    await Promise.all(names.map((name) => this.api.DELETE('/v1/sessions/{sid}/arrays/{name}', { params: { path: { sid: this.id, name } } }).catch(() => undefined)));
  }

  /** POST /ops with a JSON program; answers the outputs' descriptors in binding order. */
  async program(ops: unknown[], extra: { record?: boolean; fetch?: string[] } = {}) {
    await this.releaseDead();
    const answer = await this.call('POST', `/v1/sessions/${this.id}/ops`, () =>
      this.api.POST('/v1/sessions/{sid}/ops', { params: this.sid, body: { ops: ops as never, ...extra } }));
    return answer;
  }

  /**
   * Binds `name` to an array made of `bytes` (little-endian, of `dtype` and `shape`), sent as
   * binary parts of multipart programs, not base64 inside JSON. An array larger than a request
   * body (the session's `limits.body_bytes`) goes in pieces joined on the server, so its size is
   * bounded by the session's memory quota, not the body's.
   */
  async upload(name: string, bytes: Uint8Array, shape: number[], dtype: DType, onProgress?: ProgressCallback): Promise<Descriptor> {
    await this.releaseDead();
    const item = dtype === 'float64' ? 8 : 4;
    // A quarter of the body per piece and two pieces per request leave room for the program.
    const piece = Math.max(item, Math.floor(this.bodyLimit / 4 / item) * item);
    const send = async (ops: unknown[], parts: Uint8Array[]) => {
      const form = new FormData();
      form.append('program', new Blob([JSON.stringify({ ops })], { type: 'application/json' }));
      parts.forEach((p, i) => form.append(`u${i}`, new Blob([p as Uint8Array<ArrayBuffer>]), `u${i}`));
      return this.call('POST', `/v1/sessions/${this.id}/ops`, () => this.api.POST('/v1/sessions/{sid}/ops', {
        params: this.sid, body: form as never, bodySerializer: (b: unknown) => b as never,
      }));
    };
    if (bytes.byteLength <= piece) {
      const a = await send([{ op: 'frombuffer', attrs: { part: 'u0', shape, dtype }, out: name }], [bytes]);
      return a.outputs[name];
    }
    const temps: string[] = [];
    const progress = new Progress(`uploading ${shape.join('x')} ${dtype}`, bytes.byteLength, onProgress);
    for (let off = 0; off < bytes.byteLength; off += 2 * piece) {
      const chunk = [bytes.subarray(off, off + piece), bytes.subarray(off + piece, off + 2 * piece)].filter((c) => c.byteLength > 0);
      const ops = chunk.map((c, i) => {
        temps.push(`${name}__part${temps.length}`);
        return { op: 'frombuffer', attrs: { part: `u${i}`, shape: [c.byteLength / item], dtype }, out: temps[temps.length - 1] };
      });
      await send(ops, chunk);
      progress.update(Math.min(bytes.byteLength, off + 2 * piece));
    }
    progress.close();
    const joined = await this.program([
      { op: 'concat', args: temps, attrs: { dim: 0 }, out: `${name}__joined` },
      { op: 'reshape', args: [`${name}__joined`], attrs: { shape }, out: name },
      { op: 'delete', args: [...temps, `${name}__joined`] },
    ]);
    return joined.outputs[name];
  }

  /** Runs an expression (the contract's MXNet-style language); answers the raw POST /ops answer. */
  async expr(code: string, options: { record?: boolean; trainMode?: boolean; fetch?: string[] | boolean } = {}) {
    return this.call('POST', `/v1/sessions/${this.id}/ops`, () => this.api.POST('/v1/sessions/{sid}/ops', {
      params: this.sid,
      body: { expr: code, record: options.record, train_mode: options.trainMode, fetch: options.fetch },
    }));
  }

  /** Runs one op; resolves to its outputs, as handles owned by this client. */
  async runOp(op: string, args: (OpArg | Attrs)[]): Promise<NDArray[]> {
    const resolved = await Promise.all(args.map(resolveArg));
    let attrs: Attrs | undefined;
    const last = resolved[resolved.length - 1];
    if (isAttrs(last)) {
      attrs = last;
      resolved.pop();
    }
    const answer = await this.program([{ op, args: resolved, ...(attrs ? { attrs } : {}) }]);
    return Object.values(answer.outputs).map((d) => this.handle(d as Descriptor & { dtype: DType }, true));
  }

  /** Reads an array or `name.grad` as nested lists. */
  async read(ref: string): Promise<Nested> {
    const grad = ref.endsWith('.grad');
    const name = grad ? ref.slice(0, -5) : ref;
    const params = { path: { sid: this.id, name }, query: { format: 'nested' as const } };
    const d = grad
      ? await this.call('GET', `/v1/sessions/${this.id}/arrays/${name}/grad`, () => this.api.GET('/v1/sessions/{sid}/arrays/{name}/grad', { params }))
      : await this.call('GET', `/v1/sessions/${this.id}/arrays/${name}`, () => this.api.GET('/v1/sessions/{sid}/arrays/{name}', { params }));
    return fromJson(d.data) as Nested;
  }

  /** Describes a bound name (no data). */
  async describe(name: string): Promise<Descriptor> {
    const d = await this.call('GET', `/v1/sessions/${this.id}/arrays/${name}`, () =>
      this.api.GET('/v1/sessions/{sid}/arrays/{name}', { params: { path: { sid: this.id, name }, query: { format: 'flat' } } }));
    // The route answers an OIP tensor only for format=oip.
    return d as Descriptor;
  }

  async attachGrad(name: string, gradReq: GradReq): Promise<Descriptor> {
    return this.call('POST', `/v1/sessions/${this.id}/arrays/${name}/attach-grad`, () =>
      this.api.POST('/v1/sessions/{sid}/arrays/{name}/attach-grad', { params: { path: { sid: this.id, name } }, body: { grad_req: gradReq } }));
  }

  async backward(heads: (NDArray | LazyArray)[], o: BackwardOptions = {}): Promise<void> {
    const refs = await Promise.all(heads.map(async (h) => (await h).ref));
    const headGrads = o.headGrads ? await Promise.all(o.headGrads.map((g) => (g === null ? null : resolveArg(g)))) : undefined;
    await this.call('POST', `/v1/sessions/${this.id}/backward`, () => this.api.POST('/v1/sessions/{sid}/backward', {
      params: this.sid,
      body: { heads: refs, head_grads: headGrads as never, retain_graph: o.retainGraph, train_mode: o.trainMode },
    }));
  }

  async grad(heads: (NDArray | LazyArray)[], variables: (NDArray | LazyArray)[], o: GradOptions = {}): Promise<NDArray[]> {
    const refs = await Promise.all(heads.map(async (h) => (await h).ref));
    const vars = await Promise.all(variables.map(async (v) => v));
    const out = vars.map(() => this.newName());
    const headGrads = o.headGrads ? await Promise.all(o.headGrads.map((g) => (g === null ? null : resolveArg(g)))) : undefined;
    const answer = await this.call('POST', `/v1/sessions/${this.id}/grad`, () => this.api.POST('/v1/sessions/{sid}/grad', {
      params: this.sid,
      body: {
        heads: refs, variables: vars.map((v) => v.ref), out, head_grads: headGrads as never,
        retain_graph: o.retainGraph, create_graph: o.createGraph, train_mode: o.trainMode,
      },
    }));
    return vars.map((v, i) => this.handle({ ...(answer.grads[v.ref] as Descriptor & { dtype: DType }), name: out[i] }, true));
  }

  /**
   * A transform of `fn`, a def of the session (`gs.expr('def f(x): ...')`), as
   * torch.autograd.functional answers it: `{value, result}` for vjp, jvp and hvp, `{result}` for
   * jacobian and hessian; the result's arrays are new handles.
   */
  async transform(kind: TransformKind, fn: string, inputs: (NDArray | LazyArray)[], o: TransformOptions = {}): Promise<{ value?: ArrayTree; result: ArrayTree }> {
    const refs = await Promise.all(inputs.map(async (x) => (await x).ref));
    const v = o.v ? await Promise.all(o.v.map(async (x) => (await x).ref)) : undefined;
    const path = `/v1/sessions/{sid}/${kind}` as '/v1/sessions/{sid}/vjp';
    const answer = await this.call('POST', `/v1/sessions/${this.id}/${kind}`, () => this.api.POST(path, {
      params: this.sid, body: { function: fn, inputs: refs, v, create_graph: o.createGraph, fetch: false },
    }));
    type Tree = Descriptor | Descriptor[] | Descriptor[][];
    const handles = (t: Tree): ArrayTree => (Array.isArray(t)
      ? t.map((x) => handles(x as Tree)) as NDArray[] | NDArray[][]
      : this.handle(t as Descriptor & { dtype: DType }, true));
    const result = handles(answer.result as Tree);
    return answer.value === undefined ? { result } : { value: handles(answer.value as Tree), result };
  }

  /** POST /gradcheck: `fn`'s Jacobian from vjps and jvps against central differences in float64. */
  async gradcheck(fn: string, inputs: (NDArray | LazyArray)[], o: GradcheckOptions = {}): Promise<GradcheckReport> {
    const refs = await Promise.all(inputs.map(async (x) => (await x).ref));
    const gradOutputs = o.gradOutputs ? await Promise.all(o.gradOutputs.map(async (x) => (await x).ref)) : undefined;
    return this.call('POST', `/v1/sessions/${this.id}/gradcheck`, () => this.api.POST('/v1/sessions/{sid}/gradcheck', {
      params: this.sid, body: { function: fn, inputs: refs, eps: o.eps, atol: o.atol, rtol: o.rtol, second_order: o.secondOrder, grad_outputs: gradOutputs },
    }));
  }

  async autogradState(): Promise<AutogradState> {
    return this.call('GET', `/v1/sessions/${this.id}/autograd`, () => this.api.GET('/v1/sessions/{sid}/autograd', { params: this.sid }));
  }

  /** POST autograd/<kind>: opens a scope on the session's stack. */
  async openScope(kind: ScopePath, trainMode?: boolean): Promise<AutogradState> {
    const body = trainMode === undefined ? {} : { train_mode: trainMode };
    const path = `/v1/sessions/{sid}/autograd/${kind}` as '/v1/sessions/{sid}/autograd/record';
    return this.call('POST', `/v1/sessions/${this.id}/autograd/${kind}`, () => this.api.POST(path, { params: this.sid, body }));
  }

  async exitScope(): Promise<AutogradState> {
    return this.call('POST', `/v1/sessions/${this.id}/autograd/exit`, () => this.api.POST('/v1/sessions/{sid}/autograd/exit', { params: this.sid }));
  }

  /** A recorded tape: its nodes as JSON, or Graphviz DOT / SVG text. */
  async tape(id: string, format: 'json' | 'dot' | 'svg' = 'json'): Promise<unknown> {
    return this.call('GET', `/v1/sessions/${this.id}/tapes/${id}`, () => this.api.GET('/v1/sessions/{sid}/tapes/{tid}', {
      params: { path: { sid: this.id, tid: id }, query: { format } },
      parseAs: format === 'json' ? 'json' : 'text',
    }));
  }

  /** Every bound array and gradient of the session as one safetensors file. */
  async exportFile(): Promise<Uint8Array> {
    const buf = await this.call('GET', `/v1/sessions/${this.id}/export`, () =>
      this.api.GET('/v1/sessions/{sid}/export', { params: this.sid, parseAs: 'arrayBuffer' }));
    return new Uint8Array(buf as ArrayBuffer);
  }

  /** Loads a safetensors file: its names become bindings (all or nothing). */
  async importFile(file: Uint8Array) {
    return this.call('POST', `/v1/sessions/${this.id}/import`, () => this.api.POST('/v1/sessions/{sid}/import', {
      params: this.sid,
      body: file,
      bodySerializer: (b: unknown) => b as BodyInit,
      headers: { 'Content-Type': 'application/x-safetensors' },
    }));
  }

  /** Deletes the session and every array it holds; the handles become unusable. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.call('DELETE', `/v1/sessions/${this.id}`, () => this.api.DELETE('/v1/sessions/{sid}', { params: this.sid }));
    this.closed = true;
  }
}

/** An op argument as the wire wants it: a handle becomes its reference (`x`, `x.grad`). */
async function resolveArg(a: OpArg | Attrs): Promise<unknown> {
  const v = await a;
  return v instanceof NDArray ? v.ref : v;
}

function isAttrs(v: unknown): v is Attrs {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof NDArray) && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * `gs.nd`: a Proxy over the op table the server listed, so that `gs.nd.<op>` exists exactly for
 * the ops this server has (new server ops need no client release), and a misspelt op fails with
 * a message naming it instead of "is not a function".
 */
function makeNd(s: Session): Nd {
  const names = new Set<string>();
  for (const o of s.ops) for (const n of [o.name, ...o.aliases]) names.add(n);
  const builtins: NdBuiltins = {
    array(data, options = {}) {
      return new LazyArray((async () => {
        const name = s.newName();
        const dtype = options.dtype ?? (data instanceof Float64Array ? 'float64' : data instanceof Float32Array ? 'float32' : undefined);
        if ((data instanceof Float32Array || data instanceof Float64Array) && (dtype === undefined || dtype === (data instanceof Float64Array ? 'float64' : 'float32'))) {
          const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
          const d = await s.upload(name, bytes, options.shape ?? [data.length], data instanceof Float64Array ? 'float64' : 'float32', options.onProgress);
          return s.handle(d as Descriptor & { dtype: DType }, true);
        }
        const body = data instanceof Float32Array || data instanceof Float64Array
          ? { name, data_base64: bytesToBase64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)), shape: options.shape ?? [data.length], dtype }
          : { name, data: data as never, shape: options.shape, dtype };
        const d = await s.call('POST', `/v1/sessions/${s.id}/arrays`, () => s.api.POST('/v1/sessions/{sid}/arrays', {
          params: { path: { sid: s.id }, query: {} }, body,
        }));
        return s.handle(d as Descriptor & { dtype: DType }, true);
      })());
    },
    get(name) {
      return new LazyArray(s.describe(name).then((d) => s.handle(d as Descriptor & { dtype: DType }, false)));
    },
    call(op, args = []) {
      return s.runOp(op, args);
    },
  };
  const opFunction = (prefix: string): OpFunction => {
    const fn = (...args: (OpArg | Attrs)[]) => {
      if (!names.has(prefix)) throw new TypeError(`gs.nd.${prefix} is not an op of this server (GET /v1/ops lists them)`);
      return new LazyArray(s.runOp(prefix, args).then((outs) => {
        if (outs.length !== 1) throw new TypeError(`op ${prefix} has ${outs.length} outputs: call it with gs.nd.call('${prefix}', [...])`);
        return outs[0];
      }));
    };
    return new Proxy(fn, {
      get(target, prop) {
        // The function's own members (name, call, bind, ...) stay reachable for tools that inspect it.
        if (typeof prop !== 'string' || prop in target) return Reflect.get(target, prop);
        return opFunction(`${prefix}.${prop}`);
      },
    }) as unknown as OpFunction;
  };
  const isPrefix = (p: string) => [...names].some((n) => n.startsWith(`${p}.`));
  return new Proxy(builtins, {
    get(target, prop) {
      if (typeof prop !== 'string' || prop in target) return Reflect.get(target, prop);
      // `then` must stay undefined, or `await gs.nd` would call it as a thenable.
      if (prop === 'then') return undefined;
      if (names.has(prop) || isPrefix(prop)) return opFunction(prop);
      throw new TypeError(`gs.nd.${prop} is not an op of this server (GET /v1/ops lists them)`);
    },
    has(target, prop) {
      return prop in target || (typeof prop === 'string' && names.has(prop));
    },
  }) as Nd;
}

/** The paths of the scope endpoints under /autograd. */
type ScopePath = 'record' | 'pause' | 'train-mode' | 'predict-mode' | 'detect-anomaly';

function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * `gs.autograd`: MXNet's scopes as callbacks. Each scope is opened on the server before the
 * callback runs and closed after it, even when it throws, so the session's stack stays balanced.
 */
export class Autograd {
  constructor(private readonly s: Session) {}

  private async within<T>(kind: ScopePath, trainMode: boolean | undefined, fn: () => Promise<T> | T): Promise<T> {
    await this.s.openScope(kind, trainMode);
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      // The callback's error is the one worth seeing; a failed exit after it is secondary.
      await this.s.exitScope().catch(() => undefined);
      throw e;
    }
    await this.s.exitScope();
    return result;
  }

  /** `with autograd.record(train_mode):` — ops run in `fn` are recorded for backward. */
  record<T>(fn: () => Promise<T> | T, options: { trainMode?: boolean } = {}): Promise<T> {
    return this.within('record', options.trainMode ?? true, fn);
  }

  /** `with autograd.pause(train_mode):` — recording off inside. */
  pause<T>(fn: () => Promise<T> | T, options: { trainMode?: boolean } = {}): Promise<T> {
    return this.within('pause', options.trainMode ?? false, fn);
  }

  /** `with autograd.train_mode():` — training on, recording untouched. */
  trainMode<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.within('train-mode', undefined, fn);
  }

  /** `with autograd.predict_mode():` — training off, recording untouched. */
  predictMode<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.within('predict-mode', undefined, fn);
  }

  /** `with autograd.detect_anomaly():` — the first op that makes NaN or Inf fails with 422 `anomaly_detected`. */
  detectAnomaly<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.within('detect-anomaly', undefined, fn);
  }

  async isRecording(): Promise<boolean> {
    return (await this.s.autogradState()).is_recording;
  }

  async isTraining(): Promise<boolean> {
    return (await this.s.autogradState()).is_training;
  }

  /** autograd.backward: several heads at once, their gradients summed into the variables' .grad. */
  backward(heads: NDArray | LazyArray | (NDArray | LazyArray)[], options?: BackwardOptions): Promise<void> {
    return this.s.backward(Array.isArray(heads) ? heads : [heads], options);
  }

  /** torch.autograd.functional.vjp of a def of the session: `{value, result}` with v^T J per input. */
  vjp(fn: string, inputs: (NDArray | LazyArray)[], v?: (NDArray | LazyArray)[], options: { createGraph?: boolean } = {}) {
    return this.s.transform('vjp', fn, inputs, { ...options, v });
  }

  /** torch.autograd.functional.jvp: `{value, result}` with J v per output. */
  jvp(fn: string, inputs: (NDArray | LazyArray)[], v?: (NDArray | LazyArray)[], options: { createGraph?: boolean } = {}) {
    return this.s.transform('jvp', fn, inputs, { ...options, v });
  }

  /** torch.autograd.functional.jacobian: output.shape + input.shape per output and input. */
  jacobian(fn: string, inputs: (NDArray | LazyArray)[], options: { createGraph?: boolean } = {}) {
    return this.s.transform('jacobian', fn, inputs, options).then((r) => r.result);
  }

  /** torch.autograd.functional.hessian of a def answering one element. */
  hessian(fn: string, inputs: (NDArray | LazyArray)[], options: { createGraph?: boolean } = {}) {
    return this.s.transform('hessian', fn, inputs, options).then((r) => r.result);
  }

  /** torch.autograd.functional.hvp: `{value, result}` with H v per input. */
  hvp(fn: string, inputs: (NDArray | LazyArray)[], v: (NDArray | LazyArray)[], options: { createGraph?: boolean } = {}) {
    return this.s.transform('hvp', fn, inputs, { ...options, v });
  }

  /** gradcheck (or gradgradcheck with secondOrder): the largest error per input and where. */
  gradcheck(fn: string, inputs: (NDArray | LazyArray)[], options?: GradcheckOptions) {
    return this.s.gradcheck(fn, inputs, options);
  }

  /** autograd.grad: the gradients as new arrays (`.grad` untouched); one per variable. */
  grad(heads: NDArray | LazyArray | (NDArray | LazyArray)[], variables: (NDArray | LazyArray)[], options?: GradOptions): Promise<NDArray[]> {
    return this.s.grad(Array.isArray(heads) ? heads : [heads], variables, options);
  }
}

/**
 * Opens a session on the server at `url` (default $GRADSERVE_URL, else http://127.0.0.1:8080) and
 * reads its op table: `const gs = await connect(url, {seed: 1})`.
 */
export async function connect(url?: string, options: ConnectOptions = {}): Promise<Session> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const base = (url ?? env?.GRADSERVE_URL ?? DEFAULT_URL).replace(/\/+$/, '');
  const bare = createClient<paths>({
    baseUrl: base,
    bodySerializer: serialize,
    headers: options.apiKey ? { 'X-API-Key': options.apiKey } : {},
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  bare.use(networkErrors);
  const check = async <T>(method: string, path: string, r: Promise<Answer<T>>): Promise<T> => {
    const { data, error, response } = await r;
    if (!response.ok) throw errorFromAnswer(method, base + path, response.status, error);
    return data as T;
  };
  const created = await check('POST', '/v1/sessions', bare.POST('/v1/sessions', {
    body: { seed: options.seed, default_dtype: options.defaultDtype, ttl_seconds: options.ttlSeconds },
  }));
  const listing = await check('GET', '/v1/ops', bare.GET('/v1/ops'));
  return new Session(base, created.id, created.token, listing.ops, options.fetch, created.limits?.body_bytes);
}
