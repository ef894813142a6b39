/**
 * X-Request-Id: a caller's id is kept (so one id follows a request through a proxy, our logs and
 * the caller's), a missing or unusable one is replaced by a UUID; every answer echoes it, and
 * problem bodies carry it as `request_id`.
 */
import { randomUUID } from 'node:crypto';
import { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';

/** Ids are logged and echoed: a bounded, printable alphabet keeps them from forging log lines or headers. */
const USABLE = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export const requestIdOptions: Pick<FastifyServerOptions, 'genReqId' | 'requestIdHeader' | 'logController'> = {
  // One line per request, when it completes (registerRequestId): fastify's own two lines (on
  // arrival and on completion) cost a third of the small-op throughput at the info level.
  logController: new LogController({ disableRequestLogging: true }),
  // fastify would take the header as is; genReqId checks it first.
  requestIdHeader: false,
  genReqId: (req) => {
    const given = req.headers['x-request-id'];
    return typeof given === 'string' && USABLE.test(given) ? given : randomUUID();
  },
};

export function registerRequestId(app: FastifyInstance): void {
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('X-Request-Id', req.id);
    done(null, payload);
  });
  // The arrival only at debug: at info, the completed line says everything the arrival did.
  const enabled = (level: string) => (app.log as unknown as { isLevelEnabled?(l: string): boolean }).isLevelEnabled?.(level) ?? false;
  if (enabled('debug')) {
    app.addHook('onRequest', (req, _reply, done) => {
      req.log.debug({ req }, 'incoming request');
      done();
    });
  }
  app.addHook('onResponse', (req, reply, done) => {
    if (enabled('info')) req.log.info({ req, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    done();
  });
}
