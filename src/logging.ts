/**
 * The server's pino options. Request logs carry method, url, status and timing only; bodies are
 * never logged, and the credentials are redacted should a serializer ever include headers.
 */
import { destination, type DestinationStream, type LoggerOptions } from 'pino';
import type { Config } from './config.js';

export function loggerOptions(config: Pick<Config, 'logLevel'>, stream?: DestinationStream): LoggerOptions & { stream?: DestinationStream } {
  return {
    level: config.logLevel,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], censor: '[redacted]' },
    // Standard output, written asynchronously: lines logged while a write is under way go out
    // together with the next, instead of one write(2) each on the request path. pino writes what
    // is left synchronously when the process exits, so a fatal line before exit(75) is kept.
    stream: stream ?? destination({ dest: 1, sync: false }),
  };
}
