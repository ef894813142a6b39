/**
 * Each operation of the OpenAPI document says which credential it takes, read from its path, so
 * that the explorer's "Authorize" sends the token: session routes take the bearer token their
 * session was created with; creating a session takes an API key when the server requires one.
 * Registered before @fastify/swagger, which reads route schemas as routes are added.
 */
import type { FastifyInstance } from 'fastify';

export function registerSecurityDocs(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const url = route.url;
    let security: Record<string, string[]>[] | null = null;
    if (url.startsWith('/v1/sessions/:sid')) security = [{ bearer: [] }];
    else if (url === '/v1/sessions') security = [{}, { apiKey: [] }];
    if (!security) return;
    const schema = (route.schema ??= {}) as { security?: unknown };
    schema.security ??= security;
  });
}
