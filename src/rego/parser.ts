/** Recursive-descent Rego parser producing the AST in ./ast.ts. Errors carry line:column. */
import type { Body, Expr, Import, Loc, Module, Rule, RuleHead, Term, With } from './ast.js';
import { RegoParseError, tokenize, type Token } from './lexer.js';
import { Dec, parseNumberLiteral } from './value.js';

const BIN_OPS: Record<string, string> = {
  '==': 'equal',
  '!=': 'neq',
  '<': 'lt',
  '>': 'gt',
  '<=': 'lte',
  '>=': 'gte',
  '+': 'plus',
  '-': 'minus',
  '*': 'mul',
  '/': 'div',
  '%': 'rem',
  '&': 'and',
  '|': 'or',
};

const KEYWORDS = new Set(['not', 'with', 'as', 'some', 'every', 'in', 'if', 'contains', 'else', 'default', 'package', 'import', 'true', 'false', 'null']);

export interface ParseOptions {
  /** Parse as Rego v0 (keywords only when imported). Default: v1. */
  v0?: boolean;
}

export class Parser {
  private toks: Token[];
  private p = 0;
  private file: string;
  private src: string;

  constructor(src: string, file = 'query.rego') {
    this.src = src;
    this.file = file;
    this.toks = tokenize(src, file);
  }

  // ---------- token helpers ----------
  private peek(o = 0): Token {
    return this.toks[Math.min(this.p + o, this.toks.length - 1)];
  }
  private prev(): Token {
    return this.toks[this.p - 1];
  }
  private next(): Token {
    const t = this.toks[this.p];
    if (this.p < this.toks.length - 1) this.p++;
    return t;
  }
  private isOp(t: Token, s: string): boolean {
    return t.type === 'op' && t.text === s;
  }
  private isKw(t: Token, s: string): boolean {
    return t.type === 'ident' && t.text === s;
  }
  private atOp(s: string): boolean {
    return this.isOp(this.peek(), s);
  }
  /** A keyword use: the identifier is not the head of a reference (`if.foo`). */
  private atKw(s: string): boolean {
    const t = this.peek();
    if (!this.isKw(t, s)) return false;
    const n = this.peek(1);
    return !(n.type === 'op' && (n.text === '.' || n.text === '[') && n.pos === t.end);
  }
  private expectOp(s: string): Token {
    const t = this.peek();
    if (!this.isOp(t, s)) this.fail(`expected ${s}`, t);
    return this.next();
  }
  private sameLine(): boolean {
    const pv = this.prev();
    return !pv || this.peek().line === pv.endLine;
  }
  fail(msg: string, t: Token = this.peek()): never {
    const found = t.type === 'eof' ? 'end of input' : JSON.stringify(t.text);
    throw new RegoParseError(`rego_parse_error: ${msg} (found ${found})`, this.file, t.line, t.col);
  }
  private loc(t: Token): Loc {
    return { file: this.file, row: t.line, col: t.col };
  }
  private locText(t: Token, endTok: Token = this.prev()): Loc {
    return { file: this.file, row: t.line, col: t.col, text: this.src.slice(t.pos, endTok ? endTok.end : t.end) };
  }

  // ---------- module ----------
  parseModule(): Module {
    const mods = this.parseModules();
    if (mods.length !== 1) {
      if (mods.length === 0) this.fail('package expected');
    }
    return mods[0];
  }

