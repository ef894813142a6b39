// The text of src/ops/names.ts: every name and alias of the op table, so that `F.<name>` in a
// gradient rule is checked by the compiler. Written by `npm run gen`; test/ops/names.test.ts fails
// when the table and the file drift.
import '../src/ops/index.js';
import { allOps } from '../src/ops/registry.js';

export function renderOpNames(): string {
  const names = allOps().flatMap((d) => [d.name, ...d.aliases]).sort();
  return [
    '// Generated from the op table by `npm run gen` (scripts/op-names.ts); do not edit.',
    '// test/ops/names.test.ts fails when it drifts from the table.',
    '',
    '/** Every name and alias of the op table. */',
    'export type OpName =',
    ...names.map((n, i) => `  | '${n}'${i === names.length - 1 ? ';' : ''}`),
    '',
  ].join('\n');
}

/**
 * The text of clients/typescript/src/op-names.ts: the ops a client may call (internal ones left
 * out) and the first segments of dotted names (`random` of `random.normal`), so that a misspelt op
 * is a type error in the user's code. The client imports nothing of the server, so it gets a copy.
 */
export function renderClientOpNames(): string {
  const names = [...new Set(allOps().filter((d) => !d.internal).flatMap((d) => [d.name, ...d.aliases]))].sort();
  const union = (xs: string[]) => xs.map((n, i) => `  | '${n}'${i === xs.length - 1 ? ';' : ''}`);
  return [
    '// Generated from the server\'s op table by `npm run gen` (scripts/op-names.ts); do not edit.',
    '// test/client/op-names.test.ts fails when it drifts from the table.',
    '',
    '/** Every op a client may call, by name or alias (`x.op(name)`, `nd.call(name)`). */',
    'export type OpName =',
    ...union(names),
    '',
    '/** The members of `nd` that are ops or op namespaces (`nd.exp`, `nd.random`). */',
    '// A type parameter, so that the condition is taken for each name of the union on its own.',
    'type RootOf<N> = N extends `${infer Namespace}.${string}` ? Namespace : N;',
    'export type OpRoot = RootOf<OpName>;',
    '',
  ].join('\n');
}
