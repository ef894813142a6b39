/**
 * Configuration from the environment, validated once at start-up. Every limit lives here, with its
 * default; the README's configuration table lists the same variables.
 */
import { z } from 'zod';

const int = (d: number) => z.coerce.number().int().min(0).default(d);
const MiB = 1024 * 1024;

export const ConfigSchema = z.object({
  GRADSERVE_HOST: z.string().default('127.0.0.1'),
  GRADSERVE_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  GRADSERVE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRADSERVE_BACKEND: z.enum(['native', 'reference']).default('native'),
  /** Comma-separated API keys; when set, creating a session needs one in X-API-Key. */
  GRADSERVE_API_KEYS: z.string().default(''),
  GRADSERVE_MAX_BODY_BYTES: int(64 * MiB),
  /** Request bodies being received or held by their request, all together (503 above). */
  GRADSERVE_MAX_BODY_BYTES_IN_FLIGHT: int(256 * MiB),
  /** A body that sends nothing for this long is answered 408 and its connection closed. */
  GRADSERVE_BODY_IDLE_TIMEOUT_MS: int(10000),
  /** The longest one request body may take to arrive, however steadily it trickles in. */
  GRADSERVE_BODY_TIMEOUT_MS: int(120000),
  GRADSERVE_MAX_SESSIONS: int(1000),
  /** Where sessions are journaled so that they survive a restart or a crash; empty: in memory only. */
  GRADSERVE_STATE_DIR: z.string().max(4096).default(''),
  /** fdatasync: an answer survives a power loss; write: it survives the process (a crash, kill -9), at less cost. */
  GRADSERVE_STATE_SYNC: z.enum(['fdatasync', 'write']).default('fdatasync'),
  /** Journal bytes a session adds before it is checkpointed (when quiet), so that a replay skips what came before. */
  GRADSERVE_STATE_CHECKPOINT_BYTES: int(64 * MiB),
  /** The state directory's lease term: a new process waits this long for a holder that died without letting go. */
  GRADSERVE_STATE_LEASE_MS: int(10000),
  GRADSERVE_MAX_SESSIONS_PER_KEY: int(100),
  /** Ended sessions whose end the store remembers, to tell their token holders why they are gone. */
  GRADSERVE_REMEMBERED_SESSIONS: int(10000),
  GRADSERVE_SESSION_TTL_SECONDS: int(3600),
  GRADSERVE_MAX_TTL_SECONDS: int(24 * 3600),
  GRADSERVE_MAX_SESSION_BYTES: int(1024 * MiB),
  GRADSERVE_MAX_TOTAL_BYTES: int(8 * 1024 * MiB),
  GRADSERVE_MAX_ARRAY_ELEMENTS: int(64 * MiB),
  GRADSERVE_MAX_STATEMENTS: int(10000),
  GRADSERVE_MAX_EXPR_LENGTH: int(100000),
  GRADSERVE_MAX_EXPR_DEPTH: int(64),
  GRADSERVE_MAX_STEPS: int(100000),
  GRADSERVE_MAX_CALL_DEPTH: int(100),
  GRADSERVE_MAX_DEFINITIONS: int(256),
  /** Named snapshots one session may hold (their bytes count against GRADSERVE_MAX_SESSION_BYTES apart from its arrays). */
  GRADSERVE_MAX_SNAPSHOTS: int(16),
  GRADSERVE_MAX_TAPE_NODES: int(100000),
  GRADSERVE_MAX_SESSION_ARRAYS: int(200000),
  GRADSERVE_MAX_TOTAL_ARRAYS: int(1000000),
  GRADSERVE_MAX_RENDER_NODES: int(2000),
  GRADSERVE_MAX_JSON_ELEMENTS: int(100000),
  GRADSERVE_MAX_BASE64_BYTES: int(64 * MiB),
  GRADSERVE_REQUEST_TIMEOUT_MS: int(60000),
  GRADSERVE_SWEEP_INTERVAL_MS: int(10000),
  /** Freed native buffers of 256 KiB and more kept for reuse (bytes), given back when idle. */
  GRADSERVE_ALLOC_CACHE_BYTES: int(256 * MiB),
  /** Requests per window per client (API key, session token, or address); 0 turns the limit off. */
  GRADSERVE_RATE_LIMIT_MAX: int(60000),
  GRADSERVE_RATE_LIMIT_WINDOW_MS: int(60000),
  /** Event-loop delay above which new requests get 503; 0 turns the check off. */
  GRADSERVE_MAX_EVENT_LOOP_DELAY_MS: int(2000),
  GRADSERVE_MAX_HEAP_BYTES: int(0),
  /** Longest a draining server waits for in-flight requests on SIGTERM. */
  GRADSERVE_SHUTDOWN_GRACE_MS: int(10000),
  /**
   * After SIGTERM, how long the server goes on accepting requests with readiness at 503 before it
   * stops listening, so that a balancer's readiness probe sees the drain and stops sending work.
   */
  GRADSERVE_DRAIN_NOTICE_MS: int(1000),
  /** Largest multiply-add count of one matrix product (refused up front above it). */
  GRADSERVE_MAX_KERNEL_FLOPS: int(2 ** 36),
  /** Idempotency-Key answers kept per process. */
  GRADSERVE_IDEMPOTENCY_ENTRIES: int(10000),
  /** Bytes of the answers kept for Idempotency-Key replay, all together. */
  GRADSERVE_IDEMPOTENCY_BYTES: int(64 * MiB),
  /**
   * Checks every response against its schema (the test suite turns it on). Off, responses are
   * serialized as built: encoding a large answer through zod costs as much as a small request.
   */
  GRADSERVE_CHECK_RESPONSES: z.enum(['0', '1']).default('0'),
  /**
   * After every request, checks each session's reference counts against a mark from its names
   * (the test suite turns it on): the walk costs in proportion to what the session holds.
   */
  GRADSERVE_CHECK_REFCOUNTS: z.enum(['0', '1']).default('0'),
  /**
   * Caps the SIMD instruction set of the native kernels (read by src/engine/native.ts when the
   * addon loads; declared here so a bad value stops the server with the other config errors).
   */
  GRADSERVE_ISA: z.enum(['', 'avx512f', 'avx2', 'sse2']).default(''),
  /** Name of this replica behind a load balancer, echoed as X-Gradserve-Replica; empty: no header. */
  GRADSERVE_REPLICA: z.string().regex(/^[A-Za-z0-9._-]{0,64}$/, 'at most 64 characters of [A-Za-z0-9._-]').default(''),
});

