/**
 * Compiler: merges modules into a rule tree under `data`, resolves names (rule refs,
 * imports, built-ins), renames wildcards and shadowed locals, reorders bodies for
 * safety, and builds equality indexes for rule sets.
 */
import type { Body, Expr, Module, Rule, Term } from './ast.js';
import { forEachSubterm, isComprehension } from './ast.js';
import { ZtmError } from '../errors.js';
import { BUILTINS } from './builtins/index.js';
import { globToRegExp } from './builtins/strings.js';
import { parseModule } from './parser.js';
import { keyOf, type Value } from './value.js';

export interface CRule {
  rule: Rule;
  /** Path of ground string segments from data root (for complete/set/func rules: the rule path). */
  path: string[];
  /** Dynamic suffix terms for multi-key object rules (`p[k] := v`, `a.b[x].c := v`). */
  suffix: Term[];
  kind: 'complete' | 'set' | 'object' | 'func';
  body: Body;
  value?: Term; // head value (complete/object/func); undefined means true
  key?: Term; // set member
  args?: Term[];
  elses: { value?: Term; body: Body }[];
  isDefault: boolean;
  /** Value term is ground: one solution per body suffices. */
  constValue: boolean;
  /** For indexing: equality conditions `ref == const` in the body. */
  eqConds?: Map<string, Value>;
  /** For indexing: `glob.match(const, const, input.ref)` conditions in the body. */
  globConds?: { ref: Term; refKey: string; re: RegExp; prefix: string }[];
  /** Position among the node's complete definitions (set when indexed). */
  pos?: number;
  file: string;
}

export class RuleNode {
  readonly children = new Map<string, RuleNode>();
  complete: CRule[] = [];
  defaults: CRule[] = [];
  sets: CRule[] = [];
  objects: CRule[] = [];
  funcs: CRule[] = [];
  index?: RuleIndex;
  /** Some definitions have constant glob conditions that can pre-filter candidates. */
  globFilter = false;
  /** Definitions bucketed by the literal prefix of a glob pattern on one input reference. */
  globIndex?: GlobIndex;
  isFunc = false;
  constructor(readonly path: string[]) {}
  get isLeaf(): boolean {
    return this.complete.length > 0 || this.defaults.length > 0 || this.sets.length > 0 || this.funcs.length > 0;
  }
  get hasRulesBelow(): boolean {
    if (this.isLeaf || this.objects.length) return true;
    for (const c of this.children.values()) if (c.hasRulesBelow) return true;
    return false;
  }
}

/** Index over the defs of one complete rule: a ref whose constant value selects candidates. */
export interface RuleIndex {
  ref: Term;
  refKey: string;
  buckets: Map<string, CRule[]>;
  rest: CRule[];
}

export interface GlobIndex {
  ref: Term;
  refKey: string;
  byPrefix: Map<string, CRule[]>;
  /** Distinct prefix lengths, for lookups of value.slice(0, n). */
  lengths: number[];
  rest: CRule[];
}

export interface CompileOptions {
  /** Build equality indexes over rule definitions (default true). */
  indexing?: boolean;
}

export class CompiledModules {
  readonly root = new RuleNode([]);
  readonly modules: Module[] = [];
  readonly funcPaths = new Map<string, RuleNode>();
  readonly funcArity = new Map<string, number>();
  private gen = 0;

  constructor(modules: Module[], opts: CompileOptions = {}) {
    this.modules = modules;
    // pass 1: rule names per package
    const pkgRules = new Map<string, Set<string>>();
    for (const m of modules) {
      const key = m.pkg.join('.');
      let s = pkgRules.get(key);
      if (!s) pkgRules.set(key, (s = new Set()));
      for (const r of m.rules) s.add((r.head.ref[0] as { name: string }).name);
    }
    for (const m of modules) {
      for (const r of m.rules) {
        if (r.kind !== 'func') continue;
        const path = [...m.pkg, (r.head.ref[0] as { name: string }).name];
        for (const t of r.head.ref.slice(1)) if (t.type === 'scalar') path.push(String(t.value));
        this.funcArity.set(path.join('.'), r.head.args?.length ?? 0);
      }
    }
    arityLookup = (n) => this.funcArity.get(n);
    for (const m of modules) {
      let node = this.root;
      for (const seg of m.pkg.slice(1)) {
        let ch = node.children.get(seg);
        if (!ch) node.children.set(seg, (ch = new RuleNode([...node.path, seg])));
        node = ch;
      }
    }
    for (const m of modules) {
      const rulesHere = pkgRules.get(m.pkg.join('.'))!;
      const imports = new Map<string, Term>();
      for (const imp of m.imports) {
        const path = imp.path;
        let alias = imp.alias;
        if (!alias) {
          if (path.type === 'var') alias = path.name;
          else if (path.type === 'ref') {
            const last = path.path[path.path.length - 1];
            alias = last.type === 'scalar' ? String(last.value) : undefined;
          }
        }
        if (alias) imports.set(alias, path);
      }
      for (const r of m.rules) this.addRule(m, r, rulesHere, imports);
    }
    if (opts.indexing !== false) this.buildIndexes(this.root);
  }

