/** What the routes are given: built once by buildApp (src/app.ts), shared by every route file. */
import type { Config } from '../config.js';
import type { SessionStore } from '../session/store.js';
import type { Metrics } from './plugins/metrics.js';
import type { Durability } from './plugins/durability.js';

export interface Services {
  config: Config;
  store: SessionStore;
  /** True once SIGTERM began a drain: readiness answers 503 so balancers stop sending work. */
  state: { draining: boolean };
  metrics: Metrics;
  /** The state directory's journal, when GRADSERVE_STATE_DIR is set. */
  durable?: Durability;
}
