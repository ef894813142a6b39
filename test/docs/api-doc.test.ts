/**
 * docs/API.md, the public contract, against openapi.yaml, the spec generated from the zod schemas
 * (the truth for paths, methods, fields and status codes). The contract's "## Endpoints" table
 * has one row per operation: `| METHOD | `/path` | body | answer | status |`. This test fails when
 * the two drift:
 *   - every row names an operation of openapi.yaml (or one of NOT_IN_SPEC), once;
 *   - every operation of openapi.yaml has a row (DELIBERATELY_UNDOCUMENTED is empty: the doc lists
 *     the meta routes /healthz, /readyz and /metrics too);
 *   - the status codes of a row are among the operation's responses, and every success (2xx)
 *     code of the operation is in its row;
 *   - the fields a row names (the keys of its `{...}` in the body and answer cells, and its
 *     `?param=`) exist in the operation's request body, 2xx answers and query parameters;
 *   - every `METHOD /path` written anywhere else in the doc (prose and examples, with `$S` for
 *     /v1/sessions/{sid}) is an operation of openapi.yaml.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '..', '..');
const DOC_PATH = 'docs/API.md';
const doc = readFileSync(join(root, DOC_PATH), 'utf8');
const spec = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8')) as Spec;

/**
 * Routes the server serves that are not operations of openapi.yaml, and why. The doc lists them;
 * the test checks that they are indeed absent from the spec (if one is added there, drop it here).
 */
const NOT_IN_SPEC: Record<string, string> = {
  'GET /openapi.json': 'the spec itself, registered with `hide: true`',
  'GET /docs': "@fastify/swagger-ui's explorer, whose routes the spec hides",
};

/** Operations of openapi.yaml the doc leaves out on purpose: none. */
const DELIBERATELY_UNDOCUMENTED: Record<string, string> = {};

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  items?: Schema;
  [k: string]: unknown;
}
interface Operation {
  parameters?: { in: string; name: string }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}
interface Spec {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

/** `METHOD /path` of every operation of the spec. */
function specOperations(): Map<string, Operation> {
  const ops = new Map<string, Operation>();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const m of METHODS) if (item[m]) ops.set(`${m.toUpperCase()} ${path}`, item[m]);
  }
  return ops;
}

/** The property names a schema can carry at its top level (across $ref, anyOf, oneOf, allOf). */
function propertyNames(s: Schema | undefined, seen = new Set<Schema>()): Set<string> {
  const out = new Set<string>();
  if (!s || seen.has(s)) return out;
  seen.add(s);
  if (s.$ref) {
    const m = /^#\/components\/schemas\/([^#/]+)$/.exec(s.$ref);
    if (m) for (const p of propertyNames(spec.components?.schemas?.[m[1]], seen)) out.add(p);
  }
  for (const p of Object.keys(s.properties ?? {})) out.add(p);
  for (const sub of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])]) {
    for (const p of propertyNames(sub, seen)) out.add(p);
  }
  return out;
}

function contentProperties(content: Record<string, { schema?: Schema }> | undefined): Set<string> {
  const out = new Set<string>();
  for (const c of Object.values(content ?? {})) for (const p of propertyNames(c.schema)) out.add(p);
  return out;
}

