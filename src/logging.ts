/**
 * The server's pino options. Request logs carry method, url, status and timing only; bodies are
 * never logged, and the credentials are redacted should a serializer ever include headers.
 */
import type { DestinationStream, LoggerOptions } from 'pino';
import type { Config } from './config.js';

export function loggerOptions(config: Pick<Config, 'logLevel'>, stream?: DestinationStream): LoggerOptions & { stream?: DestinationStream } {
  return {
    level: config.logLevel,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], censor: '[redacted]' },
    ...(stream ? { stream } : {}),
  };
}
