/**
 * The generated wire format: openapi.yaml from the routes' zod schemas (through @fastify/swagger)
 * and one JSON Schema per named zod schema in schemas/. scripts/generate-spec.ts writes them;
 * test/http/spec.test.ts fails when the committed files drift from the code.
 */
import { z } from 'zod';
import YAML from 'yaml';
import * as api from './http/schemas/api.js';
import * as program from './http/schemas/program.js';
import * as oip from './http/schemas/oip.js';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { referenceBackend } from './engine/reference.js';

export async function renderOpenApi(): Promise<string> {
  // Defaults only: the spec must not depend on the environment of whoever generates it.
  const { app } = await buildApp({ config: loadConfig({}), backend: referenceBackend });
  const doc = app.swagger();
  await app.close();
  return YAML.stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

export function renderSchemas(): Record<string, string> {
  const named: Record<string, z.ZodType> = {
    ...Object.fromEntries(Object.entries(api).filter(([, v]) => v instanceof z.ZodType)),
    ...Object.fromEntries(Object.entries(oip).filter(([, v]) => v instanceof z.ZodType)),
    Statement: program.Statement,
    OpStatement: program.OpStatement,
  };
  const out: Record<string, string> = {};
  for (const [name, schema] of Object.entries(named)) {
    const json = z.toJSONSchema(schema as z.ZodType, { io: 'input', unrepresentable: 'any', cycles: 'ref', reused: 'inline' });
    out[`${name}.json`] = JSON.stringify(json, null, 2) + '\n';
  }
  return out;
}
