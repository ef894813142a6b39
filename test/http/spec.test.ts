/** openapi.yaml and schemas/*.json are generated from the zod schemas: fail when they drift. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderOpenApi, renderSchemas } from '../../src/spec.js';

const root = join(import.meta.dirname, '..', '..');

describe('the committed wire format matches the code (run `npm run gen` after changing a schema)', () => {
  it('openapi.yaml', async () => {
    expect(readFileSync(join(root, 'openapi.yaml'), 'utf8')).toBe(await renderOpenApi());
  });

  it('schemas/*.json', () => {
    const generated = renderSchemas();
    const committed = readdirSync(join(root, 'schemas')).filter((f) => f.endsWith('.json')).sort();
    expect(committed).toEqual(Object.keys(generated).sort());
    for (const [name, text] of Object.entries(generated)) expect(readFileSync(join(root, 'schemas', name), 'utf8'), name).toBe(text);
  });
});

describe('openapi.yaml is self-contained', () => {
  it('every $ref points at a schema defined under components', async () => {
    const text = readFileSync(join(root, 'openapi.yaml'), 'utf8');
    const YAML = (await import('yaml')).default;
    const doc = YAML.parse(text);
    const refs = new Set([...text.matchAll(/#\/components\/schemas\/([\w.-]+)/g)].map((m) => m[1]));
    expect(refs.size).toBeGreaterThan(5);
    for (const r of refs) expect(doc.components.schemas, r).toHaveProperty(r);
  });
});
