/**
 * The error catalogue: every stable `code` the API answers with, its HTTP status and title.
 * Anything thrown as an ApiError becomes an RFC 9457 problem+json answer (src/http/problem.ts).
 */

export const ERROR_CATALOGUE = {
  invalid_request: { status: 400, title: 'Invalid request',
    help: 'The request is malformed or does not match its schema: bad JSON, a missing or unknown field, a value of the wrong type. `detail` names the field; `field` holds its path.' },
  invalid_expression: { status: 400, title: 'Invalid expression',
    help: 'An expression (`expr`) does not parse or uses something the language does not have. `detail` gives the line and column.' },
  unauthorized: { status: 401, title: 'Unauthorized',
    help: 'No bearer token, a wrong one, or (when the server requires API keys) no valid `X-API-Key`. Send the token POST /v1/sessions answered as `Authorization: Bearer <token>`.' },
  forbidden: { status: 403, title: 'Forbidden',
    help: 'The credential is valid but may not do this.' },
  not_found: { status: 404, title: 'Not found',
    help: 'No such session, array, tape or route. A session may have expired (its TTL passed without a request) or been deleted; `detail` says which when the server still remembers it. Create a new session to go on.' },
  method_not_allowed: { status: 405, title: 'Method not allowed',
    help: 'The route exists but not with this HTTP method.' },
  not_acceptable: { status: 406, title: 'Not acceptable',
    help: 'The `Accept` header asks for a media type this route does not answer.' },
  request_timeout: { status: 408, title: 'Request timeout',
    help: 'The request body stalled (nothing for GRADSERVE_BODY_IDLE_TIMEOUT_MS) or took longer than GRADSERVE_BODY_TIMEOUT_MS to arrive; the connection is closed. Send it again.' },
  graph_freed: { status: 409, title: 'Graph already freed',
    help: 'backward already ran through this graph without `retain_graph`, which freed it. Record the computation again, or pass `retain_graph: true` to the first backward.' },
  no_graph: { status: 409, title: 'No recorded graph',
    help: 'The head has no recorded history: compute it inside a record scope from an array with attach-grad.' },
  no_grad: { status: 409, title: 'No gradient',
    help: 'The array has no gradient buffer, or the heads depend on no array that has one. Call attach-grad on the inputs before recording.' },
  inplace_on_recorded: { status: 409, title: 'In-place write on a recorded array',
    help: 'An in-place write (`into`, slice assignment, `out=`) would change an array that a tape recorded, which would make its gradient wrong. Write into a fresh array, or detach first.' },
  scope_empty: { status: 409, title: 'No open scope',
    help: 'A scope was closed that is not open.' },
  idempotency_conflict: { status: 409, title: 'Idempotency key in flight',
    help: 'A request with the same Idempotency-Key is still running. Wait for it, then retry.' },
  idempotency_mismatch: { status: 422, title: 'Idempotency key reused with another body',
    help: 'The Idempotency-Key was used before with a different body. Use a new key for a new request.' },
  payload_too_large: { status: 413, title: 'Payload too large',
    help: 'The request body is over GRADSERVE_MAX_BODY_BYTES (or a form has too many parts). Send large arrays in pieces, or as binary parts of a multipart program.' },
  array_too_large: { status: 413, title: 'Array too large',
    help: 'An array (or an answer) is over a size limit: elements per array, elements written as JSON, nodes drawn. `limit` names it; read large arrays as base64 or .npy.' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type',
    help: 'This route does not read the body\'s Content-Type. Most routes take application/json; array uploads also take application/x-npy; POST /ops also takes multipart/form-data.' },
  shape_mismatch: { status: 422, title: 'Shape mismatch',
    help: 'Shapes do not fit the op (broadcasting, matrix product, reshape, bytes for a shape). `detail` names the argument and both shapes.' },
  unknown_op: { status: 422, title: 'Unknown op',
    help: 'No op of that name or alias. GET /v1/ops lists them; `detail` suggests the nearest name.' },
  invalid_attribute: { status: 422, title: 'Invalid attribute',
    help: 'An op\'s attribute is unknown or out of range. `attribute` names it; GET /v1/ops gives each op\'s attributes as JSON Schema.' },
  invalid_argument: { status: 422, title: 'Invalid argument',
    help: 'An op\'s argument is of the wrong kind or count.' },
  dtype_mismatch: { status: 422, title: 'Dtype mismatch',
    help: 'The arrays\' dtypes differ where the op needs them equal. Convert one with astype.' },
  anomaly_detected: { status: 422, title: 'Anomaly detected',
    help: 'Anomaly mode (`with autograd.detect_anomaly():`, or `"detect_anomaly": true` on a request) found an op whose output holds NaN or Inf, and stopped there. `op` and `phase` name the op (in backward: the op of the tape node being differentiated, `computed_by` the op of its gradient rule that made the value), `tape_node` and `recorded_at` the node and the line that recorded it, `inputs` the statistics of what the op read, `outputs` how many NaN and Inf each output holds.' },
  statement_failed: { status: 422, title: 'Statement failed',
    help: 'A statement of a program failed; `statement` and `statement_path` say which, `changed` what ran before it.' },
  scope_open: { status: 409, title: 'Scope open',
    help: 'A snapshot or a restore needs no autograd scope open across requests (POST /autograd/record, ...): close them with POST /autograd/exit, then try again.' },
  program_error: { status: 422, title: 'Program error',
    help: 'A program raised a Python error while it ran (a name not defined, a wrong type, a bad index, a call with the wrong arguments). `exception` names it (TypeError, ValueError, ...), `traceback` says where, innermost last; the statements before it stay done.' },
  gradcheck_failed: { status: 422, title: 'Gradient check failed',
    help: 'autograd.gradcheck (or gradgradcheck, or POST /gradcheck) found the Jacobian from the gradient rules and the one from central differences in float64 apart by more than atol + rtol * |numeric|. `inputs` holds, per input, the largest error, the method (vjp or jvp), the output and the indices where it is, and both values.' },
  assertion_failed: { status: 422, title: 'Assertion failed',
    help: 'An `assert` in a program was false. `detail` holds its message and `traceback` where it was; the statements before it stay done.' },
  quota_exceeded: { status: 429, title: 'Quota exceeded',
    help: 'A session or process quota is used up (memory, arrays, tape nodes, sessions). `limit` names it; free arrays or tapes, or delete sessions.' },
  rate_limited: { status: 429, title: 'Too many requests',
    help: 'Too many requests from this credential or address in the window. Wait `Retry-After` seconds; batching ops into programs sends fewer requests.' },
  time_limit: { status: 422, title: 'Time limit exceeded',
    help: 'The request ran past its time budget (GRADSERVE_REQUEST_TIMEOUT_MS), its queued kernels included, and was stopped between statements and between kernels; the session is consistent: `changed` lists what completed, `lost` the names unbound because the stopped kernels were to compute them, `kept` the arrays a stopped kernel was to write in place, which keep the value they held.' },
  unavailable: { status: 503, title: 'Service unavailable',
    help: 'The server is draining or under pressure (event-loop lag, heap). Retry after `Retry-After` seconds, possibly on another replica.' },
  session_moved: { status: 503, title: 'Session moved',
    help: 'Replicas share the state directory and another replica took this session over (its replica had stopped answering) before this answer was given. That replica may hold what the request did, as after a crash: send it again after `Retry-After` seconds with the same Idempotency-Key, and it is answered once by the replica that holds the session.' },
  insufficient_storage: { status: 507, title: 'Insufficient storage',
    help: 'The state directory (GRADSERVE_STATE_DIR) could not take the change: the disk is full or failing. The change was not acknowledged and does not survive a restart; free space, then send the request again.' },
  internal: { status: 500, title: 'Internal error',
    help: 'The server failed; the cause is in its log under this answer\'s request_id. Nothing of another session was touched.' },
} as const satisfies Record<string, { status: number; title: string; help: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    detail: string,
    /** Extra members of the problem object (e.g. `statement`, `limit`). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.status = ERROR_CATALOGUE[code].status;
  }
}

/** Shorthand used across the code base: `throw fail('shape_mismatch', '...')`. */
export function fail(code: ErrorCode, detail: string, extra?: Record<string, unknown>): ApiError {
  return new ApiError(code, detail, extra);
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [k: string]: unknown;
}

/** The `type` URI of a code's problems: a page of the answering server that explains the code. */
export const problemType = (code: ErrorCode): string => `/problems/${code.replace(/_/g, '-')}`;

export function toProblem(err: ApiError, instance?: string): Problem {
  const { status, title } = ERROR_CATALOGUE[err.code];
  return {
    // Relative: it resolves against the server that answered, which serves the page (GET /problems/{code}).
    type: problemType(err.code),
    title,
    status,
    detail: err.message,
    code: err.code,
    ...(instance ? { instance } : {}),
    ...err.extra,
  };
}
