/**
 * The TypeScript client is its own package (clients/typescript): it compiles against the types
 * generated from today's openapi.yaml, its op list matches the server's table, and, packed and
 * installed into a fresh strict project as a user would, it pulls in no server dependency, makes
 * a misspelt op a type error, and never prints the session's token.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderClientOpNames } from '../../scripts/op-names.js';
import { startServer, type TestServer } from '../helpers/server.js';

const root = join(import.meta.dirname, '..', '..');
const pkg = join(root, 'clients', 'typescript');
const run = promisify(execFile);
const tscBin = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

describe('the client and the types generated from openapi.yaml', () => {
  it('the client compiles against a fresh gen:client', async () => {
    // Inside the repository (so openapi-fetch resolves from node_modules), in an ignored folder.
    const dir = join(root, '.vitest-cache', `client-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      for (const f of readdirSync(join(pkg, 'src'))) {
        if (f.endsWith('.ts') && f !== 'schema.d.ts') cpSync(join(pkg, 'src', f), join(dir, f));
      }
      // The same command as the gen:client script, so the output cannot differ.
      await run(process.execPath, [join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), 'openapi.yaml', '-o', join(dir, 'schema.d.ts')], { cwd: root });
      const config = JSON.parse(readFileSync(join(pkg, 'tsconfig.json'), 'utf8'));
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...config.compilerOptions, noEmit: true, rootDir: '.' }, include: ['./*.ts'] }));
      const tsc = await run(process.execPath, [tscBin, '-p', join(dir, 'tsconfig.json')], { cwd: root }).catch((e: { stdout: string }) => e);
      expect(tsc.stdout).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('clients/typescript/src/op-names.ts is what `npm run gen` writes from the op table', () => {
    expect(readFileSync(join(pkg, 'src', 'op-names.ts'), 'utf8')).toBe(renderClientOpNames());
  });
});

describe('the client as a package, installed into a fresh project', () => {
  let srv: TestServer;
  let project: string;
  beforeAll(async () => {
    srv = await startServer();
    project = join(root, '.vitest-cache', `client-project-${process.pid}`);
    rmSync(project, { recursive: true, force: true });
    mkdirSync(project, { recursive: true });
    // The types are generated, never committed (a fresh clone has none): as `npm run build` does.
    await run(process.execPath, [join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), 'openapi.yaml', '-o', join(pkg, 'src', 'schema.d.ts')], { cwd: root });
    await run(process.execPath, [tscBin, '-p', join(pkg, 'tsconfig.json')], { cwd: root });
    cpSync(join(pkg, 'src', 'schema.d.ts'), join(pkg, 'dist', 'schema.d.ts'));
    const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] as const : ['npm', []] as const;
    const packed = await run(npm[0], [...npm[1], 'pack', '--json', '--pack-destination', project], { cwd: pkg });
    const tarball = JSON.parse(packed.stdout)[0].filename as string;
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
    await run(npm[0], [...npm[1], 'install', '--prefer-offline', '--no-audit', '--no-fund', join(project, tarball)], { cwd: project });
  }, 180_000);
  afterAll(async () => {
    await srv?.close();
    rmSync(project, { recursive: true, force: true });
  });

  it('brings only itself and openapi-fetch, not the server', () => {
    const installed = readdirSync(join(project, 'node_modules')).filter((d) => !d.startsWith('.'));
    expect(installed).toContain('gradserve-client');
    for (const d of installed) expect(['gradserve-client', 'openapi-fetch', 'openapi-typescript-helpers']).toContain(d);
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'gradserve-client', 'package.json'), 'utf8'));
    expect(Object.keys(manifest.dependencies)).toEqual(['openapi-fetch']);
  });

  it('a strict project type-checks against it, and a misspelt op is a type error', async () => {
    writeFileSync(join(project, 'main.ts'), [
      "import { connect, type OpName } from 'gradserve-client';",
      'const gs = await connect(process.env.GRADSERVE_URL!);',
      'const x = await gs.nd.arange(4).reshape([2, 2]);',
      'const y = await gs.nd.random.normal({ shape: [2] });',
      "const op: OpName = 'sigmoid';",
      'await x.op(op);',
      '// @ts-expect-error: not an op of the table',
      'gs.nd.frobnicate(x);',
      '// @ts-expect-error: not an op of the table',
      "await x.op('sigmod');",
      'console.log(y.shape);',
    ].join('\n'));
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: [], lib: ['ES2022', 'DOM'] },
      files: ['main.ts'],
    }));
    // process is a Node global the user's project would type with @types/node; declare it here.
    writeFileSync(join(project, 'env.d.ts'), 'declare const process: { env: Record<string, string | undefined> };\n');
    const tsconfig = JSON.parse(readFileSync(join(project, 'tsconfig.json'), 'utf8'));
    tsconfig.files.push('env.d.ts');
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = await run(process.execPath, [tscBin, '-p', join(project, 'tsconfig.json')], { cwd: project }).catch((e: { stdout: string }) => e);
    expect(tsc.stdout).toBe('');
  }, 120_000);

  it('prints arrays like MXNet and never prints the session token', async () => {
    writeFileSync(join(project, 'print.mjs'), [
      "import { connect } from 'gradserve-client';",
      "import { inspect } from 'node:util';",
      // The token, as the requests carry it: what must never be printed.
      'let token = null;',
      "const spy = (input, init) => { const req = new Request(input, init); token = req.headers.get('authorization')?.slice(7) ?? token; return fetch(req); };",
      'const gs = await connect(process.env.GRADSERVE_URL, { fetch: spy });',
      'const x = await gs.nd.array([[1, 2], [3, 4.5]]);',
      'const before = inspect(x);',
      'await x.tolist();',
      'console.log(JSON.stringify({ before, after: inspect(x), session: inspect(gs), deep: inspect({ gs, x }, { depth: 10, showHidden: true }), json: JSON.stringify({ gs, x }), token }));',
    ].join('\n'));
    const out = await run(process.execPath, ['print.mjs'], { cwd: project, env: { ...process.env, GRADSERVE_URL: srv.url } });
    const shown = JSON.parse(out.stdout) as Record<string, string>;
    expect(shown.before).toMatch(/^<NDArray 2x2 float32 '_ts\d+' @gradserve>$/);
    expect(shown.after).toBe(`[[1. 2.]\n [3. 4.5]]\n${shown.before}`);
    expect(shown.session).toMatch(/^<gradserve Session [\w-]+ at http/);
    expect(shown.token.length).toBeGreaterThan(20);
    for (const text of [shown.before, shown.after, shown.session, shown.deep, shown.json]) expect(text).not.toContain(shown.token);
  }, 60_000);
});