  fresh(prefix: string): string {
    return `${prefix}$${++this.gen}`;
  }

  private addRule(m: Module, r: Rule, rulesHere: Set<string>, imports: Map<string, Term>): void {
    const refTerms = r.head.ref;
    const name = (refTerms[0] as { name: string }).name;
    const path = [...m.pkg.slice(1), name];
    let i = 1;
    for (; i < refTerms.length; i++) {
      const t = refTerms[i];
      if (t.type === 'scalar' && typeof t.value === 'string') path.push(t.value);
      else break;
    }
    const suffix = refTerms.slice(i);
    const rw = new Rewriter(this, m, rulesHere, imports);
    // Locals from the head: function args
    const locals = new Set<string>();
    if (r.head.args) for (const a of r.head.args) collectVars(a, locals);
    const args = r.head.args?.map((a) => rw.term(a, locals, new Map()));
    const scope = new Map<string, string>();
    const body = rw.body(r.body, locals, scope, args ? varsOf(args) : new Set());
    const sfx = suffix.map((t) => rw.term(t, locals, scope));
    const value = r.head.value ? rw.term(r.head.value, locals, scope) : undefined;
    const key = r.head.key ? rw.term(r.head.key, locals, scope) : undefined;
    const elses = r.elses.map((e) => {
      const sc = new Map<string, string>();
      const b = rw.body(e.body, locals, sc, args ? varsOf(args) : new Set());
      return { value: e.value ? rw.term(e.value, locals, sc) : undefined, body: b };
    });
    let kind: CRule['kind'];
    if (r.kind === 'func') kind = 'func';
    else if (r.kind === 'set') kind = suffix.length ? 'object' : 'set';
    else kind = suffix.length ? 'object' : 'complete';
    const c: CRule = {
      rule: r,
      path,
      suffix: sfx,
      kind,
      body,
      value,
      key,
      args,
      elses,
      isDefault: r.isDefault,
      constValue: (value === undefined || isGround(value)) && elses.every((e) => e.value === undefined || isGround(e.value)),
      file: m.file,
    };
    let node = this.root;
    for (const seg of path) {
      let ch = node.children.get(seg);
      if (!ch) node.children.set(seg, (ch = new RuleNode([...node.path, seg])));
      node = ch;
    }
    if (kind === 'object') {
      node.objects.push(c);
    } else if (kind === 'set') node.sets.push(c);
    else if (kind === 'func') {
      node.isFunc = true;
      if (r.isDefault) node.defaults.push(c);
      else node.funcs.push(c);
      this.funcPaths.set('data.' + path.join('.'), node);
    } else if (r.isDefault) {
      node.defaults.push(c);
    } else node.complete.push(c);
    if (kind === 'func' && r.isDefault) {
      // default function: keep in funcs list too for lookup
      this.funcPaths.set('data.' + path.join('.'), node);
    }
  }

  private buildIndexes(node: RuleNode): void {
    if (node.complete.length >= 4) {
      node.complete.forEach((r, i) => (r.pos = i));
      node.index = buildIndex(node.complete);
      node.globFilter = buildGlobConds(node.complete);
      if (node.globFilter) node.globIndex = buildGlobIndex(node.complete);
    }
    for (const c of node.children.values()) this.buildIndexes(c);
  }

  lookupNode(path: string[]): RuleNode | undefined {
    let n: RuleNode | undefined = this.root;
    for (const p of path) {
      n = n.children.get(p);
      if (!n) return undefined;
    }
    return n;
  }
}