  /** A file may (in tests) hold several `package` sections; each becomes a module. */
  parseModules(): Module[] {
    const out: Module[] = [];
    while (this.peek().type !== 'eof') {
      if (!this.atKw('package')) this.fail('package expected');
      const pt = this.next();
      const ref = this.parseRefOnly();
      const pkg = ['data', ...refToPath(ref, (m) => this.fail(m, pt))];
      const mod: Module = { file: this.file, pkg, pkgLoc: this.loc(pt), imports: [], rules: [], regoV1: true };
      while (this.atKw('import')) {
        const it = this.next();
        const path = this.parseRefOnly();
        let alias: string | undefined;
        if (this.atKw('as') && this.sameLine()) {
          this.next();
          const a = this.next();
          if (a.type !== 'ident') this.fail('expected import alias', a);
          alias = a.text;
        }
        const imp: Import = { path, alias, loc: this.loc(it) };
        const p = path.type === 'var' ? [path.name] : refToPath(path, (m) => this.fail(m, it));
        if (p[0] !== 'data' && p[0] !== 'input' && p[0] !== 'future' && p[0] !== 'rego') this.fail('invalid import path: must begin with input or data', it);
        if (p[0] === 'future' || p[0] === 'rego') {
          if (p[0] === 'future' && p[1] !== 'keywords') this.fail('invalid import, must be future.keywords', it);
          continue;
        }
        mod.imports.push(imp);
      }
      while (this.peek().type !== 'eof' && !this.atKw('package')) {
        const rules = this.parseRule(mod);
        for (const r of rules) {
          r.module = mod;
          mod.rules.push(r);
        }
      }
      out.push(mod);
    }
    return out;
  }

  private parseRefOnly(): Term {
    const t = this.parseTerm();
    if (t.type !== 'ref' && t.type !== 'var') this.fail('expected reference');
    return t;
  }

  private parseRule(mod: Module): Rule[] {
    const start = this.peek();
    let isDefault = false;
    if (this.atKw('default')) {
      this.next();
      isDefault = true;
    }
    const headStart = this.peek();
    if (headStart.type !== 'ident') this.fail('unexpected token: expected rule head', headStart);
    let headTerm = this.parseTerm(true);
    let args: Term[] | undefined;
    let ref: Term[];
    if (headTerm.type === 'call') {
      args = headTerm.args;
      headTerm = headTerm.fnRef;
    }
    if (headTerm.type === 'scalar' && (typeof headTerm.value === 'boolean' || headTerm.value === null)) headTerm = { type: 'var', name: String(headTerm.value), loc: headTerm.loc };
    if (headTerm.type === 'var') ref = [headTerm];
    else if (headTerm.type === 'ref' && headTerm.head.type === 'var') ref = [headTerm.head, ...headTerm.path];
    else return this.fail('invalid rule head', headStart);
    if (KEYWORDS.has((ref[0] as { name: string }).name) && !['as', 'in', 'contains'].includes((ref[0] as { name: string }).name)) {
      // keywords cannot be rule names (except in refs)
      if (ref.length === 1) this.fail(`unexpected ${(ref[0] as { name: string }).name} keyword`, headStart);
    }
    const head: RuleHead = { ref, args, assign: false, loc: this.loc(headStart) };
    let kind: Rule['kind'] = args ? 'func' : 'complete';
    if (this.atKw('contains') && this.sameLine()) {
      this.next();
      head.key = this.parseTermInfix();
      kind = 'set';
    } else if (this.atOp(':=') || this.atOp('=')) {
      head.assign = this.next().text === ':=';
      head.value = this.parseTermInfix();
    }
    let body: Body;
    let hasBody = false;
    if (this.atKw('if')) {
      this.next();
      body = this.parseRuleBody();
      hasBody = true;
    } else if (this.atOp('{') ) {
      body = this.parseBraceBody();
      hasBody = true;
      // v0 semantics: p[x] { ... } without a value is a partial set
      if (kind === 'complete' && !head.value && ref.length > 1 && ref[ref.length - 1].type !== 'scalar') {
        head.key = ref.pop();
        kind = 'set';
      }
    } else {
      body = [];
    }
    if (!hasBody && !head.value && kind === 'complete' && ref.length === 1 && !args && !isDefault) {
      this.fail('rule must have a value or a body', headStart);
    }
    if (body.length === 0 && hasBody) {
      this.fail('found empty body', this.prev());
    }
    const rule: Rule = { kind, isDefault, head, body, elses: [], loc: this.locText(start) };
    if (isDefault) {
      if (!head.value) this.fail('default rule must have a value', start);
    }
    while (this.atKw('else')) {
      const et = this.next();
      let value: Term | undefined;
      if (this.atOp('=') || this.atOp(':=')) {
        this.next();
        value = this.parseTermInfix();
      }
      let ebody: Body;
      if (this.atKw('if')) {
        this.next();
        ebody = this.parseRuleBody();
      } else if (this.atOp('{')) ebody = this.parseBraceBody();
      else ebody = [{ type: 'term', term: { type: 'scalar', value: true, loc: this.loc(et) }, negated: false, with: [], loc: this.loc(et) }];
      rule.elses.push({ value, body: ebody, loc: this.loc(et) });
    }
    const rules = [rule];
    // v0 chained bodies: p { a } { b }
    while (this.atOp('{') && hasBody && !rule.elses.length) {
      const b = this.parseBraceBody();
      rules.push({ ...rule, body: b, elses: [] });
    }
    if (body.length === 0) {
      rule.body = [{ type: 'term', term: { type: 'scalar', value: true, loc: this.loc(headStart) }, negated: false, with: [], loc: this.loc(headStart) }];
    }
    return rules;
  }

