/**
 * Every error leaves as RFC 9457 problem+json with a code from the catalogue: our ApiErrors,
 * fastify's own errors (bad JSON, body too large, unsupported media type) and zod validation
 * failures, which name the field. Anything else is a 500 that logs the cause, not the data.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ZodError } from 'zod';
import { ApiError, toProblem, type ErrorCode } from '../errors.js';
import { specificIssue, type IssueLike } from './validation.js';

/** A schema refusal: the field's path (`ops.0.args.1`) and what was wrong with it. */
function invalid(issue: { path: PropertyKey[]; message: string }, where: string): ApiError {
  const path = issue.path.map(String).join('.');
  const field = path ? `\`${path}\` of the ${where}` : `the ${where}`;
  return new ApiError('invalid_request', `${field}: ${issue.message}`, { field: path || where });
}

function fromFastify(err: FastifyError): ApiError | null {
  if (err instanceof ZodError) return invalid(specificIssue(err.issues[0] as IssueLike), 'body');
  if (hasZodFastifySchemaValidationErrors(err)) {
    // fastify-type-provider-zod's copy of the zod issue: the path as a JSON pointer, the rest in params.
    const v = err.validation[0];
    const path = v.instancePath === '/' ? [] : v.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    const issue = { ...(v.params as object), code: v.keyword, path, message: v.message ?? 'invalid' } as IssueLike;
    return invalid(specificIssue(issue), err.validationContext ?? 'body');
  }
  const byCode: Record<string, [ErrorCode, string]> = {
    FST_ERR_CTP_BODY_TOO_LARGE: ['payload_too_large', 'the request body is larger than the limit (GRADSERVE_MAX_BODY_BYTES)'],
    FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'send application/json (or application/x-npy for array uploads)'],
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['invalid_request', 'the Content-Length does not match the body'],
    FST_ERR_CTP_EMPTY_JSON_BODY: ['invalid_request', 'the JSON body is empty'],
    FST_ERR_CTP_INVALID_JSON_BODY: ['invalid_request', 'the body is not valid JSON'],
  };
  const hit = err.code ? byCode[err.code] : undefined;
  if (hit) return new ApiError(hit[0], hit[1]);
  if (err instanceof SyntaxError || err.statusCode === 400) return new ApiError('invalid_request', `the body is not valid JSON: ${err.message}`);
  if (err.statusCode === 413) return new ApiError('payload_too_large', 'the request body is larger than the limit (GRADSERVE_MAX_BODY_BYTES)');
  if (err.statusCode === 415) return new ApiError('unsupported_media_type', err.message);
  if (err.statusCode === 429) return new ApiError('rate_limited', err.message);
  if (err.statusCode === 503) return new ApiError('unavailable', err.message);
  // A plugin's own client error (the static files of /docs refuse a path outside their root with
  // 403) keeps its status when the catalogue has it, and is a 400 otherwise: never a 500.
  const status = err.statusCode ?? 0;
  if (status >= 400 && status < 500) {
    const code = CLIENT_ERRORS.get(status) ?? 'invalid_request';
    return new ApiError(code, err.message);
  }
  return null;
}

/** One catalogue code for each client-error status, for errors that come with a status alone. */
const CLIENT_ERRORS = new Map<number, ErrorCode>([[403, 'forbidden'], [404, 'not_found'], [405, 'method_not_allowed'], [406, 'not_acceptable']]);

export function sendProblem(reply: FastifyReply, err: ApiError, req?: FastifyRequest): FastifyReply {
  return reply.send(problemAnswer(reply, err, req));
}

/** Sets the reply's status and headers for `err` and gives its body (for a hook that replaces an answer). */
export function problemAnswer(reply: FastifyReply, err: ApiError, req?: FastifyRequest): string {
  const problem = toProblem(err, req?.url);
  if (req) {
    problem.request_id = req.id;
    // Open Inference Protocol clients show an error's `error` member (KServe v2, Triton).
    if (/^\/v1\/sessions\/[^/]+\/v2(\/|\?|$)/.test(req.url)) problem.error = err.message;
    // The code is what operators count and search by; the status alone lumps every 422 together.
    req.log[err.status >= 500 ? 'error' : 'info']({ code: err.code, status: err.status, ...(err.extra.limit ? { limit: err.extra.limit } : {}) }, 'problem answered');
  }
  if (err.status === 429 || err.status === 503) reply.header('Retry-After', String(err.extra.retry_after ?? 1));
  reply.code(err.status).type('application/problem+json');
  return JSON.stringify(problem);
}

export function registerProblems(app: FastifyInstance, onProblem: (err: ApiError) => void = () => {}): void {
  app.setErrorHandler((error: FastifyError, req, reply) => {
    let err = error instanceof ApiError ? error : fromFastify(error);
    const cause = err?.code === 'internal' ? (err as { cause?: unknown }).cause : undefined;
    if (cause instanceof Error) req.log.error({ err: { message: cause.message, stack: cause.stack } }, 'unhandled error in a statement');
    if (!err) {
      req.log.error({ err: { message: error.message, stack: error.stack, code: error.code } }, 'unhandled error');
      err = new ApiError('internal', 'the server failed on this request; it has been logged');
    }
    onProblem(err);
    return sendProblem(reply, err, req);
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, new ApiError('not_found', `there is no route ${req.method} ${req.url.split('?')[0]}`), req));
}
