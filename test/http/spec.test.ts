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

describe('openapi.yaml says which credential each operation takes (the explorer\'s Authorize uses it)', () => {
  it('session routes take the bearer token; creating a session optionally an API key; probes nothing', async () => {
    const YAML = (await import('yaml')).default;
    const doc = YAML.parse(readFileSync(join(root, 'openapi.yaml'), 'utf8'));
    let sessionOps = 0;
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { security?: unknown }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        if (path.startsWith('/v1/sessions/{sid}')) {
          sessionOps++;
          expect(op.security, `${method} ${path}`).toEqual([{ bearer: [] }]);
        } else if (path === '/v1/sessions') {
          expect(op.security).toEqual([{}, { apiKey: [] }]);
        } else {
          expect(op.security, `${method} ${path}`).toBeUndefined();
        }
      }
    }
    expect(sessionOps).toBeGreaterThan(15);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
  });
});
