/**
 * One client's session: its names, scope stack, tapes, random stream and memory. Requests of a
 * session run one at a time in arrival order (`run`); each ends by freeing what it made that no
 * name holds (reference counts: src/autograd/refs.ts).
 */
import { randomUUID } from 'node:crypto';
import { isFloat, type Backend, type DType } from '../engine/backend.js';
import { makeKernels, type Kernels } from '../engine/kernels.js';
import { NDArray, type Cell } from '../engine/ndarray.js';
import type { GradReq } from '../program/format.js';
import { runWith, type OpEnv } from '../ops/dispatch.js';
import { ScopeStack } from '../autograd/scopes.js';
import { Tape, type Node } from '../autograd/tape.js';
import { recordOp, type RecordTarget } from '../autograd/record.js';
import { attachGrad, gradOf, isRecorded, nodeOf } from '../autograd/slot.js';
import { SessionMemory, type ProcessMemory } from './memory.js';
import { Bindings } from './bindings.js';
import type { Limits } from '../config.js';
import { ApiError, fail } from '../errors.js';
import { Deferred } from './deferred.js';
import { record } from '../lookup.js';
import type { Definition } from '../expr/interp.js';
import type { Snapshot } from './snapshots.js';
import type { StatementSite } from '../program/site.js';

/** Ops run by client programs, in all and per op (the table's names: a bounded set of labels). */
export interface OpStats {
  opsRun: number;
  readonly byOp: Map<string, number>;
}
export const newOpStats = (): OpStats => ({ opsRun: 0, byOp: new Map() });

/** No binary parts: a JSON program. */
export const NO_UPLOADS: ReadonlyMap<string, Uint8Array> = new Map();

export interface SessionOptions {
  id: string;
  tokenHash: Buffer;
  ttlSeconds: number;
  seed: number;
  defaultDtype: DType;
  apiKey: string | null;
}

export class Session {
  readonly id: string;
  readonly tokenHash: Buffer;
  readonly createdAt = new Date();
  readonly ttlMs: number;
  expiresAt: Date;
  seed: number;
  readonly defaultDtype: DType;
  readonly apiKey: string | null;
  /** Draws taken from the random stream so far. */
  private counter = 0;
  private nextTape = 1;
  private nextAuto = 1;
  readonly names = new Bindings();
  /** Functions and classes defined in the expression language, kept like a notebook's. */
  readonly definitions = new Map<string, Definition>();
  /** Set by the HTTP layer just before `run` for a request the state directory journals. */
  runTag: unknown = undefined;
  /** Called inside the session's queue once the run for a tagged request is done. */
  onRan: ((tag: unknown) => void) | null = null;
  /** Named snapshots (src/session/snapshots.ts): safetensors bytes and what a file cannot say. */
  readonly snapshots = new Map<string, Snapshot>();
  readonly scopes = new ScopeStack();
  readonly tapes = new Map<string, Tape>();
  readonly memory: SessionMemory;
  readonly k: Kernels;
  readonly env: OpEnv;
  private queue: Promise<unknown> = Promise.resolve();
  /** Nodes that may still be recorded before the tape-node quota must be counted again. */
  private nodeBudget = 0;
  /** The backend stream this session's kernels are attributed to (see Backend.withStream). */
  readonly stream = nextStream();
  closed = false;
  /** Programs running (ProgramRunner.run): inside one, every live array is counted. */
  programDepth = 0;

  /** Elements the current request's answer writes as JSON (bounded by limits.maxJsonElements). */
  jsonElements = 0;
  /** Bytes the current request's answer writes as base64 (bounded by limits.maxBase64Bytes). */
  base64Bytes = 0;

  /** The binary parts of the program running now (multipart POST /ops), read by `frombuffer`. */
  uploads: ReadonlyMap<string, Uint8Array> = NO_UPLOADS;

  /** The program statement running now (set by the runner): nodes recorded remember it. */
  site: StatementSite | null = null;

