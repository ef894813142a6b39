/**
 * One client's session: its names, scope stack, tapes, random stream and memory. Requests of a
 * session run one at a time in arrival order (`run`); each ends with a sweep that frees what no
 * name or live tape reaches.
 */
import { randomUUID } from 'node:crypto';
import type { Backend, DType, Storage } from '../engine/backend.js';
import { makeKernels, type Kernels } from '../engine/kernels.js';
import { NDArray } from '../engine/ndarray.js';
import type { GradReq } from '../program/format.js';
import { runWith, type OpEnv } from '../ops/dispatch.js';
import { ScopeStack } from '../autograd/scopes.js';
import { Tape, type Node } from '../autograd/tape.js';
import { recordOp, type RecordTarget } from '../autograd/record.js';
import { attachGrad, gradOf, isRecorded, nodeOf } from '../autograd/slot.js';
import { SessionMemory, type ProcessMemory } from './memory.js';
import type { Limits } from '../config.js';
import { fail } from '../errors.js';
import { Deferred } from './deferred.js';
import { record } from '../lookup.js';
import type { Definition } from '../expr/interp.js';

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
  readonly names = new Map<string, NDArray>();
  /** Functions and classes defined in the expression language, kept like a notebook's. */
  readonly definitions = new Map<string, Definition>();
  readonly scopes = new ScopeStack();
  readonly tapes = new Map<string, Tape>();
  readonly memory: SessionMemory;
  readonly k: Kernels;
  readonly env: OpEnv;
  private queue: Promise<unknown> = Promise.resolve();
  /** Nodes that may still be recorded before the tape-node quota must be counted again. */
  private nodeBudget = 0;
  /** `memory.allocated` at which maybeReclaim next sweeps. */
  private reclaimAt: number;
  /** Arrays held outside the names by whoever is running (a program's temporaries). */
  private readonly rootProviders: (() => (NDArray | Node)[])[] = [];
  /** The backend stream this session's kernels are attributed to (see Backend.withStream). */
  readonly stream = nextStream();
  closed = false;

  /** Elements the current request's answer writes as JSON (bounded by limits.maxJsonElements). */
  jsonElements = 0;

  constructor(o: SessionOptions, backend: Backend, proc: ProcessMemory, readonly limits: Limits, readonly stats = { opsRun: 0 }) {
    this.id = o.id;
    this.tokenHash = o.tokenHash;
    this.ttlMs = o.ttlSeconds * 1000;
    this.expiresAt = new Date(Date.now() + this.ttlMs);
    this.seed = o.seed >>> 0;
    this.defaultDtype = o.defaultDtype;
    this.apiKey = o.apiKey;
    this.memory = new SessionMemory(backend, proc, limits.maxSessionBytes, limits.maxArrayElements, limits.maxKernelFlops, limits.maxSessionArrays);
    this.k = makeKernels(this.memory);
    this.reclaimAt = this.reclaimStep();
    const scopes = this.scopes;
    const target: RecordTarget = {
      // Outside record scopes only create_graph records; its nodes get a tape of their own.
      tape: () => scopes.tape ?? this.newTape(),
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
      record: (def, attrs, inputs, outs) => recordOp(target, def, attrs, inputs, outs),
    };
  }

  /** mx.random.seed: restarts the session's random stream. */
  reseed(seed: number): void {
    this.seed = seed >>> 0;
    this.counter = 0;
  }

  newTape(): Tape {
    const t = new Tape(`t${this.nextTape++}`);
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
    for (const t of this.tapes.values()) for (const node of t.nodes) if (!node.freed) n++;
    return n;
  }

  touch(): void {
    this.expiresAt = new Date(Date.now() + this.ttlMs);
  }

  /**
   * Runs fn as the session's next request: after every earlier one, with the session's op
   * environment, followed by a sweep of unreachable memory.
   */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      if (this.closed) throw fail('not_found', `session ${this.id} was deleted`);
      this.touch();
      this.jsonElements = 0;
      try {
        const be = this.memory.backend;
        const value = await runWith(this.env, () => (be.withStream ? be.withStream(this.stream, fn) : fn()));
        // Large kernels may still be running off the event loop; answers read data only after them.
        await be.flush(this.stream);
        return resolveDeferred(value);
      } finally {
        if (!this.closed) this.sweep();
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
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
    attachGrad(a, req, this.k.full(a.dtype, a.shape, 0));
  }

  /** True when some live tape node still needs this array's current value. */
  neededByTape(a: NDArray): boolean {
    if (isRecorded(a)) return true;
    for (const t of this.tapes.values()) {
      for (const n of t.nodes) {
        if (n.freed) continue;
        if (n.x.some((v) => v instanceof NDArray && v.storage === a.storage)) return true;
        if (n.y.some((v) => v !== undefined && v.storage === a.storage)) return true;
      }
    }
    return false;
  }

  /** Bytes allocated between reclaims: 64 MiB, or a quarter of a smaller session quota. */
  private reclaimStep(): number {
    return Math.min(64 * 2 ** 20, this.limits.maxSessionBytes / 4);
  }

  /**
   * A request's memory is otherwise swept only when it ends, so `x = x + 1` a hundred times on a
   * large x, or a backward pass through a long chain, would hold every dead intermediate until
   * then; MXNet and PyTorch free each one as it dies. Sweeping after every so many bytes
   * allocated keeps peak memory near what is live at a cost in proportion to the work. Callers
   * (the program runner between statements, backward between nodes) say what else they hold.
   */
  maybeReclaim(roots?: () => (NDArray | Node)[]): void {
    if (this.memory.allocated < this.reclaimAt) return;
    const extra = roots ? roots() : [];
    for (const p of this.rootProviders) for (const a of p()) extra.push(a);
    this.sweep(extra);
  }

  /** Runs fn with `roots` counted as live by any reclaim inside it. */
  withRoots<T>(roots: () => (NDArray | Node)[], fn: () => T): T {
    this.rootProviders.push(roots);
    try {
      return fn();
    } finally {
      this.rootProviders.pop();
    }
  }

  /**
   * Marks everything the session's names (and `extraRoots`: arrays, or tape nodes still to be
   * walked) reach; frees the rest, and tapes left empty.
   */
  sweep(extraRoots: (NDArray | Node)[] = []): void {
    const live = new Set<Storage>();
    const nodes = new Set<Node>();
    const stack: NDArray[] = [...this.names.values()];
    const seenArrays = new Set<NDArray>();
    // Two explicit stacks, arrays and nodes, never recursion: a recorded chain can be as long as
    // the tape-node quota, far deeper than the call stack.
    const nodeStack: Node[] = [];
    for (const r of extraRoots) {
      if (r instanceof NDArray) stack.push(r);
      else nodeStack.push(r);
    }
    while (stack.length || nodeStack.length) {
      const n = nodeStack.pop();
      if (n) {
        if (nodes.has(n) || n.freed) continue;
        nodes.add(n);
        for (const v of n.x) if (v instanceof NDArray) stack.push(v);
        for (const v of n.y) if (v) stack.push(v);
        for (const e of n.inputs) {
          if (!e) continue;
          if ('leaf' in e) stack.push(e.leaf);
          else nodeStack.push(e.node);
        }
        continue;
      }
      const a = stack.pop()!;
      if (seenArrays.has(a)) continue;
      seenArrays.add(a);
      live.add(a.storage);
      const g = gradOf(a);
      if (g) stack.push(g);
      const made = nodeOf(a);
      if (made) nodeStack.push(made);
    }
    for (const [id, t] of this.tapes) {
      // Compacted in place: a tape may hold more nodes than a spread's argument limit.
      let kept = 0;
      for (const n of t.nodes) {
        if (!n.freed && !nodes.has(n)) n.free();
        if (!n.freed) t.nodes[kept++] = n;
      }
      t.nodes.length = kept;
      if (!t.open && kept === 0) this.tapes.delete(id);
    }
    this.memory.sweep(live);
    this.reclaimAt = this.memory.allocated + this.reclaimStep();
  }

  close(): void {
    this.closed = true;
    this.names.clear();
    this.definitions.clear();
    this.tapes.clear();
    this.memory.freeAll();
  }
}

/** Replaces every Deferred in a plain answer object by what it reads. */
function resolveDeferred<T>(v: T): T {
  if (v instanceof Deferred) return v.read() as T;
  if (Array.isArray(v)) return v.map(resolveDeferred) as T;
  if (v && typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const out = record<unknown>();
    for (const [k, x] of Object.entries(v)) out[k] = resolveDeferred(x);
    return out as T;
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
