/**
 * Prometheus metrics (prom-client): requests by route and status, latency histograms, and the
 * state of the store (sessions, native bytes, tape nodes, ops run, quota refusals) and of the
 * native engine's buffer cache (cached bytes, hits, misses, trims).
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StagingPool } from '../staging.js';
import type { SessionStore } from '../../session/store.js';

export interface Metrics {
  registry: Registry;
  quotaRefusals: Counter<'limit'>;
}

export function registerMetrics(app: FastifyInstance, store: SessionStore, staging?: StagingPool): Metrics {
  const registry = new Registry();
  // prom-client's standard names (process_cpu_seconds_total, nodejs_heap_size_used_bytes), which
  // dashboards and alerts written for any Node service expect.
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: 'gradserve_http_requests_total', help: 'HTTP requests by route, method and status.', labelNames: ['route', 'method', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'gradserve_http_request_duration_seconds', help: 'HTTP request latency by route.', labelNames: ['route', 'method'], registers: [registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const quotaRefusals = new Counter({ name: 'gradserve_quota_refusals_total', help: 'Requests refused by a quota or rate limit, by limit.', labelNames: ['limit'], registers: [registry] });
  new Gauge({ name: 'gradserve_sessions', help: 'Live sessions.', registers: [registry], collect() { this.set(store.size); } });
  new Gauge({ name: 'gradserve_bytes', help: 'Native bytes held by all sessions.', registers: [registry], collect() { this.set(store.memory.bytes); } });
  new Gauge({
    name: 'gradserve_tape_nodes', help: 'Live tape nodes in all sessions.', registers: [registry],
    collect() { let n = 0; for (const s of store.all()) n += s.liveNodeCount(); this.set(n); },
  });
  if (staging) {
    new Gauge({ name: 'gradserve_body_buffer_cached_bytes', help: 'Request-body buffers kept for the next large body (bytes).', registers: [registry], collect() { this.set(staging.cachedBytes); } });
    new Counter({ name: 'gradserve_body_buffer_reuses_total', help: 'Large request bodies read into a kept buffer, allocating nothing.', registers: [registry], collect() { this.reset(); this.inc(staging.hits); } });
    new Counter({ name: 'gradserve_body_buffer_allocations_total', help: 'Large request bodies that needed a new buffer.', registers: [registry], collect() { this.reset(); this.inc(staging.misses); } });
  }
  const cache = store.backend.cache;
  if (cache) {
    // Each collect reads the figures afresh: a lock and seven numbers.
    const gauge = (name: string, help: string, key: keyof ReturnType<typeof cache.stats>) =>
      new Gauge({ name, help, registers: [registry], collect() { this.set(cache.stats()[key]); } });
    const counter = (name: string, help: string, key: keyof ReturnType<typeof cache.stats>) =>
      new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(cache.stats()[key]); } });
    gauge('gradserve_alloc_cached_bytes', 'Freed native buffers kept for reuse (bytes).', 'cachedBytes');
    gauge('gradserve_alloc_small_cached_bytes', 'Freed native buffers under 256 KiB kept in free lists for reuse (bytes; at most 4 MiB).', 'smallCachedBytes');
    gauge('gradserve_alloc_cache_limit_bytes', 'The most the native buffer cache keeps (GRADSERVE_ALLOC_CACHE_BYTES).', 'limitBytes');
    counter('gradserve_alloc_cache_hits_total', 'Large native allocations served from the cache, without page faults.', 'hits');
    counter('gradserve_alloc_cache_misses_total', 'Large native allocations that mapped fresh pages.', 'misses');
    counter('gradserve_alloc_cache_trims_total', 'Times the native buffer cache was given back to the system.', 'trims');
    counter('gradserve_alloc_cache_trimmed_bytes_total', 'Bytes the native buffer cache gave back to the system.', 'trimmedBytes');
  }
  new Counter({
    name: 'gradserve_ops_total', help: 'Ops run by client programs, by op.', labelNames: ['op'], registers: [registry],
    collect() {
      this.reset();
      for (const [op, n] of store.stats.byOp) this.inc({ op }, n);
    },
  });

  // Callback style: an async hook would cost every request a promise.
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    latency.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    done();
  });
  return { registry, quotaRefusals };
}
