/**
 * Tokens -> AST, by recursive descent. Recursion happens only where the source nests (brackets,
 * unary operators, `**`, with-blocks), and each such step is counted against maxDepth, so no input
 * can overflow the JS stack. Same-precedence chains (`a + b + c`, `x.f().g()[0]`) are kept flat
 * for the same reason: the compiler walks them with loops.
 */
import { depthExceeded, syntaxError, type Pos, type Token } from './lexer.js';
import { table } from '../lookup.js';

export type Expr =
  | { k: 'num'; v: number; isInt: boolean; pos: Pos }
  | { k: 'str'; v: string; pos: Pos }
  | { k: 'lit'; v: boolean | null; pos: Pos }
  | { k: 'name'; id: string; pos: Pos }
  | { k: 'seq'; items: Expr[]; tuple: boolean; pos: Pos }
  | { k: 'unary'; op: '-' | '+'; operand: Expr; pos: Pos }
  | { k: 'binary'; first: Expr; rest: BinaryStep[]; pos: Pos }
  | { k: 'postfix'; base: Expr; trailers: Trailer[]; pos: Pos }
  /** `a and b or c`: Python's short-circuit operators, which answer one of their operands. */
  | { k: 'boolop'; op: 'and' | 'or'; values: Expr[]; pos: Pos }
  | { k: 'not'; operand: Expr; pos: Pos }
  /** `body if test else orelse`. */
  | { k: 'ifexp'; test: Expr; body: Expr; orelse: Expr; pos: Pos };

/** A parameter of a def: a name with an optional default, evaluated once when the def runs. */
export interface Param { name: string; default?: Expr; pos: Pos }

export interface BinaryStep { op: string; rhs: Expr; pos: Pos }
export interface Kwarg { name: string; value: Expr; pos: Pos }
export interface Slice { k: 'slice'; start?: Expr; stop?: Expr; step?: Expr; pos: Pos }
export type KeyItem = Expr | Slice;

export type Trailer =
  | { t: 'attr'; name: string; pos: Pos }
  | { t: 'call'; args: Expr[]; kwargs: Kwarg[]; pos: Pos }
  | { t: 'index'; key: KeyItem[]; pos: Pos };

export type Stmt =
  | { k: 'expr'; expr: Expr; pos: Pos }
  /** `a = b = value`: targets are expressions here; the compiler decides which can be assigned. */
  | { k: 'assign'; targets: Expr[]; value: Expr; pos: Pos }
  | { k: 'aug'; target: Expr; op: string; value: Expr; pos: Pos }
  | { k: 'with'; items: Expr[]; body: Stmt[]; pos: Pos }
  /** `del a, b`: unbinds names (their memory is freed when nothing else holds it). */
  | { k: 'del'; names: string[]; pos: Pos }
  /** `def name(params):` with the source lines it spans (first and last), for listings. */
  | { k: 'def'; name: string; params: Param[]; body: Stmt[]; pos: Pos; lastLine: number }
  | { k: 'class'; name: string; bases: Expr[]; body: Stmt[]; pos: Pos; lastLine: number }
  | { k: 'return'; value?: Expr; pos: Pos }
  | { k: 'if'; branches: { test: Expr; body: Stmt[]; pos: Pos }[]; orelse?: Stmt[]; pos: Pos }
  | { k: 'while'; test: Expr; body: Stmt[]; pos: Pos }
  | { k: 'for'; target: Expr; iter: Expr; body: Stmt[]; pos: Pos }
  | { k: 'break' | 'continue' | 'pass'; pos: Pos }
  | { k: 'assert'; test: Expr; msg?: Expr; pos: Pos };

/** Statements only the interpreter runs: a program holding one is not compiled ahead. */
export const CONTROL_STMTS: ReadonlySet<Stmt['k']> = new Set(['def', 'class', 'return', 'if', 'while', 'for', 'break', 'continue', 'pass', 'assert']);