// ---------------- helpers over terms ----------------

export function isGround(t: Term): boolean {
  switch (t.type) {
    case 'scalar':
      return true;
    case 'array':
    case 'set':
      return t.items.every(isGround);
    case 'object':
      return t.items.every(([k, v]) => isGround(k) && isGround(v));
    default:
      return false;
  }
}

/** Vars appearing anywhere in a term (not descending into comprehensions' own locals). */
export function collectVars(t: Term, out: Set<string>): void {
  if (t.type === 'var') {
    out.add(t.name);
    return;
  }
  forEachSubterm(t, (s) => collectVars(s, out));
  if (isComprehension(t)) for (const e of t.body) collectExprVars(e, out);
}

export function collectExprVars(e: Expr, out: Set<string>): void {
  switch (e.type) {
    case 'term':
      collectVars(e.term, out);
      break;
    case 'some':
      for (const v of e.vars) out.add(v);
      break;
    case 'somein':
      if (e.key) collectVars(e.key, out);
      collectVars(e.value, out);
      collectVars(e.domain, out);
      break;
    case 'every':
      if (e.key) collectVars(e.key, out);
      collectVars(e.value, out);
      collectVars(e.domain, out);
      for (const x of e.body) collectExprVars(x, out);
      break;
  }
  for (const w of e.with) collectVars(w.value, out);
}

function varsOf(ts: Term[]): Set<string> {
  const s = new Set<string>();
  for (const t of ts) collectVars(t, s);
  return s;
}

const ROOTS = new Set(['data', 'input']);

/** Arity of user functions (by `data.` path), set while a module set is compiled. */
let arityLookup: (name: string) => number | undefined = () => undefined;

/** Name resolution and renaming for one rule. */
class Rewriter {
  constructor(
    private c: CompiledModules,
    private m: Module,
    private rulesHere: Set<string>,
    private imports: Map<string, Term>,
  ) {}

  /** Declared locals in a body (some, :=, some-in, every) — these shadow rule names. */
  private declared(body: Body, out: Set<string>): void {
    for (const e of body) {
      if (e.type === 'some') for (const v of e.vars) out.add(v);
      else if (e.type === 'somein') {
        if (e.key) collectVars(e.key, out);
        collectVars(e.value, out);
      } else if (e.type === 'term' && e.term.type === 'call' && e.term.fn === 'assign') collectVars(e.term.args[0], out);
    }
  }

  body(body: Body, outerLocals: Set<string>, scope: Map<string, string>, bound: Set<string>): Body {
    const locals = new Set(outerLocals);
    this.declared(body, locals);
    // vars declared by `:=` later in the body are distinct vars inside earlier comprehensions
    const declAt = new Map<string, number>();
    body.forEach((e, i) => {
      if (e.type === 'term' && e.term.type === 'call' && e.term.fn === 'assign') {
        const s = new Set<string>();
        collectVars(e.term.args[0], s);
        for (const v of s) if (!declAt.has(v) && !outerLocals.has(v)) declAt.set(v, i);
      }
    });
    const out = body.map((e, i) => {
      let sc = scope;
      for (const [v, at] of declAt) {
        if (at > i && !scope.has(v) && containsComp(e)) {
          if (sc === scope) sc = new Map(scope);
          sc.set(v, this.c.fresh(v));
        }
      }
      return sc === scope ? this.expr(e, locals, scope) : this.exprCompOnly(e, locals, scope, sc);
    });
    return reorder(out, bound);
  }

  /** Rewrite with `inner` scope applying only inside comprehensions. */
  private exprCompOnly(e: Expr, locals: Set<string>, scope: Map<string, string>, inner: Map<string, string>): Expr {
    this.compScope = inner;
    try {
      return this.expr(e, locals, scope);
    } finally {
      this.compScope = undefined;
    }
  }
  private compScope?: Map<string, string>;

