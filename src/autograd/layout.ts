/**
 * How a drawn tape wraps when it is long: Graphviz lays a graph out along its ranks (left to
 * right here), so a chain of hundreds of ops becomes one strip far too long to read. A long,
 * narrow graph is cut into rows of a few nodes each, stacked top to bottom and read like lines of
 * text. The rule looks only at the graph's shape (its depth and width), never at op names.
 */

export type Edge = readonly [from: string, to: string];

/** What wrapping changes in the DOT text: the direction of ranks, and statements to add. */
export interface Wrap {
  rankdir: 'TB';
  statements: string[];
}

// Sizes of a drawing, in points, as Graphviz lays these nodes out: along ranks, one node (a box
// or an ellipse and the gap after it) is about 100 wide and 60 tall; a row of a wrapped drawing
// is about 75 tall.
const NODE_WIDTH = 100;
const RANK_WIDTH = NODE_WIDTH;
const NODE_HEIGHT = 60;
const ROW_HEIGHT = 75;
// A graph of up to this many ranks (seven ops in a row, about one and a half notebook cells wide)
// stays in one strip, and so does one at most this many times wider than tall.
const WRAP_AFTER = 15;
const MAX_WIDE = 4;
// A row has at least this many nodes, so that its text stays legible when the picture is fitted
// to a cell, and more when the graph is so long that such rows would stack taller than this many
// times the width.
const MIN_ROW = 7;
const MAX_TALL = 3;

/**
 * Depth of each node: one more than its deepest input, except that a node with no inputs (a
 * variable, a constant) sits just before its first reader, so that it is drawn where it is used.
 */
function depths(nodes: readonly string[], edges: readonly Edge[]): Map<string, number> {
  const preds = new Map<string, string[]>(nodes.map((n) => [n, []]));
  const succs = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const [a, b] of edges) { preds.get(b)!.push(a); succs.get(a)!.push(b); }
  const d = new Map<string, number>();
  // `nodes` is in a topological order for the nodes that have inputs (sources may come late).
  for (const n of nodes) {
    const ps = preds.get(n)!;
    // Depth 0 is kept for the inputs that have no inputs of their own.
    const inner = ps.filter((p) => preds.get(p)!.length > 0).map((p) => d.get(p)! + 1);
    d.set(n, ps.length === 0 ? 0 : Math.max(1, ...inner));
  }
  for (const n of nodes) {
    const readers = succs.get(n)!;
    if (preds.get(n)!.length === 0 && readers.length > 0) d.set(n, Math.min(...readers.map((r) => d.get(r)!)) - 1);
  }
  return d;
}

/**
 * Rows for a long graph, or null when it reads well in one left-to-right strip. `nodes` must be
 * in topological order for the nodes that have inputs; edges name nodes of that list.
 */
export function wrapLongGraph(nodes: readonly string[], edges: readonly Edge[]): Wrap | null {
  const d = depths(nodes, edges);
  const ranks = Math.max(0, ...d.values()) + 1;
  const perRank = new Map<number, number>();
  for (const r of d.values()) perRank.set(r, (perRank.get(r) ?? 0) + 1);
  const width = Math.max(1, ...perRank.values());
  if (ranks <= WRAP_AFTER || ranks * RANK_WIDTH <= MAX_WIDE * width * NODE_HEIGHT) return null;

  // Rows of m nodes stack n / m deep: (n / m) * ROW_HEIGHT <= MAX_TALL * m * NODE_WIDTH.
  const n = nodes.length;
  const least = Math.max(MIN_ROW, Math.ceil(Math.sqrt((n * ROW_HEIGHT) / (MAX_TALL * NODE_WIDTH))));
  // Rows cut the nodes in order of depth, so every edge runs forward along a row or down to a
  // later row: Graphviz ranks the rows top to bottom, and orders each row by its edges. The rows
  // share the nodes out evenly, so that the last is not a stub.
  const order = nodes.map((id, i) => ({ id, i })).sort((a, b) => d.get(a.id)! - d.get(b.id)! || a.i - b.i);
  const count = Math.ceil(n / least);
  const rows: string[][] = [];
  for (let r = 0; r < count; r++) {
    rows.push(order.slice(Math.floor((r * n) / count), Math.floor(((r + 1) * n) / count)).map((o) => o.id));
  }
  const statements = rows.map((row) => `  { rank=same; ${row.join('; ')}; }`);
  // Each row starts under the one before, read like lines of text.
  for (let r = 1; r < rows.length; r++) statements.push(`  ${rows[r - 1][0]} -> ${rows[r][0]} [style=invis, weight=100];`);
  return { rankdir: 'TB', statements };
}
