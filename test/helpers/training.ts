/**
 * A small training loop in the expression language, for the tests that kill servers under one
 * (test/server/durability.test.ts, replicas.test.ts): SETUP binds data and a weight with a
 * gradient buffer, each STEP records a loss, runs backward and updates the weight in place.
 */
export const SETUP = [
  'X = nd.random.normal(shape=(32, 8))',
  'y = nd.random.normal(shape=(32, 1))',
  'w = nd.random.normal(shape=(8, 1)) * 0.1',
  'w.attach_grad()',
].join('\n');

export const STEP = [
  'with autograd.record():',
  '    l = ((nd.dot(nd.tanh(X), w) - y) ** 2).mean()',
  'l.backward()',
  'w[:] = w - 0.1 * w.grad',
].join('\n');
