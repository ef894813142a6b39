/**
 * Tokens of the expression language, with Python's line structure: NEWLINE ends a logical line,
 * INDENT/DEDENT bracket a block, and newlines inside brackets are ignored (implicit joining).
 */
import { fail, type ApiError } from '../errors.js';
import { table } from '../lookup.js';

export interface Pos { line: number; column: number }

export type TokenType = 'name' | 'number' | 'string' | 'op' | 'newline' | 'indent' | 'dedent' | 'eof';

export interface Token extends Pos {
  type: TokenType;
  /** Source text for names and ops, the decoded text for strings. */
  value: string;
  /** Numbers only. */
  num?: number;
  isInt?: boolean;
}

/** A syntax error at a position: the detail ends with where, the problem carries line/column. */
export function syntaxError(what: string, at: Pos): ApiError {
  return fail('invalid_expression', `${what} at line ${at.line}, column ${at.column}`, {
    line: at.line,
    column: at.column,
  });
}

export function depthExceeded(limit: number, at: Pos): ApiError {
  return fail(
    'quota_exceeded',
    `expression nesting is deeper than the limit of ${limit} at line ${at.line}, column ${at.column}`,
    { limit: 'expr_depth', value: limit + 1, line: at.line, column: at.column },
  );
}

// Longest first, so that `**=` is not read as `**` then `=`. Operators the language rejects
// (`//`, `%`, `&`, ...) are still tokens, so that the parser can name them in its error.
const OPS = [
  '**=', '//=', '>>=', '<<=', '...',
  '**', '//', '==', '!=', '<=', '>=', '+=', '-=', '*=', '/=', '@=', '%=', '&=', '|=', '^=', '->', ':=',
  '<<', '>>',
  '+', '-', '*', '/', '@', '%', '<', '>', '=', '(', ')', '[', ']', '{', '}', ',', ':', ';', '.', '~',
  '&', '|', '^',
];
const OPENERS = table<string>({ '(': ')', '[': ']', '{': '}' });
const CLOSERS = new Set([')', ']', '}']);
const MAX_NAME = 64;
const ESCAPES = table<string>({ n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' });

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isNameStart = (c: string | undefined) => c !== undefined && /[A-Za-z_]/.test(c);
const isNameChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_]/.test(c);

/**
 * Splits `src` into tokens. `maxDepth` bounds bracket nesting here already, so that a huge run of
 * `(` stops early instead of building a bracket stack the parser will refuse anyway.
 */
export function tokenize(src: string, maxDepth: number): Token[] {
  const tokens: Token[] = [];
  const brackets: Token[] = [];
  // Indentation strings, compared as strings so that tabs and spaces are never equated.
  // The first logical line sets the base: a client may send uniformly indented code.
  let indents: string[] | null = null;
  let i = 0;
  let line = 1;
  let lineStart = 0;
  let atLineStart = true;
  let lineHasTokens = false;
  const pos = (at: number): Pos => ({ line, column: at - lineStart + 1 });
  const push = (type: TokenType, value: string, at: number, extra: Partial<Token> = {}) => {
    tokens.push({ type, value, ...pos(at), ...extra });
    lineHasTokens = true;
  };
  const newline = (len: number) => {
    i += len;
    line += 1;
    lineStart = i;
  };

  while (i < src.length) {
    if (atLineStart && brackets.length === 0) {
      let j = i;
      while (src[j] === ' ' || src[j] === '\t' || src[j] === '\f') j++;
      const c = src[j];
      // Blank and comment-only lines have no indentation of their own.
      if (c === undefined || c === '\n' || c === '\r' || c === '#') {
        i = j;
      } else {
        const indent = src.slice(i, j);
        if (indents === null) indents = [indent];
        const top = indents[indents.length - 1]!;
        if (indent.length > top.length && indent.startsWith(top)) {
          indents.push(indent);
          push('indent', indent, j);
        } else if (indent !== top) {
          const k = indents.lastIndexOf(indent);
          if (k < 0) throw syntaxError('unindent does not match any outer indentation level', pos(j));
          while (indents.length > k + 1) {
            indents.pop();
            push('dedent', '', j);
          }
        }
        i = j;
      }
      atLineStart = false;
      continue;
    }
    const c = src[i]!;
    if (c === '\n' || c === '\r') {
      if (brackets.length === 0 && lineHasTokens) push('newline', '', i);
      lineHasTokens = false;
      newline(c === '\r' && src[i + 1] === '\n' ? 2 : 1);
      atLineStart = brackets.length === 0;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\f') { i++; continue; }
    if (c === '#') {
      while (i < src.length && src[i] !== '\n' && src[i] !== '\r') i++;
      continue;
    }
    if (c === '\\') {
      const next = src[i + 1];
      if (next === '\n' || next === '\r') {
        i++;
        newline(next === '\r' && src[i + 1] === '\n' ? 2 : 1);
        continue;
      }
      throw syntaxError("unexpected '\\' (a line continuation must end its line)", pos(i));
    }
    if (isNameStart(c)) {
      let j = i + 1;
      while (isNameChar(src[j])) j++;
      const name = src.slice(i, j);
      if (name.length > MAX_NAME) throw syntaxError(`a name is at most ${MAX_NAME} characters, '${name.slice(0, 16)}...' has ${name.length}`, pos(i));
      push('name', name, i);
      i = j;
      continue;
    }
    if (isDigit(c) || (c === '.' && isDigit(src[i + 1]))) {
      const m = /^(?:\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?/.exec(src.slice(i, i + 400))!;
      const text = m[0];
      if (isNameChar(src[i + text.length]) || src[i + text.length] === '.') {
        throw syntaxError(`invalid number literal '${src.slice(i, i + text.length + 1)}'`, pos(i));
      }
      const num = Number(text.replace(/_/g, ''));
      if (!Number.isFinite(num)) throw syntaxError(`number literal '${text}' is out of range`, pos(i));
      const isInt = !text.includes('.') && !/[eE]/.test(text);
      push('number', text, i, { num, isInt });
      i += text.length;
      continue;
    }
    if (c === "'" || c === '"') {
      const start = i;
      let out = '';
      i++;
      for (;;) {
        const d = src[i];
        if (d === undefined || d === '\n' || d === '\r') throw syntaxError('unterminated string', pos(start));
        if (d === c) { i++; break; }
        if (d === '\\' && src[i + 1] !== undefined) {
          const e = src[i + 1]!;
          out += ESCAPES[e] ?? '\\' + e;
          i += 2;
          continue;
        }
        out += d;
        i++;
      }
      push('string', out, start);
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op === undefined) throw syntaxError(`unexpected character '${c}'`, pos(i));
    if (OPENERS[op]) {
      if (brackets.length >= maxDepth) throw depthExceeded(maxDepth, pos(i));
      push('op', op, i);
      brackets.push(tokens[tokens.length - 1]!);
    } else if (CLOSERS.has(op)) {
      const open = brackets.pop();
      if (open === undefined) throw syntaxError(`unmatched '${op}'`, pos(i));
      if (OPENERS[open.value] !== op) {
        throw syntaxError(`'${op}' does not close '${open.value}' opened at line ${open.line}, column ${open.column}`, pos(i));
      }
      push('op', op, i);
    } else {
      push('op', op, i);
    }
    i += op.length;
  }

  const open = brackets[brackets.length - 1];
  if (open) {
    throw syntaxError(`'${open.value}' is never closed: expected '${OPENERS[open.value]}' before the end of the expression for the '${open.value}'`, open);
  }
  if (lineHasTokens) push('newline', '', i);
  for (let k = (indents?.length ?? 1); k > 1; k--) push('dedent', '', i);
  tokens.push({ type: 'eof', value: '', ...pos(i) });
  return tokens;
}