/** Words that cannot be names; the value explains the word where it cannot start a statement. */
const KEYWORDS = table<string>({
  for: "'for' starts a statement: a loop (comprehensions are not supported)",
  while: "'while' starts a statement",
  break: "'break' is a statement of its own",
  continue: "'continue' is a statement of its own",
  if: "'if' starts a statement, or needs 'else' in a conditional expression",
  elif: "'elif' must follow an if block at the same indentation",
  else: "'else' must follow an if block at the same indentation ('else' after for and while is not supported)",
  def: "'def' starts a statement",
  class: "'class' starts a statement",
  return: "'return' is a statement of its own",
  assert: "'assert' is a statement of its own",
  pass: "'pass' is a statement of its own",
  and: "'and' needs an operand on each side",
  or: "'or' needs an operand on each side",
  not: "'not' needs an operand",
  lambda: 'lambdas are not supported: write a def',
  yield: 'generators are not supported',
  async: 'async functions are not supported',
  await: 'async functions are not supported',
  try: 'exception handling is not supported',
  except: 'exception handling is not supported',
  finally: 'exception handling is not supported',
  raise: 'exception handling is not supported: use assert',
  in: "operator 'in' is not supported",
  is: "operator 'is' is not supported: compare with ==",
  global: "'global' is not supported: a function binds its own names; return values instead",
  nonlocal: "'nonlocal' is not supported",
  import: 'imports are not supported',
  from: 'imports are not supported',
  as: "'as' is not supported here",
  with: 'a with statement must start its own line',
});
/** Statements that open an indented block. */
const COMPOUND = new Set(['with', 'def', 'class', 'if', 'while', 'for']);
const UNSUPPORTED_OPS = new Set(['<<', '>>', '&', '|', '^', '~', '<<=', '>>=', '&=', '|=', '^=', '->']);
const COMPARISONS = new Set(['==', '!=', '<', '<=', '>', '>=']);
export const AUG_OPS = new Set(['+=', '-=', '*=', '/=', '**=', '@=', '//=', '%=']);
/** Modules whose import lines are accepted and ignored: the namespaces they bind are built in. */
const IMPORTABLE = new Set(['mxnet', 'gradserve']);

function describe(t: Token): string {
  switch (t.type) {
    case 'newline': return 'end of line';
    case 'indent': return 'an indented line';
    case 'dedent': return 'the end of the block';
    case 'eof': return 'end of input';
    case 'string': return 'a string';
    default: return `'${t.value}'`;
  }
}

export function parse(tokens: Token[], maxDepth: number): Stmt[] {
  return new Parser(tokens, maxDepth).file();
}

class Parser {
  private i = 0;
  private depth = 0;
  /** The line of the last real token consumed: where a block ends. */
  private lastLine = 1;

  constructor(private readonly toks: Token[], private readonly maxDepth: number) {}

  file(): Stmt[] {
    const out: Stmt[] = [];
    while (this.peek().type !== 'eof') this.statement(out);
    return out;
  }

  // --- token helpers ---

  private peek(ahead = 0): Token {
    return this.toks[Math.min(this.i + ahead, this.toks.length - 1)]!;
  }
  private next(): Token {
    const t = this.peek();
    if (this.i < this.toks.length - 1) this.i++;
    if (t.type !== 'newline' && t.type !== 'indent' && t.type !== 'dedent' && t.type !== 'eof') this.lastLine = t.line;
    return t;
  }
  private isOp(value: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return t.type === 'op' && t.value === value;
  }
  private isName(value: string): boolean {
    const t = this.peek();
    return t.type === 'name' && t.value === value;
  }
  private expectOp(value: string, context: string): Token {
    if (!this.isOp(value)) throw this.unexpected(`'${value}' ${context}`);
    return this.next();
  }

  /** The error for the current token; keywords and rejected operators explain themselves. */
  private unexpected(expected: string) {
    const t = this.peek();
    if (t.type === 'name' && KEYWORDS[t.value]) return syntaxError(KEYWORDS[t.value]!, t);
    if (t.type === 'op' && UNSUPPORTED_OPS.has(t.value)) return syntaxError(`operator '${t.value}' is not supported`, t);
    if (t.type === 'op' && t.value === ':=') return syntaxError("assignment expressions (':=') are not supported", t);
    if (t.type === 'indent') return syntaxError('unexpected indent', t);
    return syntaxError(`expected ${expected}, found ${describe(t)}`, t);
  }

  private nest(at: Pos): void {
    if (++this.depth > this.maxDepth) throw depthExceeded(this.maxDepth, at);
  }
  private unnest(): void {
    this.depth--;
  }

  // --- statements ---