export type Env = z.infer<typeof ConfigSchema>;

export interface Limits {
  maxBodyBytes: number;
  /** Bytes of request bodies in flight across the process: each is buffered whole before parsing. */
  maxBodyBytesInFlight: number;
  bodyIdleTimeoutMs: number;
  bodyTimeoutMs: number;
  maxSessions: number;
  maxSessionsPerKey: number;
  /** Ended sessions remembered (the oldest forgotten first), about 250 bytes of heap each. */
  rememberedSessions: number;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  maxSessionBytes: number;
  maxTotalBytes: number;
  maxArrayElements: number;
  maxStatements: number;
  /** Live nodes of a tape rendered as DOT or SVG (413 above): rendering runs on the event loop. */
  maxRenderNodes: number;
  maxExprLength: number;
  maxExprDepth: number;
  /** Statements, loop iterations and calls of one interpreted program. */
  maxSteps: number;
  /** Nesting of calls of functions defined in the language (recursion). */
  maxCallDepth: number;
  /** def and class definitions one session keeps. */
  maxDefinitions: number;
  /** Named snapshots one session keeps. */
  maxSnapshots: number;
  maxTapeNodes: number;
  /** Array elements one answer may write as JSON numbers: encoding them blocks the event loop (~1.3 µs each). */
  maxJsonElements: number;
  /**
   * Array bytes one answer may write as base64: the text is a third larger and JSON encodes it
   * again (about 6 ms per MiB on the event loop), and past 384 MiB it is longer than V8's
   * largest string.
   */
  maxBase64Bytes: number;
  /** Buffers held per session and per process: each costs JavaScript heap that no byte quota sees. */
  maxSessionArrays: number;
  maxTotalArrays: number;
  requestTimeoutMs: number;
  maxKernelFlops: number;
  /** Debug: after each request, a 500 when the reference counts disagree with reachability. */
  checkRefcounts?: boolean;
}

export interface Protection {
  rateLimitMax: number;
  rateLimitWindowMs: number;
  maxEventLoopDelayMs: number;
  maxHeapBytes: number;
  shutdownGraceMs: number;
  drainNoticeMs: number;
  idempotencyEntries: number;
  idempotencyBytes: number;
}