  /** Nested body (comprehension, every, with its own declarations that shadow). */
  private nestedBody(body: Body, outerLocals: Set<string>, scope: Map<string, string>, extraFresh: string[] = []): Body {
    const inner = new Map(scope);
    const decl = new Set<string>();
    for (const e of body) {
      if (e.type === 'some') for (const v of e.vars) decl.add(v);
      else if (e.type === 'somein') {
        if (e.key) collectVars(e.key, decl);
        collectVars(e.value, decl);
      } else if (e.type === 'term' && e.term.type === 'call' && e.term.fn === 'assign') collectVars(e.term.args[0], decl);
    }
    for (const v of extraFresh) decl.add(v);
    for (const v of decl) if (v !== '_' && (outerLocals.has(v) || scope.has(v))) inner.set(v, this.c.fresh(v));
    const locals = new Set(outerLocals);
    for (const v of decl) locals.add(v);
    this.scopeCache.set(body, inner);
    const out = body.map((e) => this.expr(e, locals, inner));
    return out;
  }

  private expr(e: Expr, locals: Set<string>, scope: Map<string, string>): Expr {
    const w = e.with.map((x) => ({ target: this.withTarget(x.target, locals, scope), value: this.withValue(x.value, locals, scope), loc: x.loc }));
    switch (e.type) {
      case 'term':
        return { ...e, term: this.term(e.term, locals, scope), with: w };
      case 'some':
        return { ...e, vars: e.vars.map((v) => scope.get(v) ?? v), with: w };
      case 'somein':
        return {
          ...e,
          key: e.key ? this.term(e.key, locals, scope) : undefined,
          value: this.term(e.value, locals, scope),
          domain: this.term(e.domain, locals, scope),
          with: w,
        };
      case 'every': {
        const fresh: string[] = [];
        if (e.key) collectVars(e.key, new Set()), e.key.type === 'var' && fresh.push(e.key.name);
        if (e.value.type === 'var') fresh.push(e.value.name);
        const inner = new Map(scope);
        for (const v of fresh) if (v !== '_') inner.set(v, this.c.fresh(v));
        const l2 = new Set(locals);
        for (const v of fresh) l2.add(v);
        const body = this.nestedBody(e.body, l2, inner);
        const bnd = new Set<string>();
        return {
          ...e,
          key: e.key ? this.term(e.key, l2, inner) : undefined,
          value: this.term(e.value, l2, inner),
          domain: this.term(e.domain, locals, scope),
          body: reorder(body, bnd, true),
          with: w,
        };
      }
    }
  }

  private withTarget(t: Term, locals: Set<string>, scope: Map<string, string>): Term {
    // function mock targets keep their (resolved) name as a call-ish marker
    const name = refName(t);
    if (name !== undefined && !name.startsWith('data.') && !name.startsWith('input') && !ROOTS.has(name)) {
      const r = this.resolveCallName(name, locals);
      return { type: 'scalar', value: 'fn:' + r, loc: t.loc };
    }
    const rt = this.term(t, locals, scope);
    return rt;
  }

  private withValue(t: Term, locals: Set<string>, scope: Map<string, string>): Term {
    const name = refName(t);
    if (name !== undefined && !locals.has(name.split('.')[0]) && !scope.has(name.split('.')[0])) {
      const first = name.split('.')[0];
      if (first !== 'input' && (BUILTINS.has(name) || (this.rulesHere.has(first) && this.isFuncPath(this.resolveCallName(name, locals))) || (name.startsWith('data.') && this.isFuncPath(name)) || (this.imports.has(first) && this.isFuncPath(this.resolveCallName(name, locals))))) {
        return { type: 'scalar', value: 'fn:' + this.resolveCallName(name, locals), loc: t.loc, fnMarker: true } as Term;
      }
    }
    return this.term(t, locals, scope);
  }

  private isFuncPath(p: string): boolean {
    if (!p.startsWith('data.')) return BUILTINS.has(p);
    // functions declared anywhere (modules may not all be added yet)
    for (const m of this.c.modules) {
      for (const r of m.rules) {
        if (r.kind !== 'func') continue;
        const path = ['data', ...m.pkg.slice(1), (r.head.ref[0] as { name: string }).name];
        for (const t of r.head.ref.slice(1)) if (t.type === 'scalar') path.push(String(t.value));
        if (path.join('.') === p) return true;
      }
    }
    return false;
  }

