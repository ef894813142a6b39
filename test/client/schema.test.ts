/**
 * The client's types (src/client/schema.d.ts) are generated from openapi.yaml when the package is
 * built (`npm run build` runs gen:client first), never committed: fail when the client no longer
 * compiles against what the spec generates today.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

describe('the client and the types generated from openapi.yaml', () => {
  it('the client compiles against a fresh gen:client', async () => {
    // Inside the package (so openapi-fetch resolves from node_modules), in an ignored folder.
    const dir = join(root, '.vitest-cache', `client-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      for (const f of readdirSync(join(root, 'src', 'client'))) {
        if (f.endsWith('.ts') && f !== 'schema.d.ts') cpSync(join(root, 'src', 'client', f), join(dir, f));
      }
      // The same command as the gen:client script, so the output cannot differ.
      await run(process.execPath, [join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), 'openapi.yaml', '-o', join(dir, 'schema.d.ts')], { cwd: root });
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: '../../tsconfig.json', compilerOptions: { noEmit: true, rootDir: '.' }, include: ['./*.ts'] }));
      const tsc = await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: root }).catch((e: { stdout: string }) => e);
      expect(tsc.stdout).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