  private statement(out: Stmt[]): void {
    const t = this.peek();
    if (t.type !== 'name' || !COMPOUND.has(t.value)) {
      this.simpleLine(out);
      return;
    }
    switch (t.value) {
      case 'with': out.push(this.withStatement()); break;
      case 'def': out.push(this.defStatement()); break;
      case 'class': out.push(this.classStatement()); break;
      case 'if': out.push(this.ifStatement()); break;
      case 'while': {
        this.next();
        const test = this.expr();
        out.push({ k: 'while', test, body: this.block(t, 'while'), pos: t });
        this.noElse('while');
        break;
      }
      default: {
        this.next();
        const target = this.forTarget();
        if (!this.isName('in')) throw this.unexpected("'in' after the loop variable");
        this.next();
        const iter = this.exprList();
        out.push({ k: 'for', target, iter, body: this.block(t, 'for'), pos: t });
        this.noElse('for');
      }
    }
  }

  private noElse(what: string): void {
    if (this.isName('else')) throw syntaxError(`'else' after ${what} is not supported`, this.peek());
  }

  /** `for i in`, `for a, b in`, `for (a, b) in`: names only. */
  private forTarget(): Expr {
    const first = this.peek();
    const names: Expr[] = [];
    const paren = this.isOp('(');
    if (paren) this.next();
    for (;;) {
      const n = this.nameToken('a loop variable');
      names.push({ k: 'name', id: n.value, pos: n });
      if (!this.isOp(',')) break;
      this.next();
      if (this.isName('in') || this.isOp(')')) break;
    }
    if (paren) this.expectOp(')', 'to close the loop variables');
    return names.length === 1 && !paren ? names[0]! : { k: 'seq', items: names, tuple: true, pos: first };
  }

  /** The body after `:`: an indented block, or simple statements on the same line. */
  private block(kw: Token, what: string): Stmt[] {
    this.expectOp(':', `after the ${what} statement`);
    this.nest(kw);
    const body: Stmt[] = [];
    if (this.peek().type === 'newline') {
      this.next();
      if (this.peek().type !== 'indent') {
        throw syntaxError(`expected an indented block after the ${what} statement on line ${kw.line}, found ${describe(this.peek())}`, this.peek());
      }
      this.next();
      while (this.peek().type !== 'dedent' && this.peek().type !== 'eof') this.statement(body);
      if (this.peek().type === 'dedent') this.next();
    } else {
      const t = this.peek();
      if (t.type === 'name' && COMPOUND.has(t.value)) {
        throw syntaxError(`a ${t.value} statement after a colon must go on its own indented line`, t);
      }
      this.simpleLine(body);
    }
    this.unnest();
    return body;
  }

  private ifStatement(): Stmt {
    const kw = this.next();
    const branches: { test: Expr; body: Stmt[]; pos: Pos }[] = [];
    let test = this.expr();
    branches.push({ test, body: this.block(kw, 'if'), pos: kw });
    for (;;) {
      const t = this.peek();
      if (t.type === 'name' && t.value === 'elif') {
        this.next();
        test = this.expr();
        branches.push({ test, body: this.block(t, 'elif'), pos: t });
        continue;
      }
      if (t.type === 'name' && t.value === 'else') {
        this.next();
        return { k: 'if', branches, orelse: this.block(t, 'else'), pos: kw };
      }
      return { k: 'if', branches, pos: kw };
    }
  }

