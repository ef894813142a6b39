/**
 * Where a program statement sits, so that an error raised later (a backward through a node the
 * statement recorded) can point back at it. Statements compiled from source keep their line
 * beside them rather than in them: the statement objects are the wire format, and compiled
 * programs are cached and shared.
 */

export interface StatementSite {
  /** The path of the body the statement is in (`[0, 'body']`); null where paths mean nothing (the interpreter's steps). */
  readonly path: readonly (number | string)[] | null;
  readonly index: number;
  /** The source line, for statements compiled from an expression. */
  readonly line: number | null;
}

/**
 * A site as answers give it: `{line, statement}`, the source line of a statement compiled from an
 * expression or the path (`0.body.3`) of one in a JSON program, as errors name them.
 */
export function siteJson(site: StatementSite | null): { line: number | null; statement: string | null } | null {
  if (!site) return null;
  return { line: site.line, statement: site.path && site.line === null ? [...site.path, site.index].join('.') : null };
}

const lines = new WeakMap<object, number>();

export function setSourceLine(statement: object, line: number): void {
  lines.set(statement, line);
}

export function sourceLine(statement: object): number | null {
  return lines.get(statement) ?? null;
}