  private parseRuleBody(): Body {
    if (this.atOp('{')) {
      // `if {` is a body, unless it only parses as an object/set literal or comprehension
      const save = this.p;
      try {
        return this.parseBraceBody();
      } catch (e) {
        if (!(e instanceof RegoParseError)) throw e;
        this.p = save;
        try {
          return [this.parseExpr()];
        } catch {
          throw e;
        }
      }
    }
    const e = this.parseExpr();
    return [e];
  }

  private parseBraceBody(): Body {
    this.expectOp('{');
    const body = this.parseBodyUntil('}');
    this.expectOp('}');
    return body;
  }

  private parseBodyUntil(close: string): Body {
    const body: Body = [];
    while (!this.atOp(close)) {
      if (this.peek().type === 'eof') this.fail(`expected ${close}`);
      body.push(this.parseExpr());
      if (this.atOp(';')) {
        this.next();
        continue;
      }
      if (this.atOp(close)) break;
      if (this.sameLine()) this.fail('unexpected token: expected end of expression');
    }
    return body;
  }

  /** Parse a query (body) from the whole input. */
  parseQuery(): Body {
    const body: Body = [];
    while (this.peek().type !== 'eof') {
      body.push(this.parseExpr());
      if (this.atOp(';')) {
        this.next();
        continue;
      }
      if (this.peek().type === 'eof') break;
      if (this.sameLine()) this.fail('unexpected token: expected end of expression');
    }
    if (body.length === 0) this.fail('empty query');
    return body;
  }

  /** A template `{...}` part: a term, possibly with `with` modifiers (wrapped as a one-element comprehension). */
  parseTemplateExpr(): Term {
    const e = this.parseExpr();
    if (this.peek().type !== 'eof') this.fail('unexpected token after template expression');
    if (e.type === 'term' && !e.negated && e.with.length === 0) return e.term;
    const v: Term = { type: 'var', name: '__tpl__', loc: e.loc };
    const inner: Expr =
      e.type === 'term' && !e.negated
        ? { ...e, term: { type: 'call', fn: 'eq', fnRef: mkVar('eq', e.loc), args: [v, e.term], loc: e.loc } }
        : { ...e };
    const comp = { type: 'arraycomp', head: e.type === 'term' && !e.negated ? v : ({ type: 'scalar', value: true, loc: e.loc } as Term), body: [inner], loc: e.loc, single: true };
    return comp as Term;
  }

  parseSingleTerm(): Term {
    const t = this.parseTermInfix();
    if (this.peek().type !== 'eof') this.fail('unexpected token after term');
    return t;
  }

