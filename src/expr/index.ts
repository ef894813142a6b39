/**
 * The expression language: MXNet-flavoured Python source -> the program statements of POST /ops.
 * Parsed, never evaluated by the host language.
 */
import { fail } from '../errors.js';
import type { Statement } from '../program/format.js';
import { compileProgram, FUNCTIONAL, ROOTS } from './compile.js';
import { tokenize } from './lexer.js';
import { CONTROL_STMTS, parse, type Expr, type Stmt } from './parser.js';

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

/** True when `src` was compiled ahead before (so it needs no interpreter unless a session defines names it calls). */
export function compiledBefore(src: string, limits: ExprLimits): boolean {
  return cache.has(`${limits.maxLength},${limits.maxDepth},${limits.maxStatements}\n${src}`);
}

/** Parses `src` for the interpreter (the same limits as compiling it). */
export function parseProgram(src: string, limits: ExprLimits): Stmt[] {
  if (src.length > limits.maxLength) {
    throw fail('quota_exceeded', `expression is ${src.length} characters; the limit is ${limits.maxLength}`, {
      limit: 'expr_length',
      value: src.length,
    });
  }
  const maxDepth = Math.min(limits.maxDepth, MAX_SAFE_DEPTH);
  return parse(tokenize(src, maxDepth), maxDepth);
}

const isAttr = (t: { t: string; name?: string }) => t.t === 'attr' && t.name !== 'grad';

/** Builtins of the interpreter that are no op's names. */
const INTERPRETED_CALLS = new Set(['print', 'len', 'range', 'int', 'float', 'bool', 'str', 'list', 'tuple', 'enumerate', 'zip', 'super', 'isinstance']);
/** Calls of namespace paths whose value is a Python value (a list), which the compiler cannot hold. */
const INTERPRETED_PATHS = new Set(['autograd.grad', ...[...FUNCTIONAL].map((f) => `autograd.${f}`)]);

function isInterpretedPath(base: string, trailers: { t: string; name?: string }[]): boolean {
  const path = [base];
  let i = 0;
  while (trailers[i]?.t === 'attr') path.push(trailers[i++]!.name!);
  if (trailers[i]?.t !== 'call') return false;
  while (path.length > 1 && ROOTS.has(path[0]!)) path.shift();
  return INTERPRETED_PATHS.has(path.join('.'));
}

/** Attributes arrays have only when run. */
const RUNTIME_ATTRS = new Set(['shape', 'ndim', 'size', 'dtype']);

/**
 * True when the program needs the interpreter: control flow, Python's boolean operators, a
 * builtin, a function the session defined, or a value read at run time. Other programs are
 * compiled ahead and checked whole before anything runs.
 */
export function needsInterpreter(stmts: Stmt[], defined: (name: string) => boolean): boolean {
  const exprNeeds = (e: Expr | undefined): boolean => {
    if (!e) return false;
    switch (e.k) {
      case 'boolop': case 'not': case 'ifexp': return true;
      case 'seq': return e.items.some(exprNeeds);
      case 'unary': return exprNeeds(e.operand);
      case 'binary': return exprNeeds(e.first) || e.rest.some((r) => exprNeeds(r.rhs));
      case 'name': return defined(e.id);
      case 'postfix': {
        if (e.base.k === 'name' && (INTERPRETED_CALLS.has(e.base.id) || defined(e.base.id))) return true;
        if (e.base.k === 'name' && isInterpretedPath(e.base.id, e.trailers)) return true;
        if (exprNeeds(e.base)) return true;
        return e.trailers.some((t, i) => {
          if (t.t === 'attr') return RUNTIME_ATTRS.has(t.name) && e.trailers[i + 1]?.t !== 'call';
          if (t.t === 'call') return t.args.some(exprNeeds) || t.kwargs.some((k) => exprNeeds(k.value));
          return t.key.some((k) => (k.k === 'slice' ? exprNeeds(k.start) || exprNeeds(k.stop) || exprNeeds(k.step) : exprNeeds(k)));
        });
      }
      default: return false;
    }
  };
  const stmtNeeds = (s: Stmt): boolean => {
    if (CONTROL_STMTS.has(s.k)) return true;
    switch (s.k) {
      case 'expr': return exprNeeds(s.expr);
      case 'assign':
        return exprNeeds(s.value) || s.targets.some((t) => exprNeeds(t) || (t.k === 'seq' && s.value.k === 'seq') ||
          (t.k === 'postfix' && isAttr(t.trailers[t.trailers.length - 1]!)));
      case 'aug': return exprNeeds(s.target) || exprNeeds(s.value);
      case 'with': return s.items.some(exprNeeds) || s.body.some(stmtNeeds);
      case 'del': return s.names.some(defined);
      default: return false;
    }
  };
  return stmts.some(stmtNeeds);
}
