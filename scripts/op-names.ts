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
