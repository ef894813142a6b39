/**
 * buildApp: the fastify instance with its plugins, services and routes, without listening, so
 * tests can inject requests or listen on a port of their own.
 */
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, jsonSchemaTransformObject, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { validatorCompiler } from './http/validation.js';
import { responseSerializer } from './http/serializer.js';
import { registerBodyParsers } from './http/body.js';
import { registerMultipart } from './http/multipart.js';
import { StagingPool } from './http/staging.js';
import type { Config } from './config.js';
import type { Backend } from './engine/backend.js';
import { SessionStore } from './session/store.js';
import { registerProblems, sendProblem } from './http/problem.js';
import { ApiError } from './errors.js';
import { sessionRoutes } from './http/routes/sessions.js';
import { arrayRoutes } from './http/routes/arrays.js';
import { opsRoutes } from './http/routes/ops.js';
import { autogradRoutes } from './http/routes/autograd.js';
import { tapeRoutes } from './http/routes/tapes.js';
import { metaRoutes } from './http/routes/meta.js';
import { fileRoutes } from './http/routes/files.js';
import { snapshotRoutes } from './http/routes/snapshots.js';
import { registerDurability } from './http/plugins/durability.js';
import { problemRoutes } from './http/routes/problems.js';
import { oipRoutes } from './http/routes/oip.js';
import { registerProtection } from './http/plugins/protection.js';
import { registerMetrics } from './http/plugins/metrics.js';
import type { Services } from './http/services.js';
import { registerIdempotency } from './http/plugins/idempotency.js';
import { registerRequestId, requestIdOptions } from './http/plugins/request-id.js';
import { registerSecurityDocs } from './http/plugins/security.js';
import { registerBodyBudget } from './http/plugins/body-budget.js';
import './ops/index.js';

export type { Services } from './http/services.js';


export interface AppOptions {
  config: Config;
  backend: Backend;
  /** A pino logger or fastify logger options; false for silence (tests). */
  logger?: boolean | object;
}

/** The contract's version (docs/API.md); the package's own version is what the explorer shows. */
export const API_VERSION = '1.0.0';

/** package.json's version: found from src/ (tsx) and from dist/src/ (built). */
function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'gradserve' && pkg.version) return pkg.version;
    } catch { /* try the next */ }
  }
  return '0.0.0';
}
export const PACKAGE_VERSION = packageVersion();

/** The most the request-body pool keeps between requests (src/http/staging.ts). */
const STAGING_CACHE_BYTES = 64 * 1024 * 1024;

export async function buildApp(o: AppOptions): Promise<{ app: FastifyInstance; services: Services }> {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.config.limits.maxBodyBytes,
    ...requestIdOptions,
    // Errors fastify raises before routing (a malformed URL) are problem+json too.
    frameworkErrors: (err, req, reply) => {
      sendProblem(reply, new ApiError('invalid_request', `the request is malformed: ${err.message}`), req);
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(responseSerializer(o.config.checkResponses));

  registerRequestId(app);
  const staging = new StagingPool(Math.min(STAGING_CACHE_BYTES, o.config.limits.maxBodyBytesInFlight));
  registerBodyParsers(app, o.config.limits.maxBodyBytes, staging);
  registerMultipart(app, o.config.limits.maxBodyBytes, staging);

  // Behind a load balancer, every answer (errors included) names the replica that produced it, so
  // sticky routing can be checked and a failing replica found from a client's logs.
  const replica = o.config.replica;
  if (replica) app.addHook('onSend', async (_req, reply) => { reply.header('X-Gradserve-Replica', replica); });

  // The cache never adds to the memory budget: it gives way as the sessions' buffers grow.
  o.backend.cache?.setLimit(o.config.allocCacheBytes, o.config.limits.maxTotalBytes);
  const store = new SessionStore(o.backend, o.config.limits);
  store.startCulling(o.config.sweepIntervalMs, () => staging.trim(true));
  const metrics = registerMetrics(app, store, staging);
  registerBodyBudget(app, o.config.limits, store.memory, metrics.registry);
  const services: Services = { config: o.config, store, state: { draining: false }, metrics };
  // Hooked in before the routes, replayed once they are ready (below).
  const durable = o.config.stateDir ? await registerDurability(app, store, {
    dir: o.config.stateDir, sync: o.config.stateSync, checkpointBytes: o.config.stateCheckpointBytes, leaseMs: o.config.stateLeaseMs, replica: o.config.replica,
  }) : null;
  if (durable) services.durable = durable.durability;

  registerProblems(app, (err) => {
    if (err.code === 'quota_exceeded' || err.code === 'rate_limited' || err.code === 'array_too_large') {
      metrics.quotaRefusals.inc({ limit: String(err.extra.limit ?? err.code) });
    }
  });
  await registerProtection(app, o.config, store);
  const answers = registerIdempotency(app, { entries: o.config.protection.idempotencyEntries, bytes: o.config.protection.idempotencyBytes }, store, o.config.apiKeys, metrics.registry);
  durable?.durability.useIdempotency(answers);
  registerSecurityDocs(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'gradserve',
        version: PACKAGE_VERSION,
        description: `Autograd as a service: MXNet-style NDArrays, gradients and tapes held by the server. Contract version ${API_VERSION} (docs/API.md).`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } } },
    },
    transform: jsonSchemaTransform,
    // Collects the schemas with a meta id into components.schemas, which the paths reference.
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  for (const routes of [sessionRoutes, arrayRoutes, opsRoutes, autogradRoutes, tapeRoutes, fileRoutes, snapshotRoutes, oipRoutes, metaRoutes]) {
    await app.register(routes(services));
  }
  await app.register(problemRoutes());
  app.addHook('onClose', async () => {
    // In this order: the journal takes its checkpoints from the sessions before they go.
    await durable?.shutdown();
    store.closeAll();
  });
  await app.ready();
  if (durable) {
    const c = durable.recovered.cut;
    if (c) app.log.warn({ journal: durable.durability.journal.path, cut_at: c.at, dropped_bytes: c.dropped, reason: c.reason }, 'the journal ended in a bad record: cut at the last good one');
    const t0 = Date.now();
    const n = await durable.replay();
    const c2 = await durable.compact();
    app.log.info({ journal: durable.durability.journal.path, records: n, sessions: store.size, ms: Date.now() - t0, checkpoints: c2.checkpoints, bytes_before: c2.before, bytes_after: c2.after }, 'sessions restored from the state directory');
  }
  return { app, services };
}
