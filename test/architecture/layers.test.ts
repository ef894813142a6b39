/**
 * The layers of src/ point one way: a module may import from its own layer and those below it,
 * never from a layer above (README, "How it is built"). The TypeScript client is a package of its
 * own and imports nothing of the server.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');

/** Lowest first. A path prefix (relative to src/) names each layer's files. */
const LAYERS: [string, string[]][] = [
  ['base', ['errors.ts', 'config.ts', 'logging.ts', 'lookup.ts']],
  ['engine', ['engine/']],
  ['program', ['program/']],
  ['expr', ['expr/']],
  ['ops', ['ops/']],
  ['autograd', ['autograd/']],
  ['session', ['session/']],
  ['durability', ['durability/']],
  ['http', ['http/']],
  ['app', ['app.ts', 'server.ts', 'spec.ts']],
];

function layerOf(file: string): number {
  const rel = relative(src, file).split('\\').join('/');
  const i = LAYERS.findIndex(([, prefixes]) => prefixes.some((p) => (p.endsWith('/') ? rel.startsWith(p) : rel === p)));
  if (i < 0) throw new Error(`${rel} belongs to no layer: add it to LAYERS`);
  return i;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Relative specifiers of every static import, re-export and dynamic import of a file. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/g)) specs.push(m[1]);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s+'([^']+)'/g)) specs.push(m[1]);
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) specs.push(m[1]);
  for (const m of text.matchAll(/declare module\s+'([^']+)'/g)) specs.push(m[1]);
  return specs.filter((s) => s.startsWith('.'));
}

const target = (file: string, spec: string) => resolve(dirname(file), spec).replace(/\.js$/, '.ts');

describe('layers', () => {
  const server = tsFiles(src);

  it('every import of the server points to its own layer or one below', () => {
    const upward: string[] = [];
    for (const file of server) {
      for (const spec of importsOf(file)) {
        const to = target(file, spec);
        if (layerOf(to) > layerOf(file)) {
          upward.push(`${relative(src, file)} (${LAYERS[layerOf(file)][0]}) imports ${relative(src, to)} (${LAYERS[layerOf(to)][0]})`);
        }
      }
    }
    expect(upward).toEqual([]);
  });

  it('the checker sees imports (a file that imports upward is reported)', () => {
    const engineFile = server.find((f) => relative(src, f) === 'engine/ndarray.ts')!;
    expect(layerOf(target(engineFile, '../session/session.js'))).toBeGreaterThan(layerOf(engineFile));
    expect(importsOf(join(src, 'app.ts')).length).toBeGreaterThan(5);
  });

  it('the TypeScript client (its own package) imports nothing of the server', () => {
    const client = join(src, '..', 'clients', 'typescript', 'src');
    const files = tsFiles(client);
    expect(files.length).toBeGreaterThan(3);
    const outside = files.flatMap((file) => importsOf(file)
      .filter((spec) => !target(file, spec).startsWith(client + '/'))
      .map((spec) => `${relative(client, file)} imports ${spec}`));
    expect(outside).toEqual([]);
  });
});
