/**
 * Data an answer will carry, read after the session's kernels have finished: Session.run awaits
 * the backend's flush, then calls `read`, so that reading never blocks the event loop.
 */
export class Deferred<T = unknown> {
  constructor(readonly read: () => T) {}
}