  constructor(o: SessionOptions, backend: Backend, proc: ProcessMemory, readonly limits: Limits, readonly stats: OpStats = newOpStats()) {
    this.id = o.id;
    this.tokenHash = o.tokenHash;
    this.ttlMs = o.ttlSeconds * 1000;
    this.expiresAt = new Date(Date.now() + this.ttlMs);
    this.seed = o.seed >>> 0;
    this.defaultDtype = o.defaultDtype;
    this.apiKey = o.apiKey;
    this.memory = new SessionMemory(backend, proc, limits.maxSessionBytes, limits.maxArrayElements, limits.maxKernelFlops, limits.maxSessionArrays);
    this.k = makeKernels(this.memory);
    const scopes = this.scopes;
    const session = this;
    const target: RecordTarget = {
      // Outside record scopes only create_graph records; its nodes get a tape of their own.
      tape: () => scopes.tape ?? this.newTape(),
      site: () => this.site,
      onRecord: () => {
        // Counting live nodes walks every tape, so it is done only when the budget left by the
        // last count runs out: nodes are added only here, and frees only lower the count.
        if (this.nodeBudget > 0) {
          this.nodeBudget--;
          return;
        }
        const live = this.liveNodeCount();
        this.nodeBudget = Math.max(0, this.limits.maxTapeNodes - live - 1);
        if (live >= this.limits.maxTapeNodes) {
          throw fail('quota_exceeded', `this session's tapes hold ${this.limits.maxTapeNodes} nodes, the limit (GRADSERVE_MAX_TAPE_NODES); run backward or delete tapes first`, { limit: 'tape_nodes', value: this.limits.maxTapeNodes });
        }
      },
    };
    this.env = {
      k: this.k,
      defaultDtype: this.defaultDtype,
      random: (n) => {
        const counter = this.counter;
        this.counter += n;
        return { seed: this.seed, counter };
      },
      get isTraining() { return scopes.isTraining; },
      get isRecording() { return scopes.isRecording; },
      get detectAnomaly() { return scopes.detectAnomaly; },
      get site() { return session.site; },
      record: (def, attrs, inputs, outs) => recordOp(target, def, attrs, inputs, outs),
      upload: (part) => {
        const bytes = this.uploads.get(part);
        if (bytes === undefined) {
          const sent = [...this.uploads.keys()].map((k) => `\`${k}\``).join(', ') || 'none';
          throw fail('invalid_attribute', `no part named \`${part}\` was sent with this program (parts sent: ${sent})`, { attribute: 'part' });
        }
        return bytes;
      },
    };
  }

  /** Where the random stream is, for snapshots. */
  randomState(): { seed: number; counter: number } {
    return { seed: this.seed, counter: this.counter };
  }

  setRandomState(r: { seed: number; counter: number }): void {
    this.seed = r.seed >>> 0;
    this.counter = r.counter;
  }

  /** mx.random.seed: restarts the session's random stream. */
  reseed(seed: number): void {
    this.seed = seed >>> 0;
    this.counter = 0;
  }

  newTape(): Tape {
    const t = new Tape(`t${this.nextTape++}`);
    t.onEmpty = (done) => this.tapes.delete(done.id);
    this.tapes.set(t.id, t);
    return t;
  }

  autoName(): string {
    let n: string;
    do n = `_out${this.nextAuto++}`; while (this.names.has(n));
    return n;
  }

  liveNodeCount(): number {
    let n = 0;
    for (const t of this.tapes.values()) n += t.live;
    return n;
  }

  private assertRefcounts(): void {
    const { leaked, missing } = this.checkRefcounts();
    if (leaked || missing) throw new Error(`refcounts disagree with reachability: ${leaked} unreachable buffers or nodes held, ${missing} reachable freed`);
  }

  touch(): void {
    this.expiresAt = new Date(Date.now() + this.ttlMs);
  }

