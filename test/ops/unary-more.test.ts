/** Forward values of MXNet's log2, log10, cbrt, rcbrt, radians and degrees (issue 13); their gradients are in gradcheck. */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Client, startServer, type TestServer } from '../helpers/server.js';
import { near, val } from './helpers.js';
import { NO_PRESSURE } from './helpers.js';

let srv: TestServer;
let c: Client;
beforeAll(async () => { srv = await startServer(NO_PRESSURE); c = await Client.open(srv.url, { default_dtype: 'float64', seed: 5 }); });
afterAll(async () => { await srv.close(); });

describe('logarithms, roots and angle conversions', () => {
  it('log2 and log10 of powers of their base', async () => {
    near(await val(c, 'nd.log2(nd.array([1, 2, 8, 0.5]))'), [0, 1, 3, -1]);
    near(await val(c, 'nd.log10(nd.array([1, 10, 1000, 0.01]))'), [0, 1, 3, -2]);
  });

  it('cbrt is real for negative inputs, rcbrt is its reciprocal', async () => {
    near(await val(c, 'nd.cbrt(nd.array([-27, -1, 0, 8, 0.125]))'), [-3, -1, 0, 2, 0.5]);
    near(await val(c, 'nd.rcbrt(nd.array([-8, 1, 27]))'), [-0.5, 1, 1 / 3]);
  });

  it('radians and degrees convert both ways', async () => {
    near(await val(c, 'nd.radians(nd.array([0, 90, 180, -360]))'), [0, Math.PI / 2, Math.PI, -2 * Math.PI]);
    near(await val(c, 'nd.degrees(nd.array([0, 3.141592653589793, -1.5707963267948966]))'), [0, 180, -90]);
  });
});

describe('add_n', () => {
  it('sums arrays of one shape elementwise, and copies a single one', async () => {
    near(await val(c, 'nd.add_n(nd.array([1, 2]), nd.array([10, 20]), nd.array([100, 200]))'), [111, 222]);
    near(await val(c, 'nd.ElementWiseSum(nd.array([1, 2]))'), [1, 2]);
  });
});
