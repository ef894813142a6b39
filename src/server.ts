/** The only file that listens: configuration, logger, backend, graceful shutdown on SIGTERM. */
import closeWithGrace from 'close-with-grace';
import { loadConfig } from './config.js';
import { buildApp } from './app.js';
import { selectBackend } from './engine/select.js';
import { loggerOptions } from './logging.js';

const config = loadConfig();
const backend = await selectBackend(config.backend);
const { app, services } = await buildApp({
  config,
  backend,
  logger: loggerOptions(config),
});

const { drainNoticeMs, shutdownGraceMs } = config.protection;
closeWithGrace({ delay: drainNoticeMs + shutdownGraceMs }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  else app.log.info({ signal }, 'draining and shutting down');
  services.state.draining = true;
  // Still listening: readiness answers 503 until the balancer has seen it (not after an error).
  if (!err && drainNoticeMs > 0) await new Promise((r) => setTimeout(r, drainNoticeMs));
  // fastify closes the connections that are idle when close starts; a keep-alive connection that
  // was mid-request then and idle later would hold the server open until the grace period ends.
  const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
  try {
    await app.close();
  } finally {
    clearInterval(sweep);
  }
});

await app.listen({ host: config.host, port: config.port });
app.log.info({ backend: backend.name, host: config.host, port: config.port }, 'gradserve is listening');