  // ---------- expressions ----------
  private parseExpr(): Expr {
    const st = this.peek();
    let negated = false;
    if (this.atKw('not')) {
      this.next();
      negated = true;
    }
    let e: Expr;
    if (this.atKw('some') && !this.isOp(this.peek(1), '.') && !this.isOp(this.peek(1), '[')) {
      e = this.parseSome(negated);
    } else if (this.atKw('every') && this.peek(1).type === 'ident') {
      e = this.parseEvery(negated);
    } else {
      const term = this.parseTermAssign();
      e = { type: 'term', term, negated, with: [], loc: this.locText(st) };
    }
    while (this.atKw('with')) {
      const wt = this.next();
      const target = this.parseTerm();
      if (!this.atKw('as')) this.fail('expected as');
      this.next();
      const value = this.parseTermInfix();
      e.with.push({ target, value, loc: this.loc(wt) } as With);
    }
    e.loc = this.locText(st);
    return e;
  }

  private parseSome(negated: boolean): Expr {
    const st = this.next();
    const terms: Term[] = [this.parseTermRel()];
    while (this.atOp(',')) {
      this.next();
      terms.push(this.parseTermRel());
    }
    if (this.atKw('in')) {
      this.next();
      const domain = this.parseTermRel();
      if (terms.length > 2) this.fail('unexpected , in some declaration', st);
      return {
        type: 'somein',
        key: terms.length === 2 ? terms[0] : undefined,
        value: terms[terms.length - 1],
        domain,
        negated,
        with: [],
        loc: this.loc(st),
      };
    }
    // `some x in xs` parsed as a single `in` call term
    if (terms.length === 1 && terms[0].type === 'call' && terms[0].fn === 'internal.member_2') {
      return { type: 'somein', value: terms[0].args[0], domain: terms[0].args[1], negated, with: [], loc: this.loc(st) };
    }
    const vars: string[] = [];
    for (const t of terms) {
      if (t.type !== 'var') this.fail('expected var in some declaration', st);
      vars.push(t.name);
    }
    return { type: 'some', vars, negated, with: [], loc: this.loc(st) };
  }

  private parseEvery(negated: boolean): Expr {
    const st = this.next();
    const a = this.parseTerm();
    let key: Term | undefined;
    let value = a;
    if (this.atOp(',')) {
      this.next();
      key = a;
      value = this.parseTerm();
    }
    if (!this.atKw('in')) this.fail('expected in');
    this.next();
    const domain = this.parseTermRel();
    const body = this.parseBraceBody();
    return { type: 'every', key, value, domain, body, negated, with: [], loc: this.loc(st) };
  }

  /** `k, v in xs` (only at expression level or inside parentheses). */
  private maybeMember3(first: Term): Term {
    if (!this.atOp(',')) return first;
    const save = this.p;
    this.next();
    let second: Term;
    try {
      second = this.parseTermOr();
    } catch {
      this.p = save;
      return first;
    }
    if (!this.atKw('in')) {
      this.p = save;
      return first;
    }
    const op = this.next();
    const coll = this.parseTermOr();
    let t: Term = { type: 'call', fn: 'internal.member_3', fnRef: mkVar('internal.member_3', this.loc(op)), args: [first, second, coll], loc: first.loc };
    while (this.atKw('in') && this.sameLine()) {
      const op2 = this.next();
      const rhs = this.parseTermOr();
      t = { type: 'call', fn: 'internal.member_2', fnRef: mkVar('internal.member_2', this.loc(op2)), args: [t, rhs], loc: t.loc };
    }
    return t;
  }

  private parseTermAssign(): Term {
    const lhs = this.maybeMember3(this.parseTermInfix());
    if ((this.atOp(':=') || this.atOp('=')) && this.sameLine()) {
      const op = this.next();
      const rhs = this.parseTermInfix();
      return { type: 'call', fn: op.text === ':=' ? 'assign' : 'eq', fnRef: mkVar(op.text === ':=' ? 'assign' : 'eq', this.loc(op)), args: [lhs, rhs], loc: lhs.loc };
    }
    return lhs;
  }

