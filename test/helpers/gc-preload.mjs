// Preloaded into the server process by the memory tests (test/session/many-sessions.test.ts,
// npm run fuzz): SIGWINCH (not SIGUSR2: close-with-grace
// shuts the server down on that one) runs a full garbage collection
// (the process must be started with --expose-gc), so that resident memory measured afterwards
// is what the server still holds, not garbage V8 has not yet collected.
process.on('SIGWINCH', () => {
  if (typeof globalThis.gc === 'function') globalThis.gc();
});
