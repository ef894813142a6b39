/**
 * src/client/schema.d.ts is generated from openapi.yaml by openapi-typescript: fail when it
 * drifts (run `npm run gen`, which regenerates both, after changing a route schema).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js');

describe('the client\'s generated types match openapi.yaml', () => {
  it('src/client/schema.d.ts is what `npm run gen:client` writes', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'gradserve-schema-')), 'schema.d.ts');
    // The same command as the gen:client script, so formatting cannot differ.
    await promisify(execFile)(process.execPath, [cli, 'openapi.yaml', '-o', out], { cwd: root });
    const committed = readFileSync(join(root, 'src', 'client', 'schema.d.ts'), 'utf8');
    expect(committed === readFileSync(out, 'utf8'), 'src/client/schema.d.ts is stale: run `npm run gen`').toBe(true);
  }, 60_000);
});
