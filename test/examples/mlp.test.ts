/**
 * The book's MLP on a Fashion-MNIST subset, trained through a real listening server with the
 * example's own client (fetch only). Skips only when the dataset package is not installed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { startServer, type TestServer } from '../helpers/server.js';
import { NO_PRESSURE } from '../ops/helpers.js';
import { DATA_DIR, MLP, loadFashionMnist, train } from '../../examples/fashion_mnist.js';

const present = existsSync(DATA_DIR);
if (!present) console.warn(`skipping the Fashion-MNIST example test: ${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)`);

describe.skipIf(!present)('examples/fashion_mnist.ts: the book\'s MLP over HTTP', () => {
  let srv: TestServer;
  let data: ReturnType<typeof loadFashionMnist>;
  // Decoding the images blocks this process, which also hosts the server: do it before listening.
  beforeAll(async () => { data = loadFashionMnist(DATA_DIR, 6000, 2000); srv = await startServer(NO_PRESSURE); });
  afterAll(async () => { await srv.close(); });

  it('three epochs on 6000 training images (70 steps) reach, on 2000 test images, a test accuracy far above chance', async () => {
    const lines: string[] = [];
    const reports = await train(srv.url, MLP, data!, { epochs: 3, log: (s) => lines.push(s) });
    const epoch = reports[reports.length - 1];
    expect(epoch.loss).toBeLessThan(reports[0].loss);
    expect(epoch.testAcc, lines.join('\n')).toBeGreaterThan(0.6);
  }, 600_000); // about 5 s on the native engine, 280 s on the pure-TS reference one
});
