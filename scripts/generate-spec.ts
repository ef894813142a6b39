// Regenerates openapi.yaml and schemas/*.json from the zod schemas: `npm run gen`.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOpenApi, renderSchemas } from '../src/http/spec.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
writeFileSync(join(root, 'openapi.yaml'), await renderOpenApi());
const dir = join(root, 'schemas');
mkdirSync(dir, { recursive: true });
for (const f of readdirSync(dir)) if (f.endsWith('.json')) rmSync(join(dir, f));
for (const [name, text] of Object.entries(renderSchemas())) writeFileSync(join(dir, name), text);
console.log('wrote openapi.yaml and schemas/');