export interface Config {
  host: string;
  port: number;
  logLevel: Env['GRADSERVE_LOG_LEVEL'];
  backend: Env['GRADSERVE_BACKEND'];
  apiKeys: string[];
  /** Replica name for the X-Gradserve-Replica header ('' = none). */
  replica: string;
  /** GRADSERVE_STATE_DIR: sessions journaled there survive restarts; null keeps them in memory. */
  stateDir: string | null;
  /** Whether the journal fdatasyncs each batch (GRADSERVE_STATE_SYNC=fdatasync) or only writes it. */
  stateSync: boolean;
  stateCheckpointBytes: number;
  stateLeaseMs: number;
  /** Serialize each response through its zod schema and fail it when that changes anything. */
  checkResponses: boolean;
  sweepIntervalMs: number;
  /** The bound of the native engine's cache of freed buffers. */
  allocCacheBytes: number;
  limits: Limits;
  protection: Protection;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Platforms (Cloud Run, Heroku, ...) say where to listen with $PORT and route to every
  // interface; GRADSERVE_PORT and GRADSERVE_HOST, when set, still decide.
  const platformPort = env.GRADSERVE_PORT === undefined && env.PORT !== undefined && env.PORT !== '';
  if (platformPort) env = { ...env, GRADSERVE_PORT: env.PORT, GRADSERVE_HOST: env.GRADSERVE_HOST ?? '0.0.0.0' };
  const r = ConfigSchema.safeParse(env);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${msg}`);
  }
  const e = r.data;
  return {
    host: e.GRADSERVE_HOST,
    port: e.GRADSERVE_PORT,
    logLevel: e.GRADSERVE_LOG_LEVEL,
    backend: e.GRADSERVE_BACKEND,
    apiKeys: e.GRADSERVE_API_KEYS.split(',').map((s) => s.trim()).filter(Boolean),
    replica: e.GRADSERVE_REPLICA,
    stateDir: e.GRADSERVE_STATE_DIR || null,
    stateSync: e.GRADSERVE_STATE_SYNC === 'fdatasync',
    stateCheckpointBytes: e.GRADSERVE_STATE_CHECKPOINT_BYTES,
    stateLeaseMs: e.GRADSERVE_STATE_LEASE_MS,
    checkResponses: e.GRADSERVE_CHECK_RESPONSES === '1',
    sweepIntervalMs: e.GRADSERVE_SWEEP_INTERVAL_MS,
    allocCacheBytes: e.GRADSERVE_ALLOC_CACHE_BYTES,
    limits: {
      maxBodyBytes: e.GRADSERVE_MAX_BODY_BYTES,
      maxBodyBytesInFlight: e.GRADSERVE_MAX_BODY_BYTES_IN_FLIGHT,
      bodyIdleTimeoutMs: e.GRADSERVE_BODY_IDLE_TIMEOUT_MS,
      bodyTimeoutMs: e.GRADSERVE_BODY_TIMEOUT_MS,
      maxSessions: e.GRADSERVE_MAX_SESSIONS,
      maxSessionsPerKey: e.GRADSERVE_MAX_SESSIONS_PER_KEY,
      rememberedSessions: e.GRADSERVE_REMEMBERED_SESSIONS,
      defaultTtlSeconds: e.GRADSERVE_SESSION_TTL_SECONDS,
      maxTtlSeconds: e.GRADSERVE_MAX_TTL_SECONDS,
      maxSessionBytes: e.GRADSERVE_MAX_SESSION_BYTES,
      maxTotalBytes: e.GRADSERVE_MAX_TOTAL_BYTES,
      maxArrayElements: e.GRADSERVE_MAX_ARRAY_ELEMENTS,
      maxStatements: e.GRADSERVE_MAX_STATEMENTS,
      maxRenderNodes: e.GRADSERVE_MAX_RENDER_NODES,
      maxJsonElements: e.GRADSERVE_MAX_JSON_ELEMENTS,
      maxBase64Bytes: e.GRADSERVE_MAX_BASE64_BYTES,
      maxExprLength: e.GRADSERVE_MAX_EXPR_LENGTH,
      maxExprDepth: e.GRADSERVE_MAX_EXPR_DEPTH,
      maxSteps: e.GRADSERVE_MAX_STEPS,
      maxCallDepth: e.GRADSERVE_MAX_CALL_DEPTH,
      maxDefinitions: e.GRADSERVE_MAX_DEFINITIONS,
      maxSnapshots: e.GRADSERVE_MAX_SNAPSHOTS,
      maxTapeNodes: e.GRADSERVE_MAX_TAPE_NODES,
      maxSessionArrays: e.GRADSERVE_MAX_SESSION_ARRAYS,
      maxTotalArrays: e.GRADSERVE_MAX_TOTAL_ARRAYS,
      requestTimeoutMs: e.GRADSERVE_REQUEST_TIMEOUT_MS,
      maxKernelFlops: e.GRADSERVE_MAX_KERNEL_FLOPS,
      checkRefcounts: e.GRADSERVE_CHECK_REFCOUNTS === '1',
    },
    protection: {
      rateLimitMax: e.GRADSERVE_RATE_LIMIT_MAX,
      rateLimitWindowMs: e.GRADSERVE_RATE_LIMIT_WINDOW_MS,
      maxEventLoopDelayMs: e.GRADSERVE_MAX_EVENT_LOOP_DELAY_MS,
      maxHeapBytes: e.GRADSERVE_MAX_HEAP_BYTES,
      shutdownGraceMs: e.GRADSERVE_SHUTDOWN_GRACE_MS,
      drainNoticeMs: e.GRADSERVE_DRAIN_NOTICE_MS,
      idempotencyEntries: e.GRADSERVE_IDEMPOTENCY_ENTRIES,
      idempotencyBytes: e.GRADSERVE_IDEMPOTENCY_BYTES,
    },
  };
}
