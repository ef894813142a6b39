/** The one error type the client throws: a problem+json answer, or a server it could not reach. */

/** What the server answers on an error (RFC 9457 problem+json). */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  [k: string]: unknown;
}

export class GradserveError extends Error {
  override readonly name = 'GradserveError';
  /**
   * @param code the server's stable error code (`shape_mismatch`, `no_grad`, ...), or
   *   `network_error` when no answer came, `bad_answer` when the answer was not what the API says.
   * @param status the HTTP status (0 when no answer came).
   * @param detail one sentence saying what was wrong.
   */
  constructor(
    readonly code: string,
    readonly status: number,
    readonly detail: string,
    readonly method: string,
    readonly url: string,
    /** The whole problem object (it may carry more members, e.g. `statement` or `limit`). */
    readonly problem: Problem = {},
    options?: { cause?: unknown },
  ) {
    super(status ? `${method} ${url}: ${status} ${code}: ${detail}` : `${method} ${url}: ${detail}`, options);
  }
}

/** The error for an answer with status >= 400 (its body parsed as JSON when it is). */
export function errorFromAnswer(method: string, url: string, status: number, body: unknown): GradserveError {
  const p: Problem = body && typeof body === 'object' ? (body as Problem) : { detail: typeof body === 'string' ? body.slice(0, 500) : '' };
  const code = typeof p.code === 'string' ? p.code : `http_${status}`;
  const detail = typeof p.detail === 'string' && p.detail ? p.detail : (p.title ?? `the server answered ${status}`);
  return new GradserveError(code, status, detail, method, url, p);
}

/** The error for a request that got no answer: it names the URL tried and the cause. */
export function networkError(method: string, url: string, cause: unknown): GradserveError {
  const why = cause instanceof Error ? ((cause.cause as Error | undefined)?.message ?? cause.message) : String(cause);
  return new GradserveError('network_error', 0, `cannot reach the gradserve server at ${url}: ${why}`, method, url, {}, { cause });
}
