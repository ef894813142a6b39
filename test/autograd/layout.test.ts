/** The rule that wraps a long graph into rows: from the graph's shape alone. */
import { describe, expect, it } from 'vitest';
import { wrapLongGraph, type Edge } from '../../src/autograd/layout.js';

/** A chain a0 -> n1 -> a1 -> n2 -> ..., each op also reading a constant c<i>. */
function chain(ops: number, constants = false): { nodes: string[]; edges: Edge[] } {
  const nodes = ['a0'];
  const edges: Edge[] = [];
  for (let i = 1; i <= ops; i++) {
    nodes.push(`n${i}`);
    if (constants) { nodes.push(`c${i}`); edges.push([`c${i}`, `n${i}`]); }
    nodes.push(`a${i}`);
    edges.push([`a${i - 1}`, `n${i}`], [`n${i}`, `a${i}`]);
  }
  return { nodes, edges };
}

const rowsOf = (statements: string[]) =>
  statements.filter((s) => s.includes('rank=same')).map((s) => s.replace(/^\s*\{ rank=same; |; \}$/g, '').split('; '));

describe('wrapLongGraph', () => {
  it('leaves short graphs alone, and wide ones', () => {
    const short = chain(7);
    expect(wrapLongGraph(short.nodes, short.edges)).toBeNull();
    // 30 parallel chains of 10 ops: deep, but wider than long.
    const nodes: string[] = [];
    const edges: Edge[] = [];
    for (let k = 0; k < 30; k++) {
      const c = chain(10);
      nodes.push(...c.nodes.map((n) => `${n}_${k}`));
      edges.push(...c.edges.map(([a, b]) => [`${a}_${k}`, `${b}_${k}`] as const));
    }
    expect(wrapLongGraph(nodes, edges)).toBeNull();
  });

  it('cuts a long chain into even rows in reading order, each a rank of a top-to-bottom layout', () => {
    const { nodes, edges } = chain(200);
    const wrap = wrapLongGraph(nodes, edges)!;
    expect(wrap.rankdir).toBe('TB');
    const rows = rowsOf(wrap.statements);
    expect(rows.flat()).toEqual(nodes);
    const sizes = rows.map((r) => r.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    // Rows are long enough to read and few enough that the picture is not a tower.
    expect(sizes[0]).toBeGreaterThanOrEqual(7);
    expect(rows.length * 75).toBeLessThanOrEqual(4 * sizes[0] * 100);
    expect(wrap.statements).toContain(`  ${rows[0][0]} -> ${rows[1][0]} [style=invis, weight=100];`);
  });

  it('puts a constant just before the op that reads it, so that no edge runs back', () => {
    const { nodes, edges } = chain(100, true);
    const rows = rowsOf(wrapLongGraph(nodes, edges)!.statements);
    const at = new Map(rows.flat().map((n, i) => [n, i]));
    for (const [a, b] of edges) expect(at.get(a)!, `${a} -> ${b}`).toBeLessThan(at.get(b)!);
    expect(at.get('n100')! - at.get('c100')!).toBeLessThanOrEqual(2);
  });
});
