/** src/ops/names.ts types `F` by the op table's names: it must list exactly the table's names. */
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderOpNames } from '../../scripts/op-names.js';
import { allOps } from '../../src/ops/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('op names', () => {
  it('src/ops/names.ts is what `npm run gen` writes from the table', () => {
    expect(readFileSync(join(root, 'src', 'ops', 'names.ts'), 'utf8')).toBe(renderOpNames());
  });

  it('lists every name and alias once', () => {
    const text = renderOpNames();
    for (const d of allOps()) for (const n of [d.name, ...d.aliases]) expect(text).toContain(`| '${n}'`);
  });
});