  /**
   * Runs fn as the session's next request: after every earlier one, with the session's op
   * environment, followed by freeing what it made that nothing references.
   */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    // The request this run is for, when it is to be journaled: taken now, in the order runs queue.
    const tag = this.runTag;
    this.runTag = undefined;
    const next = this.queue.then(async () => {
      if (this.closed) throw fail('not_found', `session ${this.id} was deleted`);
      this.touch();
      this.jsonElements = 0;
      this.base64Bytes = 0;
      const be = this.memory.backend;
      // The request's budget covers its queued kernels too: the backend stops those still pending
      // when it runs out (between kernels, or steps of a large one).
      const budgeted = be.setDeadline !== undefined && be.clearDeadline !== undefined;
      if (budgeted) be.setDeadline!(this.stream, this.limits.requestTimeoutMs);
      // Buffers made from here on are this request's (Cell.born is later than the mark).
      const mark = this.memory.stamp();
      this.names.touched = new Set();
      try {
        let value: T | Promise<T> | undefined;
        let failure: { error: unknown } | null = null;
        try {
          try {
            value = await runWith(this.env, () => (be.withStream ? be.withStream(this.stream, fn) : fn()));
          } finally {
            // Journaled in the order the session ran them, failed ones too: a failing program keeps
            // what its earlier statements did.
            if (tag !== undefined) this.onRan?.(tag);
          }
        } catch (error) {
          failure = { error };
        }
        // Large kernels may still be running off the event loop; answers read data only after them.
        // A failed request waits for its kernels too, so that the next one finds them settled.
        try {
          await be.flush(this.stream);
        } catch (error) {
          failure ??= { error };
        }
        if (budgeted && be.clearDeadline!(this.stream)) throw this.stopped(failure?.error, mark);
        if (failure) throw failure.error;
        return resolveDeferred(value as T);
      } finally {
        this.names.touched = null;
        // The answer has been read: what the request made and no name holds goes now.
        if (!this.closed) {
          this.memory.drain();
          if (this.limits.checkRefcounts) this.assertRefcounts();
        }
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * The answer to a request whose budget ran out while its kernels were queued or running: they
   * were stopped, and the arrays they were to write are marked failed. A stopped kernel that had
   * not started leaves its output as the last completed write left it: an array that existed
   * before the request (one written in place: an optimizer's weight, a gradient buffer) then
   * holds a value it had, and stays bound, listed in `kept`; a gradient buffer the same. Every
   * other name whose array (or gradient buffer) is marked (made by this request, or written part
   * way) is unbound and listed in `lost`. So whatever a client reads afterwards is an old value
   * or a fully computed one. `changed` keeps the names the request bound or wrote that did
   * complete. Whatever error the stop caused on the way (a read of an array that was never
   * computed) is this answer too.
   */
  private stopped(cause: unknown, mark: number): ApiError {
    const be = this.memory.backend;
    const failed = (a: NDArray) => be.failed?.(a.storage) ?? null;
    const lost: string[] = [];
    const kept: string[] = [];
    const restore: NDArray[] = [];
    for (const [name, a] of this.names) {
      const fa = failed(a);
      const g = gradOf(a);
      const fg = g === null ? null : failed(g);
      const keepsValue = fa === null || (fa === 'intact' && a.cell.born < mark);
      // A gradient buffer holds a gradient or the zeros attach_grad gave it, whenever it was made.
      const keepsGrad = fg === null || fg === 'intact';
      if (!keepsValue || !keepsGrad) {
        lost.push(name);
        continue;
      }
      if (fa !== null) restore.push(a);
      if (fg !== null) restore.push(g!);
      if (fa !== null || fg !== null) kept.push(name);
    }
    for (const name of lost) this.names.delete(name);
    for (const a of restore) be.clearFailure?.(a.storage);
    const prior = cause instanceof ApiError && cause.code === 'time_limit' ? cause : null;
    const before = Array.isArray(prior?.extra.changed) ? (prior.extra.changed as string[]) : [...(this.names.touched ?? [])];
    const keptSet = new Set(kept);
    const changed = [...new Set(before)].filter((n) => this.names.has(n) && !keptSet.has(n));
    const ms = this.limits.requestTimeoutMs;
    // The detail names a few; `lost` has them all.
    const named = lost.slice(0, 8).map((n) => `\`${n}\``).join(', ') + (lost.length > 8 ? ` and ${lost.length - 8} more` : '');
    const what = lost.length === 0 ? 'no array was left without its value'
      : `${named} ${lost.length === 1 ? 'was' : 'were'} to be computed by them and ${lost.length === 1 ? 'is' : 'are'} now unbound`;
    const detail = prior
      ? `${prior.message}; the kernels its earlier statements queued were stopped too: ${what}`
      : `the request ran longer than ${ms} ms (GRADSERVE_REQUEST_TIMEOUT_MS) while its kernels were queued or running; they were stopped between kernels: ${what}. Split the work into smaller requests`;
    return fail('time_limit', detail, { ...prior?.extra, limit: 'request_time', changed, lost, kept });
  }

  /** Resolves a name (or `name.grad`) to its array, or a 404/409 naming it. */
  resolve(ref: string): NDArray {
    const isGrad = ref.endsWith('.grad');
    const name = isGrad ? ref.slice(0, -5) : ref;
    const a = this.names.get(name);
    if (!a) throw fail('not_found', `array \`${name}\` is not bound in this session`, { array: name });
    if (!isGrad) return a;
    const g = gradOf(a);
    if (!g) throw fail('no_grad', `array \`${name}\` has no gradient buffer; call attach-grad on it before recording`, { array: name });
    return g;
  }

  /** A name bound to this array (for answers keyed by variable), preferring `hint`. */
  nameOf(a: NDArray, hint?: string): string | null {
    if (hint && this.names.get(hint) === a) return hint;
    for (const [n, v] of this.names) if (v === a) return n;
    return null;
  }

  attachGrad(a: NDArray, req: GradReq): void {
    // Gradients are float: an integer array (labels, indices, pixels) or a float16 one is data.
    if (!isFloat(a.dtype)) {
      throw fail('dtype_mismatch', `attach_grad needs a float32 or float64 array, not ${a.dtype}: integers and float16 carry no gradient; convert with astype('float32') first`, { arg: 'name' });
    }
    attachGrad(a, req, this.k.full(a.dtype, a.shape, 0));
  }

  /** True when some live tape node still needs this array's current value. */
  neededByTape(a: NDArray): boolean {
    return isRecorded(a) || a.cell.saves > 0;
  }

  /**
   * Debug and tests (GRADSERVE_CHECK_REFCOUNTS=1, checked after every request): the buffers
   * held must be exactly those the names reach through gradients, history and saved values, as
   * a mark from the roots finds them. Returns what disagrees; empty when the counts are right.
   */
  checkRefcounts(): { leaked: number; missing: number } {
    const live = new Set<Cell>();
    const nodes = new Set<Node>();
    const stack: NDArray[] = [...this.names.values()];
    const seen = new Set<NDArray>();
    // Explicit stacks, never recursion: a recorded chain can be as long as the tape-node quota.
    const nodeStack: Node[] = [];
    while (stack.length || nodeStack.length) {
      const n = nodeStack.pop();
      if (n) {
        if (nodes.has(n) || n.freed) continue;
        nodes.add(n);
        for (const v of n.x) if (v instanceof NDArray) live.add(v.cell);
        for (const v of n.y) if (v) live.add(v.cell);
        for (const e of n.inputs) {
          if (!e) continue;
          if ('leaf' in e) stack.push(e.leaf);
          else nodeStack.push(e.node);
        }
        continue;
      }
      const a = stack.pop()!;
      if (seen.has(a)) continue;
      seen.add(a);
      live.add(a.cell);
      const g = gradOf(a);
      if (g) stack.push(g);
      const made = nodeOf(a);
      if (made) nodeStack.push(made);
    }
    let leaked = 0;
    let missing = 0;
    for (const c of this.memory.held) if (!live.has(c)) leaked++;
    for (const c of live) if (c.dead) missing++;
    for (const t of this.tapes.values()) for (const n of t.nodes) if (!n.freed && !nodes.has(n)) leaked++;
    return { leaked, missing };
  }

  close(): void {
    this.closed = true;
    // Everything goes at once: the counts need not be walked down.
    this.definitions.clear();
    this.snapshots.clear();
    this.memory.freeAll();
    Map.prototype.clear.call(this.names);
    this.tapes.clear();
  }
}

/** Replaces every Deferred in a plain answer object by what it reads. */
// Containers are copied only from the first member that changed: an answer with nothing deferred
// (most of them, and every fetched number list) comes back as it was, without a copy of each list.
function resolveDeferred<T>(v: T): T {
  if (v instanceof Deferred) return v.read() as T;
  if (Array.isArray(v)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      const r = typeof x === 'object' && x !== null ? resolveDeferred(x) : x;
      if (out) out.push(r);
      else if (r !== x) (out = v.slice(0, i)).push(r);
    }
    return (out ?? v) as T;
  }
  if (v && typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    // for-in over a plain object (its prototype has no enumerable keys): Object.entries built an
    // array of pairs for every object of every answer, most of which hold no Deferred.
    const o = v as Record<string, unknown>;
    let out: Record<string, unknown> | null = null;
    for (const k in o) {
      const x = o[k];
      const r = typeof x === 'object' && x !== null ? resolveDeferred(x) : x;
      if (out) out[k] = r;
      else if (r !== x) {
        out = record<unknown>();
        for (const k2 in o) {
          if (k2 === k) break;
          out[k2] = o[k2];
        }
        out[k] = r;
      }
    }
    return (out ?? v) as T;
  }
  return v;
}

let streams = 0;
function nextStream(): number {
  // Stream numbers are small positive integers; they may wrap after 2^31 sessions, which only
  // makes a flush wait for another session's work too.
  streams = (streams % 0x7ffffffe) + 1;
  return streams;
}

export function newSessionId(): string {
  return randomUUID();
}