  private resolveCallName(name: string, locals: Set<string>): string {
    const parts = name.split('.');
    const first = parts[0];
    if (first === 'data') return name;
    if (!locals.has(first) && this.imports.has(first)) {
      const imp = this.imports.get(first)!;
      const ip = refName(imp);
      if (ip) return [ip, ...parts.slice(1)].join('.');
    }
    if (!locals.has(first) && this.rulesHere.has(first)) return ['data', ...this.m.pkg.slice(1), ...parts].join('.');
    return name;
  }

  term(t: Term, locals: Set<string>, scope: Map<string, string>): Term {
    switch (t.type) {
      case 'scalar':
        return t;
      case 'var': {
        if (t.name === '_') return { type: 'var', name: this.c.fresh('$_'), loc: t.loc };
        const s = scope.get(t.name);
        if (s) return { type: 'var', name: s, loc: t.loc };
        if (locals.has(t.name) || ROOTS.has(t.name)) return t;
        if (this.imports.has(t.name)) {
          const imp = this.imports.get(t.name)!;
          return imp;
        }
        if (this.rulesHere.has(t.name)) return this.pkgRef(t.name, t);
        return t;
      }
      case 'ref': {
        const head = this.term(t.head, locals, scope);
        const path = t.path.map((p) => this.term(p, locals, scope));
        if (head.type === 'ref') return { type: 'ref', head: head.head, path: [...head.path, ...path], loc: t.loc };
        return { type: 'ref', head, path, loc: t.loc };
      }
      case 'array':
        return { ...t, items: t.items.map((x) => this.term(x, locals, scope)) };
      case 'set':
        return { ...t, items: t.items.map((x) => this.term(x, locals, scope)) };
      case 'object':
        return { ...t, items: t.items.map(([k, v]) => [this.term(k, locals, scope), this.term(v, locals, scope)] as [Term, Term]) };
      case 'template':
        return { ...t, parts: t.parts.map((p) => (typeof p === 'string' ? p : this.term(p, locals, scope))) };
      case 'call': {
        let fn = t.fn;
        if (fn !== 'eq' && fn !== 'assign') {
          const first = fn.split('.')[0];
          if (scope.has(first) || (locals.has(first) && !BUILTINS.has(fn))) {
            // calling a local? leave as is
          }
          fn = this.resolveCallName(fn, locals);
        }
        return { ...t, fn, args: t.args.map((a) => this.term(a, locals, scope)) };
      }
      case 'arraycomp':
      case 'setcomp': {
        if (this.compScope) {
          const cs = this.compScope;
          this.compScope = undefined;
          try {
            return this.term(t, locals, cs);
          } finally {
            this.compScope = cs;
          }
        }
        const inner = new Map(scope);
        const body = this.nestedBody(t.body, locals, inner);
        // body is rewritten with `inner` scope; head must use same scope
        const innerScope = this.lastScope(t.body, locals, scope);
        const head = this.term(t.head, this.lastLocals(t.body, locals), innerScope);
        return { ...t, head, body: reorder(body, new Set(), true) } as Term;
      }
      case 'objcomp': {
        if (this.compScope) {
          const cs = this.compScope;
          this.compScope = undefined;
          try {
            return this.term(t, locals, cs);
          } finally {
            this.compScope = cs;
          }
        }
        const body = this.nestedBody(t.body, locals, new Map(scope));
        const innerScope = this.lastScope(t.body, locals, scope);
        const l2 = this.lastLocals(t.body, locals);
        return { ...t, key: this.term(t.key, l2, innerScope), value: this.term(t.value, l2, innerScope), body: reorder(body, new Set(), true) };
      }
    }
  }

  // recompute the scope used by nestedBody (deterministic fresh names require caching)
  private scopeCache = new WeakMap<Body, Map<string, string>>();
  private lastScope(body: Body, outerLocals: Set<string>, scope: Map<string, string>): Map<string, string> {
    return this.scopeCache.get(body) ?? scope;
  }
  private lastLocals(body: Body, outerLocals: Set<string>): Set<string> {
    const l = new Set(outerLocals);
    this.declared(body, l);
    return l;
  }

  private pkgRef(name: string, t: Term): Term {
    const path: Term[] = [...this.m.pkg.slice(1), name].map((s) => ({ type: 'scalar', value: s, loc: t.loc }) as Term);
    return { type: 'ref', head: { type: 'var', name: 'data', loc: t.loc }, path, loc: t.loc };
  }
}