  /** Membership `in` is the lowest-precedence infix operator (after assignment). */
  private parseTermInfix(): Term {
    let lhs = this.parseTermOr();
    // `k, v in xs` inside expressions is handled by `some`; here single-var form
    while (this.atKw('in') && this.sameLine()) {
      const op = this.next();
      const rhs = this.parseTermOr();
      lhs = { type: 'call', fn: 'internal.member_2', fnRef: mkVar('internal.member_2', this.loc(op)), args: [lhs, rhs], loc: lhs.loc };
    }
    return lhs;
  }

  private parseBin(ops: string[], nextFn: () => Term): Term {
    let lhs = nextFn();
    for (;;) {
      const t = this.peek();
      if (t.type === 'op' && ops.includes(t.text) && this.sameLine()) {
        this.next();
        const rhs = nextFn();
        const fn = BIN_OPS[t.text];
        lhs = { type: 'call', fn, fnRef: mkVar(fn, this.loc(t)), args: [lhs, rhs], loc: lhs.loc };
      } else return lhs;
    }
  }
  private parseTermOr = (): Term => this.parseBin(['|'], this.parseTermAnd);
  private parseTermAnd = (): Term => this.parseBin(['&'], this.parseTermRel);
  private parseTermRel = (): Term => this.parseBin(['==', '!=', '<', '>', '<=', '>='], this.parseTermArith);
  private parseTermArith = (): Term => this.parseBin(['+', '-'], this.parseTermFactor);
  private parseTermFactor = (): Term => this.parseBin(['*', '/', '%'], () => this.parseTerm());

  // ---------- terms ----------
  parseTerm(ruleHead = false): Term {
    const t = this.peek();
    let term: Term;
    if (this.isOp(t, '-')) {
      this.next();
      const nt = this.peek();
      if (nt.type === 'number' && nt.pos === t.end) {
        this.next();
        term = { type: 'scalar', value: negate(parseNumberLiteral(nt.text)), loc: this.loc(t) };
      } else {
        const operand = this.parseTerm();
        if (operand.type === 'scalar' && (typeof operand.value === 'bigint' || typeof operand.value === 'number' || operand.value instanceof Dec)) {
          term = { type: 'scalar', value: negate(operand.value), loc: this.loc(t) };
        } else
          term = {
            type: 'call',
            fn: 'minus',
            fnRef: mkVar('minus', this.loc(t)),
            args: [{ type: 'scalar', value: 0n, loc: this.loc(t) }, operand],
            loc: this.loc(t),
          };
        return term;
      }
    } else if (t.type === 'number') {
      this.next();
      term = { type: 'scalar', value: parseNumberLiteral(t.text), loc: this.loc(t) };
    } else if (t.type === 'string' || t.type === 'rawstring') {
      this.next();
      term = { type: 'scalar', value: t.value!, loc: this.loc(t) };
    } else if (t.type === 'template') {
      this.next();
      term = this.parseTemplate(t);
    } else if (t.type === 'ident') {
      this.next();
      const nx = this.peek();
      const isRefHead = nx.type === 'op' && (nx.text === '.' || nx.text === '[') && nx.pos === t.end && t.text !== 'true' && t.text !== 'false' && t.text !== 'null' ? true : nx.type === 'op' && nx.text === '.' && nx.pos === t.end;
      if (!isRefHead && (t.text === 'true' || t.text === 'false')) term = { type: 'scalar', value: t.text === 'true', loc: this.loc(t) };
      else if (!isRefHead && t.text === 'null') term = { type: 'scalar', value: null, loc: this.loc(t) };
      else {
        if (!ruleHead && !isRefHead && (t.text === 'not' || t.text === 'with' || t.text === 'else' || t.text === 'import' || t.text === 'package' || t.text === 'default'))
          this.fail(`unexpected ${t.text} keyword`, t);
        term = { type: 'var', name: t.text, loc: this.loc(t) };
      }
    } else if (this.isOp(t, '[')) {
      this.next();
      term = this.parseArrayOrComp(t);
    } else if (this.isOp(t, '{')) {
      this.next();
      term = this.parseBraceTerm(t);
    } else if (this.isOp(t, '(')) {
      this.next();
      term = this.maybeMember3(this.parseTermInfix());
      this.expectOp(')');
      term = { ...term };
    } else {
      return this.fail('unexpected token: expected term', t);
    }
    return this.parsePostfix(term);
  }

