/**
 * The expression language: MXNet-flavoured Python source -> the program statements of POST /ops.
 * Parsed, never evaluated by the host language.
 */
import { fail } from '../errors.js';
import type { Statement } from '../program/format.js';
import { compileProgram } from './compile.js';
import { tokenize } from './lexer.js';
import { parse } from './parser.js';

/**
 * The parser recurses once per nesting level; about 800 levels fit in Node's default stack, so a
 * configured maxDepth above this is clamped, leaving room for the caller's own frames.
 */
const MAX_SAFE_DEPTH = 256;

export interface ExprLimits { maxLength: number; maxDepth: number; maxStatements: number }

/** `result` names the array holding the value of a last bare expression, if there is one. */
export interface CompiledExpr { statements: Statement[]; result?: string }

/**
 * Clients send the same expression again and again (a training step, a loop body), so compiled
 * programs are kept by source text. They are frozen: the runner reads them and never writes.
 */
const CACHE_ENTRIES = 512;
/** Only short sources are kept (a training step is a few lines): 512 of them hold a few MB. */
const CACHE_MAX_SOURCE = 2048;
const cache = new Map<string, CompiledExpr>();

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Compiles `src`; throws invalid_expression (with line and column) or quota_exceeded. */
export function compileExpression(src: string, limits: ExprLimits): CompiledExpr {
  if (src.length > CACHE_MAX_SOURCE) return compileUncached(src, limits);
  const key = `${limits.maxLength},${limits.maxDepth},${limits.maxStatements}\n${src}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const compiled = deepFreeze(compileUncached(src, limits));
  // Oldest first out: a Map iterates in insertion order.
  if (cache.size >= CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  cache.set(key, compiled);
  return compiled;
}

function compileUncached(src: string, limits: ExprLimits): CompiledExpr {
  if (src.length > limits.maxLength) {
    throw fail('quota_exceeded', `expression is ${src.length} characters; the limit is ${limits.maxLength}`, {
      limit: 'expr_length',
      value: src.length,
    });
  }
  const maxDepth = Math.min(limits.maxDepth, MAX_SAFE_DEPTH);
  const ast = parse(tokenize(src, maxDepth), maxDepth);
  return compileProgram(ast, { maxStatements: limits.maxStatements });
}