export function refName(t: Term): string | undefined {
  if (t.type === 'var') return t.name;
  if (t.type !== 'ref' || t.head.type !== 'var') return undefined;
  const parts = [t.head.name];
  for (const p of t.path) {
    if (p.type !== 'scalar' || typeof p.value !== 'string') return undefined;
    parts.push(p.value);
  }
  return parts.join('.');
}

// ---------------- safety reordering ----------------

/** Vars an expression needs bound before it can run, and vars it binds. */
function patternVars(t: Term): Set<string> {
  const s = new Set<string>();
  const rec = (x: Term): void => {
    if (x.type === 'var') {
      if (!ROOTS.has(x.name)) s.add(x.name);
    } else if (x.type === 'array') x.items.forEach(rec);
    else if (x.type === 'object') x.items.forEach(([, v]) => rec(v));
  };
  rec(t);
  return s;
}

function isBareVarIn(t: Term, v: string): boolean {
  return t.type === 'var' && t.name === v;
}

export function exprVarsInfo(e: Expr): { needs: Set<string>; binds: Set<string>; alt?: [Set<string>, Set<string>] } {
  const needs = new Set<string>();
  const binds = new Set<string>();
  let alt: [Set<string>, Set<string>] | undefined;
  const inputTerm = (t: Term): void => {
    switch (t.type) {
      case 'var':
        if (!t.name.startsWith('$_')) needs.add(t.name);
        else binds.add(t.name);
        return;
      case 'ref':
        if (t.head.type === 'var') {
          if (!ROOTS.has(t.head.name)) needs.add(t.head.name);
        } else inputTerm(t.head);
        for (const p of t.path) outputTerm(p);
        return;
      case 'array':
      case 'set':
        for (const x of t.items) inputTerm(x);
        return;
      case 'object':
        for (const [k, v] of t.items) {
          inputTerm(k);
          inputTerm(v);
        }
        return;
      case 'call': {
        const b = BUILTINS.get(t.fn);
        const arity = b ? b.arity : (arityLookup(t.fn) ?? -1);
        t.args.forEach((a, i) => {
          if (arity >= 0 && i >= arity) outputTerm(a);
          else inputTerm(a);
        });
        return;
      }
      case 'template':
        for (const p of t.parts) if (typeof p !== 'string') inputTerm(p);
        return;
      case 'arraycomp':
      case 'setcomp':
      case 'objcomp':
        // closure vars are found by `reorder` (vars shared with other expressions)
        return;
      default:
        return;
    }
  };
  const outputTerm = (t: Term): void => {
    switch (t.type) {
      case 'var':
        binds.add(t.name);
        return;
      case 'array':
      case 'set':
        for (const x of t.items) outputTerm(x);
        return;
      case 'object':
        for (const [k, v] of t.items) {
          inputTerm(k);
          outputTerm(v);
        }
        return;
      case 'ref':
        inputTerm(t);
        return;
      default:
        inputTerm(t);
    }
  };
  switch (e.type) {
    case 'term': {
      const t = e.term;
      if (t.type === 'call' && (t.fn === 'eq' || t.fn === 'assign')) {
        const [a, b] = t.args;
        const before = new Set(binds);
        outputTerm(a);
        const pa = new Set([...binds].filter((v) => !before.has(v)));
        outputTerm(b);
        const pb = new Set([...binds].filter((v) => !before.has(v) && !pa.has(v)));
        for (const v of pa) if (isBareVarIn(b, v)) pb.add(v);
        if (!((a.type === 'array' && b.type === 'array') || (a.type === 'object' && b.type === 'object'))) alt = [patternVars(a), patternVars(b)];
      } else inputTerm(t);
      break;
    }
    case 'some':
      break;
    case 'somein':
      inputTerm(e.domain);
      if (e.key) outputTerm(e.key);
      outputTerm(e.value);
      break;
    case 'every': {
      inputTerm(e.domain);
      const inner = new Set<string>();
      for (const x of e.body) collectExprVars(x, inner);
      // vars of the body that are not local to it are needed; approximated by analysis in reorder
      (e as { _free?: Set<string> })._free = inner;
      break;
    }
  }
  for (const w of e.with) inputTerm(w.value);
  if (e.type === 'term' && !(e.term.type === 'call' && (e.term.fn === 'eq' || e.term.fn === 'assign'))) {
    // a var the expression itself binds (through a reference) is not a precondition
    for (const v of binds) needs.delete(v);
  }
  if (e.negated) {
    // everything in a negated expression must be bound, except wildcards
    for (const b of binds) if (!b.startsWith('$_')) needs.add(b);
    binds.clear();
    alt = undefined;
  }
  return { needs, binds, alt };
}