  private parsePostfix(term: Term): Term {
    for (;;) {
      const t = this.peek();
      const adjacent = t.pos === this.prev().end;
      if (this.isOp(t, '.') && adjacent) {
        this.next();
        const id = this.next();
        if (id.type !== 'ident') this.fail('expected identifier after .', id);
        term = appendRef(term, { type: 'scalar', value: id.text, loc: this.loc(id) });
      } else if (this.isOp(t, '[') && adjacent) {
        this.next();
        const k = this.parseTermInfix();
        this.expectOp(']');
        term = appendRef(term, k);
      } else if (this.isOp(t, '(') && adjacent && (term.type === 'var' || term.type === 'ref')) {
        this.next();
        const args: Term[] = [];
        while (!this.atOp(')')) {
          args.push(this.parseTermInfix());
          if (this.atOp(',')) this.next();
          else if (!this.atOp(')')) this.fail('expected , or )');
        }
        this.expectOp(')');
        const fn = callName(term);
        if (fn === undefined) this.fail('invalid function name', t);
        if (fn === 'set' && args.length === 0) {
          term = { type: 'set', items: [], loc: term.loc };
          continue;
        }
        term = { type: 'call', fn, fnRef: term, args, loc: term.loc };
      } else return term;
    }
  }

  private parseArrayOrComp(st: Token): Term {
    if (this.atOp(']')) {
      this.next();
      return { type: 'array', items: [], loc: this.loc(st) };
    }
    const first = this.parseTermOrForBrace();
    if (this.atOp('|')) {
      this.next();
      const body = this.parseBodyUntil(']');
      this.expectOp(']');
      return { type: 'arraycomp', head: first, body, loc: this.loc(st) };
    }
    const items = [first];
    while (this.atOp(',')) {
      this.next();
      if (this.atOp(']')) break;
      items.push(this.parseTermInfix());
    }
    this.expectOp(']');
    return { type: 'array', items, loc: this.loc(st) };
  }

  private parseBraceTerm(st: Token): Term {
    if (this.atOp('}')) {
      this.next();
      return { type: 'object', items: [], loc: this.loc(st) };
    }
    const first = this.parseTermOrForBrace();
    if (this.atOp(':')) {
      this.next();
      const v = this.parseTermOrForBrace();
      if (this.atOp('|')) {
        this.next();
        const body = this.parseBodyUntil('}');
        this.expectOp('}');
        return { type: 'objcomp', key: first, value: v, body, loc: this.loc(st) };
      }
      const items: [Term, Term][] = [[first, v]];
      while (this.atOp(',')) {
        this.next();
        if (this.atOp('}')) break;
        const k = this.parseTermInfix();
        this.expectOp(':');
        items.push([k, this.parseTermInfix()]);
      }
      this.expectOp('}');
      return { type: 'object', items, loc: this.loc(st) };
    }
    if (this.atOp('|')) {
      this.next();
      const body = this.parseBodyUntil('}');
      this.expectOp('}');
      return { type: 'setcomp', head: first, body, loc: this.loc(st) };
    }
    const items = [first];
    while (this.atOp(',')) {
      this.next();
      if (this.atOp('}')) break;
      items.push(this.parseTermInfix());
    }
    this.expectOp('}');
    return { type: 'set', items, loc: this.loc(st) };
  }