/** The text of the `## title` section of the doc, up to the next `## ` heading. */
function section(title: string): string {
  const start = doc.search(new RegExp(`^## ${title}\\s*$`, 'm'));
  if (start < 0) throw new Error(`${DOC_PATH} has no "## ${title}" section`);
  const next = doc.slice(start + 3).search(/^## /m);
  return next < 0 ? doc.slice(start) : doc.slice(start, start + 3 + next);
}

/** The cells of a Markdown table row, split on unescaped pipes, `\|` unescaped. */
function cells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

const unquote = (c: string) => c.replace(/^`|`$/g, '').trim();

interface Row {
  line: number;
  op: string;
  body: string;
  answer: string;
  statuses: number[];
}

/** The rows of the Endpoints table: `| METHOD | `/path` | body | answer | status |`. */
function endpointRows(): Row[] {
  const text = section('Endpoints');
  const offset = doc.slice(0, doc.indexOf(text)).split('\n').length;
  const header = text.split('\n').find((l) => /^\|\s*method\s*\|/i.test(l));
  if (!header) throw new Error(`the Endpoints section of ${DOC_PATH} has no table with a "method" column`);
  const names = cells(header).map((c) => c.toLowerCase());
  const col = (n: string) => {
    const i = names.indexOf(n);
    if (i < 0) throw new Error(`the Endpoints table of ${DOC_PATH} has no "${n}" column`);
    return i;
  };
  const [iMethod, iPath, iBody, iAnswer, iStatus] = ['method', 'path', 'body', 'answer', 'status'].map(col);
  const rows: Row[] = [];
  text.split('\n').forEach((l, i) => {
    if (!l.trim().startsWith('|')) return;
    const c = cells(l);
    const method = unquote(c[iMethod] ?? '');
    if (!/^[A-Z]+$/.test(method)) return; // the header and the |---| line
    rows.push({
      line: offset + i,
      op: `${method} ${unquote(c[iPath] ?? '')}`,
      body: c[iBody] ?? '',
      answer: c[iAnswer] ?? '',
      statuses: [...(c[iStatus] ?? '').matchAll(/\b[1-5]\d\d\b/g)].map((m) => Number(m[0])),
    });
  });
  return rows;
}

/**
 * The top-level keys of every `{...}` written in a cell: `{a?, b: {c}, d: [..]}` gives a, b, d.
 * Segments that are not a key (`...`, `descriptor`) are skipped.
 */
function namedKeys(cell: string): string[] {
  const keys: string[] = [];
  const stack: string[] = [];
  let segment = '';
  const flush = () => {
    const m = /^\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s*(\?|:|$)/.exec(segment);
    if (m) keys.push(m[1]);
    segment = '';
  };
  for (const ch of cell) {
    if (ch === '{' || ch === '[') {
      stack.push(ch);
      if (stack.length === 1) { segment = ''; continue; }
    } else if (ch === '}' || ch === ']') {
      const open = stack.pop();
      if (stack.length === 0) { if (open === '{') flush(); continue; }
    } else if (ch === ',' && stack.length === 1 && stack[0] === '{') {
      flush();
      continue;
    }
    if (stack.length >= 1 && stack[0] === '{') segment += ch;
  }
  return keys;
}

/** Concrete paths (`/v1/sessions/{sid}/arrays/x/grad`) matched against the spec's templates. */
function templateOf(method: string, path: string, ops: Map<string, Operation>): string | undefined {
  for (const op of ops.keys()) {
    const [m, template] = op.split(' ');
    if (m !== method) continue;
    const re = new RegExp(`^${template.split(/\{[^}]+\}/).map((p) => p.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^/]+')}$`);
    if (re.test(path)) return op;
  }
  return undefined;
}

const ops = specOperations();
const rows = endpointRows();

describe(`${DOC_PATH} and openapi.yaml`, () => {
  it('the doc has an Endpoints table and the spec has operations', () => {
    expect(rows.length).toBeGreaterThan(10);
    expect(ops.size).toBeGreaterThan(10);
  });

  it('every endpoint of the doc is an operation of openapi.yaml, listed once', () => {
    const unknown = rows.filter((r) => !ops.has(r.op) && !(r.op in NOT_IN_SPEC)).map((r) => `${DOC_PATH}:${r.line} ${r.op}`);
    expect(unknown, 'endpoints of the doc that openapi.yaml does not have').toEqual([]);
    const seen = new Set<string>();
    const twice = rows.filter((r) => seen.size === seen.add(r.op).size).map((r) => r.op);
    expect(twice, 'endpoints listed twice').toEqual([]);
  });

  it('the routes the doc lists outside openapi.yaml are really absent from it, and listed', () => {
    for (const op of Object.keys(NOT_IN_SPEC)) {
      expect(ops.has(op), `${op} is in openapi.yaml now: drop it from NOT_IN_SPEC`).toBe(false);
      expect(rows.some((r) => r.op === op), `${op} is no longer in the doc: drop it from NOT_IN_SPEC`).toBe(true);
    }
  });

  it('every operation of openapi.yaml is in the doc', () => {
    const documented = new Set(rows.map((r) => r.op));
    const missing = [...ops.keys()].filter((op) => !documented.has(op) && !(op in DELIBERATELY_UNDOCUMENTED));
    expect(missing, `operations of openapi.yaml missing from the Endpoints table of ${DOC_PATH}`).toEqual([]);
    for (const op of Object.keys(DELIBERATELY_UNDOCUMENTED)) expect(ops.has(op), `${op} is not in openapi.yaml`).toBe(true);
  });

  it("each endpoint's status codes are among the operation's responses, success codes included", () => {
    const problems: string[] = [];
    for (const r of rows) {
      const op = ops.get(r.op);
      if (!r.statuses.length) problems.push(`${r.op}: no status code in its row`);
      if (!op) continue;
      const declared = Object.keys(op.responses ?? {}).map(Number);
      for (const s of r.statuses) if (!declared.includes(s)) problems.push(`${r.op}: the doc says ${s}, openapi.yaml declares ${declared.join(', ')}`);
      for (const s of declared) if (s >= 200 && s < 300 && !r.statuses.includes(s)) problems.push(`${r.op}: openapi.yaml answers ${s}, the doc does not list it`);
    }
    expect(problems).toEqual([]);
  });

  it('the fields and query parameters the doc names exist in the operation', () => {
    const problems: string[] = [];
    for (const r of rows) {
      const op = ops.get(r.op);
      if (!op) continue;
      const bodyFields = contentProperties(op.requestBody?.content);
      for (const k of namedKeys(r.body)) if (!bodyFields.has(k)) problems.push(`${r.op}: body field \`${k}\` is not in its request body (${[...bodyFields].join(', ') || 'none'})`);
      const query = new Set((op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name));
      for (const m of r.body.matchAll(/\?([A-Za-z_][A-Za-z0-9_]*)=/g)) if (!query.has(m[1])) problems.push(`${r.op}: query parameter \`${m[1]}\` is not declared`);
      const answerFields = new Set<string>();
      for (const [code, res] of Object.entries(op.responses ?? {})) {
        if (/^2\d\d$/.test(code)) for (const p of contentProperties(res.content)) answerFields.add(p);
      }
      for (const k of namedKeys(r.answer)) if (!answerFields.has(k)) problems.push(`${r.op}: answer field \`${k}\` is not in its answer (${[...answerFields].join(', ') || 'none'})`);
    }
    expect(problems).toEqual([]);
  });

  it('every METHOD /path written elsewhere in the doc is an operation of openapi.yaml', () => {
    const problems: string[] = [];
    doc.split('\n').forEach((line, i) => {
      if (line.trim().startsWith('|')) return; // the table, checked above
      for (const m of line.matchAll(/\b(GET|PUT|POST|DELETE|PATCH|HEAD|OPTIONS)\s+(\$S(?=[/\s`]|$)|\/)([^\s`'",;)]*)/g)) {
        const path = ((m[2] === '$S' ? '/v1/sessions/{sid}' : '/') + m[3]).replace(/\?.*$/, '').replace(/[.:]+$/, '');
        const op = `${m[1]} ${path}`;
        if (op in NOT_IN_SPEC || templateOf(m[1], path, ops)) continue;
        problems.push(`${DOC_PATH}:${i + 1} ${op}`);
      }
    });
    expect(problems, 'endpoints named in the doc that openapi.yaml does not have').toEqual([]);
  });
});
