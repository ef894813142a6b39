/**
 * The error catalogue: every stable `code` the API answers with, its HTTP status and title.
 * Anything thrown as an ApiError becomes an RFC 9457 problem+json answer (src/http/problem.ts).
 */

export const ERROR_CATALOGUE = {
  invalid_request: { status: 400, title: 'Invalid request' },
  invalid_expression: { status: 400, title: 'Invalid expression' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  not_acceptable: { status: 406, title: 'Not acceptable' },
  graph_freed: { status: 409, title: 'Graph already freed' },
  no_graph: { status: 409, title: 'No recorded graph' },
  no_grad: { status: 409, title: 'No gradient' },
  inplace_on_recorded: { status: 409, title: 'In-place write on a recorded array' },
  scope_empty: { status: 409, title: 'No open scope' },
  idempotency_conflict: { status: 409, title: 'Idempotency key in flight' },
  idempotency_mismatch: { status: 422, title: 'Idempotency key reused with another body' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  array_too_large: { status: 413, title: 'Array too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  shape_mismatch: { status: 422, title: 'Shape mismatch' },
  unknown_op: { status: 422, title: 'Unknown op' },
  invalid_attribute: { status: 422, title: 'Invalid attribute' },
  invalid_argument: { status: 422, title: 'Invalid argument' },
  dtype_mismatch: { status: 422, title: 'Dtype mismatch' },
  statement_failed: { status: 422, title: 'Statement failed' },
  program_error: { status: 422, title: 'Program error' },
  assertion_failed: { status: 422, title: 'Assertion failed' },
  quota_exceeded: { status: 429, title: 'Quota exceeded' },
  rate_limited: { status: 429, title: 'Too many requests' },
  time_limit: { status: 422, title: 'Time limit exceeded' },
  unavailable: { status: 503, title: 'Service unavailable' },
  internal: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

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

export function toProblem(err: ApiError, instance?: string): Problem {
  const { status, title } = ERROR_CATALOGUE[err.code];
  return {
    type: `https://gradserve.dev/problems/${err.code.replace(/_/g, '-')}`,
    title,
    status,
    detail: err.message,
    code: err.code,
    ...(instance ? { instance } : {}),
    ...err.extra,
  };
}
