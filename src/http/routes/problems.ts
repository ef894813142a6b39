/**
 * GET /problems/{code}: the page a problem's `type` URI points at, explaining the code and what to
 * do about it; GET /problems lists them all. Generated from the error catalogue, so a new code has
 * its page the moment it exists.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError, ERROR_CATALOGUE, problemType, type ErrorCode } from '../../errors.js';
import { problems } from '../responses.js';

const escape = (t: string) => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** Backticks in the catalogue's prose are code. */
const prose = (t: string) => escape(t).replace(/`([^`]+)`/g, '<code>$1</code>');

const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)} · gradserve</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}dt{margin-top:1em;font-weight:600}</style>
</head><body>${body}</body></html>
`;

const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
const bySlug = new Map(codes.map((c) => [problemType(c).split('/').pop()!, c]));

function codePage(code: ErrorCode): string {
  const { status, title, help } = ERROR_CATALOGUE[code];
  return page(title, `<h1>${escape(title)}</h1>
<p>HTTP ${status} · code <code>${code}</code></p>
<p>${prose(help)}</p>
<p>Every error of gradserve is an RFC 9457 <code>application/problem+json</code> document whose <code>detail</code> says what was wrong with which argument, and whose <code>request_id</code> finds it in the server's log. <a href="/problems">All codes</a>.</p>`);
}

const index = page('Problem codes', `<h1>gradserve problem codes</h1>
<dl>${codes.map((c) => `<dt><a href="${problemType(c)}">${c}</a> (${ERROR_CATALOGUE[c].status})</dt><dd>${prose(ERROR_CATALOGUE[c].help)}</dd>`).join('\n')}</dl>`);

export const problemRoutes = (): FastifyPluginAsyncZod => async (app) => {
  app.get('/problems', { schema: { summary: 'What every problem code means (HTML)', tags: ['meta'] } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(index));

  app.get('/problems/:code', {
    schema: { summary: 'What one problem code means and what to do (HTML): the target of a problem\'s `type`', tags: ['meta'], params: z.object({ code: z.string().max(64) }), response: { 200: z.string().describe('text/html'), ...problems(404) } },
  }, async (req, reply) => {
    const code = bySlug.get(req.params.code);
    if (!code) throw new ApiError('not_found', `there is no problem code \`${req.params.code}\`; GET /problems lists them`);
    return reply.type('text/html; charset=utf-8').send(codePage(code));
  });
};