  private defStatement(): Stmt {
    const kw = this.next();
    const name = this.nameToken('a function name after def');
    this.expectOp('(', 'after the function name');
    const params: Param[] = [];
    while (!this.isOp(')')) {
      const t = this.peek();
      if (t.type === 'op' && (t.value === '*' || t.value === '**')) {
        throw syntaxError(`'${t.value}' parameters are not supported: name each parameter`, t);
      }
      const p = this.nameToken('a parameter name');
      if (params.some((q) => q.name === p.value)) throw syntaxError(`duplicate parameter '${p.value}'`, p);
      let dflt: Expr | undefined;
      if (this.isOp('=')) {
        this.next();
        dflt = this.expr();
      } else if (params.some((q) => q.default)) {
        throw syntaxError('a parameter without a default cannot follow one with a default', p);
      }
      params.push(dflt ? { name: p.value, default: dflt, pos: p } : { name: p.value, pos: p });
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp(')', 'to close the parameter list');
    if (this.isOp('->')) throw syntaxError('annotations are not supported', this.peek());
    const body = this.block(kw, 'def');
    return { k: 'def', name: name.value, params, body, pos: kw, lastLine: this.lastLine };
  }

  private classStatement(): Stmt {
    const kw = this.next();
    const name = this.nameToken('a class name after class');
    const bases: Expr[] = [];
    if (this.isOp('(')) {
      this.next();
      while (!this.isOp(')')) {
        bases.push(this.expr());
        if (!this.isOp(',')) break;
        this.next();
      }
      this.expectOp(')', 'to close the base classes');
    }
    const body = this.block(kw, 'class');
    return { k: 'class', name: name.value, bases, body, pos: kw, lastLine: this.lastLine };
  }

  /** Simple statements separated by `;`, up to the end of the line. */
  private simpleLine(out: Stmt[]): void {
    for (;;) {
      const s = this.small();
      if (s) out.push(s);
      if (!this.isOp(';')) break;
      this.next();
      const t = this.peek();
      if (t.type === 'newline' || t.type === 'eof') break;
    }
    const t = this.peek();
    if (t.type === 'newline') this.next();
    else if (t.type !== 'eof') throw this.unexpected("a new line or ';' after the statement");
  }

  private small(): Stmt | null {
    const t = this.peek();
    if (t.type === 'name' && (t.value === 'import' || t.value === 'from')) {
      this.importLine();
      return null;
    }
    if (t.type === 'name') {
      switch (t.value) {
        case 'pass': case 'break': case 'continue':
          this.next();
          return { k: t.value, pos: t };
        case 'return': {
          this.next();
          const n = this.peek();
          if (n.type === 'newline' || n.type === 'eof' || this.isOp(';')) return { k: 'return', pos: t };
          return { k: 'return', value: this.exprList(), pos: t };
        }
        case 'assert': {
          this.next();
          const test = this.expr();
          if (!this.isOp(',')) return { k: 'assert', test, pos: t };
          this.next();
          return { k: 'assert', test, msg: this.expr(), pos: t };
        }
        default:
          break;
      }
    }
    if (t.type === 'name' && KEYWORDS[t.value]) throw this.unexpected('a statement');
    if (t.type === 'name' && t.value === 'del' && this.peek(1).type === 'name') {
      this.next();
      const names = [this.nameToken('a name after del').value];
      while (this.isOp(',')) {
        this.next();
        names.push(this.nameToken('a name').value);
      }
      return { k: 'del', names, pos: t };
    }
    const first = this.exprList();
    if (this.isOp('=')) {
      const targets = [first];
      let value: Expr;
      for (;;) {
        this.next();
        value = this.exprList();
        if (!this.isOp('=')) break;
        targets.push(value);
      }
      return { k: 'assign', targets, value, pos: t };
    }
    const op = this.peek();
    if (op.type === 'op' && AUG_OPS.has(op.value)) {
      this.next();
      return { k: 'aug', target: first, op: op.value.slice(0, -1), value: this.expr(), pos: op };
    }
    return { k: 'expr', expr: first, pos: t };
  }

  private withStatement(): Stmt {
    const kw = this.next();
    const items = [this.expr()];
    while (this.isOp(',')) {
      this.next();
      items.push(this.expr());
    }
    if (this.isName('as')) throw syntaxError("'with ... as' is not supported: scopes have no value", this.peek());
    return { k: 'with', items, body: this.block(kw, 'with'), pos: kw };
  }

  /** `import mxnet as mx`, `from mxnet import autograd, nd`: accepted and ignored. */
  private importLine(): void {
    const kw = this.next();
    const moduleName = (): void => {
      const t = this.peek();
      if (t.type !== 'name') throw this.unexpected('a module name');
      if (!IMPORTABLE.has(t.value)) {
        throw syntaxError(`imports are not supported: only 'mxnet' and 'gradserve' imports are accepted (and ignored), not '${t.value}'`, t);
      }
      this.next();
      while (this.isOp('.')) {
        this.next();
        this.nameToken('a module name');
      }
    };
    const alias = (): void => {
      if (this.isName('as')) {
        this.next();
        this.nameToken('a name after as');
      }
    };
    if (kw.value === 'import') {
      for (;;) {
        moduleName();
        alias();
        if (!this.isOp(',')) return;
        this.next();
      }
    }
    moduleName();
    if (!this.isName('import')) throw this.unexpected("'import'");
    this.next();
    if (this.isOp('*')) {
      this.next();
      return;
    }
    const paren = this.isOp('(');
    if (paren) this.next();
    for (;;) {
      this.nameToken('a name to import');
      alias();
      if (!this.isOp(',')) break;
      this.next();
      if (paren && this.isOp(')')) break;
    }
    if (paren) this.expectOp(')', 'to close the import list');
  }

  private nameToken(expected: string): Token {
    const t = this.peek();
    if (t.type !== 'name' || KEYWORDS[t.value]) throw this.unexpected(expected);
    return this.next();
  }

  // --- expressions ---

  /** `a, b` is a tuple, as in Python; used for statement level expressions and targets. */
  private exprList(): Expr {
    const first = this.expr();
    if (!this.isOp(',')) return first;
    const items = [first];
    while (this.isOp(',')) {
      this.next();
      if (this.atExprEnd()) break;
      items.push(this.expr());
    }
    return { k: 'seq', items, tuple: true, pos: first.pos };
  }

  private atExprEnd(): boolean {
    const t = this.peek();
    return t.type === 'newline' || t.type === 'eof' || (t.type === 'op' && ['=', ';', ')', ']'].includes(t.value)) ||
      (t.type === 'op' && AUG_OPS.has(t.value));
  }

  /** `a if c else b` binds loosest; then or, and, not; then comparisons. */
  expr(): Expr {
    const body = this.orTest();
    if (!this.isName('if')) return body;
    const kw = this.next();
    this.nest(kw);
    const test = this.orTest();
    if (!this.isName('else')) throw this.unexpected("'else' in the conditional expression");
    this.next();
    const orelse = this.expr();
    this.unnest();
    return { k: 'ifexp', test, body, orelse, pos: kw };
  }

  private orTest(): Expr {
    return this.boolChain('or', () => this.andTest());
  }

  private andTest(): Expr {
    return this.boolChain('and', () => this.notTest());
  }

  private boolChain(op: 'and' | 'or', operand: () => Expr): Expr {
    const first = operand();
    if (!this.isName(op)) return first;
    const values = [first];
    while (this.isName(op)) {
      this.next();
      values.push(operand());
    }
    return { k: 'boolop', op, values, pos: first.pos };
  }

  private notTest(): Expr {
    const t = this.peek();
    if (t.type === 'name' && t.value === 'not') {
      this.next();
      this.nest(t);
      const operand = this.notTest();
      this.unnest();
      return { k: 'not', operand, pos: t };
    }
    return this.comparison();
  }

  private comparison(): Expr {
    const first = this.arith();
    const t = this.peek();
    if (t.type !== 'op' || !COMPARISONS.has(t.value)) return first;
    this.next();
    const rhs = this.arith();
    if (this.peek().type === 'op' && COMPARISONS.has(this.peek().value)) {
      throw syntaxError('chained comparisons (a < b < c) are not supported: compare two operands at a time', this.peek());
    }
    return { k: 'binary', first, rest: [{ op: t.value, rhs, pos: t }], pos: first.pos };
  }

  private arith(): Expr {
    return this.chain(['+', '-'], () => this.term());
  }

  private term(): Expr {
    return this.chain(['*', '/', '@', '//', '%'], () => this.unary());
  }

  private chain(ops: string[], operand: () => Expr): Expr {
    const first = operand();
    const rest: BinaryStep[] = [];
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op' || !ops.includes(t.value)) break;
      this.next();
      rest.push({ op: t.value, rhs: operand(), pos: t });
    }
    return rest.length ? { k: 'binary', first, rest, pos: first.pos } : first;
  }

