// Regenerates openapi.yaml and schemas/*.json from the zod schemas, and src/ops/names.ts and the
// client's op-names.ts from the op table: `npm run gen`.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOpenApi, renderSchemas } from '../src/spec.js';
import { renderClientOpNames, renderOpNames } from './op-names.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
writeFileSync(join(root, 'openapi.yaml'), await renderOpenApi());
const dir = join(root, 'schemas');
mkdirSync(dir, { recursive: true });
for (const f of readdirSync(dir)) if (f.endsWith('.json')) rmSync(join(dir, f));
for (const [name, text] of Object.entries(renderSchemas())) writeFileSync(join(dir, name), text);
writeFileSync(join(root, 'src', 'ops', 'names.ts'), renderOpNames());
writeFileSync(join(root, 'clients', 'typescript', 'src', 'op-names.ts'), renderClientOpNames());
console.log('wrote openapi.yaml, schemas/, src/ops/names.ts and clients/typescript/src/op-names.ts');
