/**
 * Platforms (Cloud Run, Heroku, ...) give the port in $PORT: the real process listens there when
 * GRADSERVE_PORT is unset, and then on every interface unless GRADSERVE_HOST says otherwise.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { spawnServer } from '../helpers/spawn.js';

describe('$PORT', () => {
  it('is where the server process listens when GRADSERVE_PORT is unset', async () => {
    const srv = await spawnServer({}, { portVariable: 'PORT' });
    onTestFinished(async () => { await srv.stop(); });
    const r = await fetch(`${srv.url}/healthz`);
    expect(r.status).toBe(200);
  }, 60_000);

  it('yields to GRADSERVE_PORT and GRADSERVE_HOST, and otherwise listens on every interface', () => {
    expect(loadConfig({ PORT: '9001' })).toMatchObject({ port: 9001, host: '0.0.0.0' });
    expect(loadConfig({ PORT: '9001', GRADSERVE_HOST: '127.0.0.1' })).toMatchObject({ port: 9001, host: '127.0.0.1' });
    expect(loadConfig({ PORT: '9001', GRADSERVE_PORT: '9002' })).toMatchObject({ port: 9002, host: '127.0.0.1' });
    expect(loadConfig({})).toMatchObject({ port: 8080, host: '127.0.0.1' });
  });
});