/**
 * Greedy reordering: place each expression once the vars it reads are bound (by
 * earlier expressions, the head, or the enclosing scope). Vars used only inside a
 * comprehension or negation are local to it.
 */
export function reorder(body: Body, bound: Set<string>, _nested = false): Body {
  if (body.length <= 1) return body;
  // count in how many expressions each var occurs
  const occ = new Map<string, number>();
  const evars: Set<string>[] = body.map((e) => {
    const s = new Set<string>();
    collectExprVars(e, s);
    for (const v of s) occ.set(v, (occ.get(v) ?? 0) + 1);
    return s;
  });
  const infos = body.map((e, i) => {
    const inf = exprVarsInfo(e);
    // comprehension / every closure vars: vars in the expr shared with other exprs
    if (e.type === 'every' || containsComp(e)) {
      for (const v of evars[i]) if ((occ.get(v) ?? 0) > 1 && !inf.binds.has(v)) inf.needs.add(v);
    }
    if (e.negated) {
      for (const v of [...inf.needs]) if ((occ.get(v) ?? 0) <= 1 && !bound.has(v)) inf.needs.delete(v);
    }
    return inf;
  });
  const placed: boolean[] = body.map(() => false);
  const out: Body = [];
  const b = new Set(bound);
  while (out.length < body.length) {
    let progressed = false;
    for (let i = 0; i < body.length; i++) {
      if (placed[i]) continue;
      const inf = infos[i];
      let ok = true;
      for (const v of inf.needs) if (!b.has(v) && (occ.get(v) ?? 0) > 0) {
        // a var needed but never bound anywhere else cannot block forever
        if (isBindableElsewhere(v, i, infos, placed)) {
          ok = false;
          break;
        }
      }
      if (ok && inf.alt) {
        const bindable = (v: string): boolean => b.has(v);
        const [x, y] = inf.alt;
        const allX = [...x].every(bindable);
        const allY = [...y].every(bindable);
        if (!allX && !allY) ok = false;
      }
      if (!ok) continue;
      placed[i] = true;
      out.push(body[i]);
      for (const v of inf.binds) b.add(v);
      progressed = true;
      break;
    }
    if (!progressed) {
      for (let i = 0; i < body.length; i++) if (!placed[i]) {
        placed[i] = true;
        out.push(body[i]);
        for (const v of infos[i].binds) b.add(v);
        break;
      }
    }
  }
  return out;
}

function isBindableElsewhere(v: string, self: number, infos: { binds: Set<string> }[], placed: boolean[]): boolean {
  for (let j = 0; j < infos.length; j++) if (j !== self && !placed[j] && infos[j].binds.has(v)) return true;
  return false;
}

function containsComp(e: Expr): boolean {
  let found = false;
  const visit = (t: Term): void => {
    if (found) return;
    if (isComprehension(t)) found = true;
    else forEachSubterm(t, visit);
  };
  if (e.type === 'term') visit(e.term);
  else if (e.type === 'somein') visit(e.domain);
  for (const w of e.with) visit(w.value);
  return found;
}

// ---------------- indexing ----------------

