/**
 * Request bodies in flight, bounded across the process (issue 15, finding 9). fastify buffers a
 * body whole before any handler sees it, and that memory is outside every session quota: ten
 * unfinished 63 MB uploads held 600 MB. Here every body is counted from its first byte until its
 * response has gone (or its connection has closed): a declared Content-Length is reserved before
 * a byte is read, a chunked body as its bytes arrive. A body that does not fit is refused with
 * 503 + Retry-After naming the limit, and its connection is closed rather than drained.
 *
 * The same bytes count against GRADSERVE_MAX_TOTAL_BYTES with the sessions' native bytes, since
 * an upload becomes an array of about its size. A body that stalls (nothing for
 * GRADSERVE_BODY_IDLE_TIMEOUT_MS) or trickles past GRADSERVE_BODY_TIMEOUT_MS is answered 408 and
 * closed, so a client cannot hold its reservation open.
 */
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import type { Limits } from '../../config.js';
import type { ProcessMemory } from '../../session/memory.js';
import { ApiError } from '../../errors.js';
import { isReplay } from '../replay.js';
import { arrivedWhole } from '../body.js';

/** Bodies this large are refused when the process's memory budget has no room for them. */
const LARGE_BODY_BYTES = 1024 * 1024;

export interface BodyBudget {
  /** Bytes of request bodies reserved now. */
  readonly inFlight: number;
}

export function registerBodyBudget(app: FastifyInstance, limits: Limits, memory: ProcessMemory, registry: Registry): BodyBudget {
  const budget = { inFlight: 0 };
  new Gauge({ name: 'gradserve_body_bytes_in_flight', help: 'Bytes of request bodies being received or held by their request.', registers: [registry], collect() { this.set(budget.inFlight); } });

  /**
   * The limit a body of `size` bytes (so far) adding `n` would pass, or null. Only large bodies
   * are held to the process's memory budget: a server full of arrays must still take the small
   * requests that delete them.
   */
  const over = (size: number, n: number): 'body_bytes_in_flight' | 'total_bytes' | null => {
    if (budget.inFlight + n > limits.maxBodyBytesInFlight) return 'body_bytes_in_flight';
    if (size >= LARGE_BODY_BYTES && memory.bytes + budget.inFlight + n > limits.maxTotalBytes) return 'total_bytes';
    return null;
  };

  const refusal = (limit: 'body_bytes_in_flight' | 'total_bytes', wanted: number): ApiError => {
    return limit === 'body_bytes_in_flight'
      ? new ApiError('unavailable', `request bodies in flight hold ${budget.inFlight} bytes and this one would add ${wanted}; the limit is ${limits.maxBodyBytesInFlight} (GRADSERVE_MAX_BODY_BYTES_IN_FLIGHT); retry shortly`, { limit: 'body_bytes_in_flight', value: budget.inFlight + wanted, retry_after: 1 })
      : new ApiError('unavailable', `the server holds ${memory.bytes} bytes of arrays and ${budget.inFlight} of request bodies, and this body would pass its limit of ${limits.maxTotalBytes} (GRADSERVE_MAX_TOTAL_BYTES); retry later`, { limit: 'total_bytes', value: memory.bytes + budget.inFlight + wanted, retry_after: 1 });
  };

  app.addHook('preParsing', (req: FastifyRequest, reply: FastifyReply, payload: Readable, done: (err: Error | null, stream?: Readable) => void) => {
    // A request the journal replays brings its body from memory, and must run as it first did.
    if (isReplay(req)) return done(null, payload);
    const declared = Number(req.headers['content-length']);
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (!(declared > 0) && !chunked) return done(null, payload);
    // fastify answers 413 for these before it reads a byte.
    if (declared > limits.maxBodyBytes) return done(null, payload);

    let held = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    let wholeTimer: NodeJS.Timeout | undefined;
    const clearTimers = () => { clearTimeout(idleTimer); clearTimeout(wholeTimer); };
    // 'close' of the response: sent, or its connection gone (an aborted upload included).
    reply.raw.once('close', () => { clearTimers(); budget.inFlight -= held; held = 0; });
    /** Takes n more bytes for this body, or answers the limit that refuses them. */
    const reserve = (n: number) => {
      const limit = over(held + n, n);
      if (limit) return limit;
      budget.inFlight += n;
      held += n;
      return null;
    };
    const refused = declared > 0 ? reserve(declared) : null;
    if (refused) {
      dropBody(req.raw, limits);
      return done(refusal(refused, declared));
    }
    if (payload === req.raw && arrivedWhole(req.raw, declared)) return done(null, payload);

    // A body refused while it streams in: closing is cheaper than reading the rest of it.
    const closeAfter = () => reply.header('Connection', 'close');

    const stop = (err: ApiError) => {
      clearTimers();
      payload.unpipe(counter);
      closeAfter();
      counter.destroy(err);
    };
    const idle = () => stop(new ApiError('request_timeout', `the request body sent nothing for ${limits.bodyIdleTimeoutMs} ms (GRADSERVE_BODY_IDLE_TIMEOUT_MS); the connection is closed`, { limit: 'body_idle_timeout' }));
    if (limits.bodyIdleTimeoutMs > 0) idleTimer = setTimeout(idle, limits.bodyIdleTimeoutMs);
    if (limits.bodyTimeoutMs > 0) {
      wholeTimer = setTimeout(() => stop(new ApiError('request_timeout', `the request body took longer than ${limits.bodyTimeoutMs} ms to arrive (GRADSERVE_BODY_TIMEOUT_MS); the connection is closed`, { limit: 'body_timeout' })), limits.bodyTimeoutMs);
    }

    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (idleTimer) idleTimer.refresh();
        const limit = declared > 0 ? null : reserve(chunk.length);
        if (limit) return stop(refusal(limit, chunk.length));
        cb(null, chunk);
      },
      flush(cb) { clearTimers(); cb(); },
    });
    // An answer sent before its body was read (a 415, a 404) ends the body's timers, and what is
    // left of the body is read and dropped as node does for an unread body (it does not here,
    // since the body is being consumed through the pipe): otherwise the pipe stays paused and the
    // next request on the connection is never parsed.
    reply.raw.once('finish', () => {
      clearTimers();
      if (!payload.readableEnded) {
        payload.unpipe(counter);
        payload.resume();
      }
    });
    counter.once('close', clearTimers);
    // The parser listens for errors while it reads; a refusal of a body nobody reads (the route
    // answered without it) must not become an uncaught 'error' event.
    counter.on('error', () => {});
    // An aborted upload ends the parse with its error (and the response's close releases it).
    payload.once('error', (err) => counter.destroy(err));
    payload.pipe(counter);
    done(null, counter);
  });
  return budget;
}

/**
 * A body refused before it was read is read and dropped (not kept) while the refusal is sent: a
 * client that writes its whole body before it reads (Python's http.client does) would otherwise
 * meet a closed connection instead of the 503. The body's timers still close one that stalls.
 */
function dropBody(raw: Readable, limits: Limits): void {
  const destroy = () => raw.destroy();
  const idle = limits.bodyIdleTimeoutMs > 0 ? setTimeout(destroy, limits.bodyIdleTimeoutMs) : undefined;
  const whole = limits.bodyTimeoutMs > 0 ? setTimeout(destroy, limits.bodyTimeoutMs) : undefined;
  const end = () => { clearTimeout(idle); clearTimeout(whole); };
  raw.on('data', () => idle?.refresh());
  raw.once('end', end);
  raw.once('close', end);
  raw.on('error', () => {});
  raw.resume();
}