  private unary(): Expr {
    const t = this.peek();
    if (t.type === 'op' && (t.value === '-' || t.value === '+')) {
      this.next();
      this.nest(t);
      const operand = this.unary();
      this.unnest();
      return { k: 'unary', op: t.value, operand, pos: t };
    }
    return this.power();
  }

  /** `-x**2` is `-(x**2)` and `2**-1` is allowed: the exponent is a unary expression. */
  private power(): Expr {
    const base = this.postfix();
    if (!this.isOp('**')) return base;
    const t = this.next();
    this.nest(t);
    const rhs = this.unary();
    this.unnest();
    return { k: 'binary', first: base, rest: [{ op: '**', rhs, pos: t }], pos: base.pos };
  }

  private postfix(): Expr {
    const base = this.atom();
    const trailers: Trailer[] = [];
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op') break;
      if (t.value === '.') {
        this.next();
        const name = this.nameToken('an attribute or method name after .');
        trailers.push({ t: 'attr', name: name.value, pos: name });
      } else if (t.value === '(') {
        trailers.push(this.callTrailer());
      } else if (t.value === '[') {
        trailers.push(this.indexTrailer());
      } else {
        break;
      }
    }
    return trailers.length ? { k: 'postfix', base, trailers, pos: base.pos } : base;
  }

  private callTrailer(): Trailer {
    const open = this.next();
    this.nest(open);
    const args: Expr[] = [];
    const kwargs: Kwarg[] = [];
    while (!this.isOp(')')) {
      const t = this.peek();
      if (t.type === 'op' && (t.value === '*' || t.value === '**')) {
        throw syntaxError(`'${t.value}' unpacking of arguments is not supported`, t);
      }
      if (t.type === 'name' && this.isOp('=', 1)) {
        if (KEYWORDS[t.value] || t.value === 'True' || t.value === 'False' || t.value === 'None') throw this.unexpected('an argument');
        this.next();
        this.next();
        if (kwargs.some((k) => k.name === t.value)) throw syntaxError(`keyword argument '${t.value}' is repeated`, t);
        kwargs.push({ name: t.value, value: this.expr(), pos: t });
      } else {
        if (kwargs.length) throw syntaxError('a positional argument cannot follow keyword arguments', t);
        args.push(this.expr());
      }
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp(')', `to close the call opened at line ${open.line}, column ${open.column}`);
    this.unnest();
    return { t: 'call', args, kwargs, pos: open };
  }

  private indexTrailer(): Trailer {
    const open = this.next();
    this.nest(open);
    const key: KeyItem[] = [];
    for (;;) {
      key.push(this.keyItem());
      if (!this.isOp(',')) break;
      this.next();
      if (this.isOp(']')) break;
    }
    this.expectOp(']', `to close the index opened at line ${open.line}, column ${open.column}`);
    this.unnest();
    return { t: 'index', key, pos: open };
  }

  private keyItem(): KeyItem {
    const pos = this.peek();
    const bound = (): Expr | undefined => (this.isOp(':') || this.isOp(',') || this.isOp(']') ? undefined : this.expr());
    if (this.isOp(']') || this.isOp(',')) throw this.unexpected('an index');
    const start = bound();
    if (!this.isOp(':')) return start!;
    this.next();
    const stop = bound();
    let step: Expr | undefined;
    if (this.isOp(':')) {
      this.next();
      step = bound();
    }
    return { k: 'slice', start, stop, step, pos };
  }

  private atom(): Expr {
    const t = this.peek();
    switch (t.type) {
      case 'number':
        this.next();
        return { k: 'num', v: t.num!, isInt: t.isInt!, pos: t };
      case 'string': {
        this.next();
        let v = t.value;
        // Adjacent literals concatenate, as in Python.
        while (this.peek().type === 'string') v += this.next().value;
        return { k: 'str', v, pos: t };
      }
      case 'name':
        if (t.value === 'True' || t.value === 'False' || t.value === 'None') {
          this.next();
          return { k: 'lit', v: t.value === 'None' ? null : t.value === 'True', pos: t };
        }
        if (KEYWORDS[t.value]) throw this.unexpected('an expression');
        this.next();
        return { k: 'name', id: t.value, pos: t };
      case 'op':
        if (t.value === '(' || t.value === '[') return this.bracketed();
        if (t.value === '{') throw syntaxError('dict and set literals are not supported', t);
        if (t.value === '...') throw syntaxError('Ellipsis (...) is not supported', t);
        break;
      default:
        break;
    }
    throw this.unexpected('an expression');
  }

  /** `(e)`, tuples `()`, `(a,)`, `(a, b)` and lists `[a, b]`. */
  private bracketed(): Expr {
    const open = this.next();
    const close = open.value === '(' ? ')' : ']';
    this.nest(open);
    const items: Expr[] = [];
    let comma = false;
    while (!this.isOp(close)) {
      items.push(this.expr());
      if (!this.isOp(',')) break;
      this.next();
      comma = true;
    }
    this.expectOp(close, `to close the '${open.value}' opened at line ${open.line}, column ${open.column}`);
    this.unnest();
    if (open.value === '(' && items.length === 1 && !comma) return items[0]!;
    return { k: 'seq', items, tuple: open.value === '(', pos: open };
  }
}
