/**
 * Response checking: with GRADSERVE_CHECK_RESPONSES=1 (what the test suite runs with), an answer
 * that its schema would change (a wrong type, or a field the schema lacks, which zod would drop)
 * fails loudly instead of going out; without it, answers go out as built.
 */
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { responseSerializer } from '../../src/http/serializer.js';
import { registerProblems } from '../../src/http/problem.js';

async function appWith(check: boolean, answer: unknown) {
  const app = Fastify().withTypeProvider<ZodTypeProvider>();
  app.setSerializerCompiler(responseSerializer(check));
  app.get('/x', { schema: { response: { 200: z.object({ n: z.number(), tags: z.array(z.string()).optional() }) } } }, async () => answer as { n: number });
  await app.ready();
  return app;
}

describe('response serialization', () => {
  it('checked: a conforming answer goes out unchanged, in any key order', async () => {
    const app = await appWith(true, { tags: ['a'], n: 1 });
    const r = await app.inject({ method: 'GET', url: '/x' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ n: 1, tags: ['a'] });
  });

  it('checked: a field outside the schema or a wrong type fails the request', async () => {
    for (const bad of [{ n: 1, secret: 'leak' }, { n: 'one' }]) {
      const app = await appWith(true, bad);
      const r = await app.inject({ method: 'GET', url: '/x' });
      expect(r.statusCode, JSON.stringify(bad)).toBe(500);
      expect(r.json().message).toMatch(/schema/);
    }
  });

  it('unchecked: the answer is serialized as built', async () => {
    const app = await appWith(false, { n: 2 });
    expect((await app.inject({ method: 'GET', url: '/x' })).json()).toEqual({ n: 2 });
  });

  it('an answer longer than V8 can hold as a string is a 413 problem, not a 500 "Invalid string length"', async () => {
    const app = Fastify().withTypeProvider<ZodTypeProvider>();
    app.setSerializerCompiler(responseSerializer(false));
    registerProblems(app);
    // what JSON.stringify meets when the text passes V8's string limit (a real RangeError from V8)
    app.get('/x', { schema: { response: { 200: z.object({ n: z.number() }) } } }, async () => ({ n: 1, toJSON: () => 'x'.repeat(2 ** 30) }) as unknown as { n: number });
    await app.ready();
    const r = await app.inject({ method: 'GET', url: '/x' });
    expect(r.statusCode).toBe(413);
    expect(r.headers['content-type']).toMatch(/problem\+json/);
    expect(r.json().limit).toBe('answer_length');
  });
});