  /** Inside `{ a | ... }` the `|` separates head from body, so parse without `|` as an operator. */
  private parseTermOrForBrace(): Term {
    let lhs = this.parseTermAnd();
    while (this.atKw('in') && this.sameLine()) {
      const op = this.next();
      const rhs = this.parseTermAnd();
      lhs = { type: 'call', fn: 'internal.member_2', fnRef: mkVar('internal.member_2', this.loc(op)), args: [lhs, rhs], loc: lhs.loc };
    }
    return lhs;
  }

  private parseTemplate(t: Token): Term {
    const src = t.value!;
    const parts: (string | Term)[] = [];
    let buf = '';
    let i = 0;
    // offset of template content in file for error positions
    while (i < src.length) {
      const c = src[i];
      if (c === '\\' && (src[i + 1] === '{' || src[i + 1] === '}')) {
        buf += src[i + 1];
        i += 2;
        continue;
      }
      if (!t.raw && c === '\\') {
        const d = src[i + 1];
        // standard JSON escape
        let j = i + 2;
        if (d === 'u') j = i + 6;
        try {
          buf += JSON.parse('"' + src.slice(i, j) + '"') as string;
        } catch {
          this.fail('illegal escape in template string', t);
        }
        i = j;
        continue;
      }
      if (c === '{') {
        // find matching close, skipping nested strings
        let depth = 1;
        let j = i + 1;
        while (j < src.length && depth > 0) {
          const d = src[j];
          if (d === '"') {
            j++;
            while (j < src.length && src[j] !== '"') {
              if (src[j] === '\\') j++;
              j++;
            }
          } else if (d === '`') {
            j++;
            while (j < src.length && src[j] !== '`') j++;
          } else if (d === '{') depth++;
          else if (d === '}') depth--;
          j++;
        }
        if (depth > 0) this.fail('unterminated template expression', t);
        const inner = src.slice(i + 1, j - 1);
        if (buf) parts.push(buf);
        buf = '';
        const sub = new Parser(inner, this.file);
        // adjust positions: best effort (use template token line)
        let term: Term;
        try {
          term = sub.parseTemplateExpr();
        } catch (e) {
          if (e instanceof RegoParseError) throw new RegoParseError(e.message, this.file, t.line, t.col);
          throw e;
        }
        parts.push(term);
        i = j;
        continue;
      }
      buf += c;
      i++;
    }
    if (buf || parts.length === 0) parts.push(buf);
    return { type: 'template', parts, loc: this.loc(t) };
  }
}

function negate(v: bigint | number | Dec | unknown): bigint | number | Dec {
  if (typeof v === 'bigint') return -v;
  if (v instanceof Dec) return new Dec(-v.m, v.e);
  return -(v as number);
}

function mkVar(name: string, loc: Loc): Term {
  return { type: 'var', name, loc };
}

function appendRef(term: Term, k: Term): Term {
  if (term.type === 'ref') return { type: 'ref', head: term.head, path: [...term.path, k], loc: term.loc };
  return { type: 'ref', head: term, path: [k], loc: term.loc };
}

export function callName(term: Term): string | undefined {
  if (term.type === 'var') return term.name;
  if (term.type !== 'ref' || term.head.type !== 'var') return undefined;
  const parts = [term.head.name];
  for (const p of term.path) {
    if (p.type !== 'scalar' || typeof p.value !== 'string') return undefined;
    parts.push(p.value);
  }
  return parts.join('.');
}

export function refToPath(t: Term, fail: (m: string) => never): string[] {
  if (t.type === 'var') return [t.name];
  if (t.type !== 'ref' || t.head.type !== 'var') return fail('expected reference');
  const out = [t.head.name];
  for (const p of t.path) {
    if (p.type !== 'scalar' || typeof p.value !== 'string') return fail('unexpected non-string path element');
    out.push(p.value);
  }
  return out;
}

export function parseModule(src: string, file = 'module.rego'): Module[] {
  return new Parser(src, file).parseModules();
}

export function parseQuery(src: string, file = 'query'): Body {
  return new Parser(src, file).parseQuery();
}

export function parseTerm(src: string, file = 'term'): Term {
  return new Parser(src, file).parseSingleTerm();
}