function buildIndex(rules: CRule[]): RuleIndex | undefined {
  // find `ref == const` / `ref = const` conditions per rule
  const counts = new Map<string, { ref: Term; n: number }>();
  for (const r of rules) {
    r.eqConds = new Map();
    const refs = new Map<string, Term>();
    for (const e of r.body) {
      if (e.type !== 'term' || e.negated || e.with.length) continue;
      const t = e.term;
      if (t.type !== 'call' || !(t.fn === 'equal' || t.fn === 'eq') || t.args.length !== 2) continue;
      let [a, b] = t.args;
      if (a.type === 'scalar' && b.type === 'ref') [a, b] = [b, a];
      if (a.type !== 'ref' || b.type !== 'scalar') continue;
      const name = refName(a);
      if (!name || !name.startsWith('input.')) continue;
      if (r.eqConds.has(name)) continue;
      r.eqConds.set(name, b.value);
      refs.set(name, a);
    }
    for (const [k, ref] of refs) {
      const c = counts.get(k);
      if (c) c.n++;
      else counts.set(k, { ref, n: 1 });
    }
  }
  let best: { key: string; ref: Term; n: number } | undefined;
  for (const [k, c] of counts) if (!best || c.n > best.n) best = { key: k, ref: c.ref, n: c.n };
  if (!best || best.n < 2) return undefined;
  const buckets = new Map<string, CRule[]>();
  const rest: CRule[] = [];
  for (const r of rules) {
    const v = r.eqConds?.get(best.key);
    if (v === undefined) rest.push(r);
    else {
      const k = keyOf(v);
      let l = buckets.get(k);
      if (!l) buckets.set(k, (l = []));
      l.push(r);
    }
  }
  return { ref: best.ref, refKey: best.key, buckets, rest };
}

/** Collect `glob.match("pattern", ["delims"] | null, input.ref)` conditions. */
function buildGlobConds(rules: CRule[]): boolean {
  let any = false;
  for (const r of rules) {
    for (const e of r.body) {
      if (e.type !== 'term' || e.negated || e.with.length) continue;
      const t = e.term;
      if (t.type !== 'call' || t.fn !== 'glob.match' || t.args.length !== 3) continue;
      const [pat, dl, ref] = t.args;
      if (pat.type !== 'scalar' || typeof pat.value !== 'string' || ref.type !== 'ref') continue;
      let delims: string[] | null;
      if (dl.type === 'scalar' && dl.value === null) delims = null;
      else if (dl.type === 'array' && dl.items.every((x) => x.type === 'scalar' && typeof x.value === 'string')) {
        delims = dl.items.map((x) => (x as { value: string }).value);
        if (!delims.length) delims = ['.'];
      } else continue;
      const name = refName(ref);
      if (!name || !name.startsWith('input.')) continue;
      let re: RegExp;
      try {
        re = globToRegExp(pat.value, delims);
      } catch {
        continue;
      }
      (r.globConds ??= []).push({ ref, refKey: name, re, prefix: literalPrefix(pat.value) });
      any = true;
    }
  }
  return any;
}

/** Characters of a glob pattern before its first special character. */
function literalPrefix(p: string): string {
  let i = 0;
  while (i < p.length && !'*?[{\\'.includes(p[i])) i++;
  return p.slice(0, i);
}

function buildGlobIndex(rules: CRule[]): GlobIndex | undefined {
  const counts = new Map<string, { ref: Term; n: number }>();
  for (const r of rules) {
    const seen = new Set<string>();
    for (const g of r.globConds ?? []) {
      if (seen.has(g.refKey)) continue;
      seen.add(g.refKey);
      const c = counts.get(g.refKey);
      if (c) c.n++;
      else counts.set(g.refKey, { ref: g.ref, n: 1 });
    }
  }
  let best: { key: string; ref: Term; n: number } | undefined;
  for (const [k, c] of counts) if (!best || c.n > best.n) best = { key: k, ref: c.ref, n: c.n };
  if (!best || best.n < 4) return undefined;
  const byPrefix = new Map<string, CRule[]>();
  const rest: CRule[] = [];
  for (const r of rules) {
    const g = r.globConds?.find((x) => x.refKey === best!.key);
    if (!g) {
      rest.push(r);
      continue;
    }
    let l = byPrefix.get(g.prefix);
    if (!l) byPrefix.set(g.prefix, (l = []));
    l.push(r);
  }
  const lengths = [...new Set([...byPrefix.keys()].map((k) => k.length))].sort((a, b) => a - b);
  return { ref: best.ref, refKey: best.key, byPrefix, lengths, rest };
}

// ---------------- entry ----------------


/** Compile an ad-hoc query against the modules (names resolve like in an empty package). */
export function compileQueryBody(c: CompiledModules, body: Body, file = 'query'): Body {
  const m: Module = { file, pkg: ['data'], pkgLoc: { file, row: 1, col: 1 }, imports: [], rules: [], regoV1: true };
  const rw = new Rewriter(c, m, new Set(), new Map());
  const locals = new Set<string>();
  for (const e of body) collectExprVars(e, locals);
  return rw.body(body, locals, new Map(), new Set());
}
