/**
 * Compile-time checks run after the rule tree is built: undefined functions and wrong
 * arity (rego_type_error), unsafe variables (rego_unsafe_var_error), recursion
 * (rego_recursion_error), and, in strict mode, OPA's strict-mode errors
 * (rego_compile_error: unused/duplicate imports, unused assignments, deprecated built-ins).
 */
import type { Body, Expr, Loc, Module, Term } from './ast.js';
import { forEachSubterm, isComprehension } from './ast.js';
import { BUILTINS } from './builtins/index.js';
import { collectExprVars, collectVars, exprVarsInfo, refName, type CompiledModules, type CRule, type RuleNode } from './compiler.js';
import { ZtmError } from '../errors.js';

export interface CompileIssue {
  code: 'rego_type_error' | 'rego_unsafe_var_error' | 'rego_recursion_error' | 'rego_compile_error';
  message: string;
  loc: Loc;
}

export class RegoCompileError extends ZtmError {
  constructor(readonly issues: CompileIssue[]) {
    const first = issues[0];
    super(
      'ZTM_REGO_COMPILE',
      issues.map((i) => `${i.loc.file}:${i.loc.row}: ${i.code}: ${i.message}`).join('\n'),
      { file: first.loc.file, line: first.loc.row, col: first.loc.col },
      issues,
    );
  }
}

const DEPRECATED = new Set(['re_match', 'any', 'all', 'set_diff', 'net.cidr_overlap', 'cast_array', 'cast_set', 'cast_string', 'cast_boolean', 'cast_null', 'cast_object']);

function eachRule(node: RuleNode, fn: (r: CRule) => void): void {
  for (const r of [...node.complete, ...node.defaults, ...node.sets, ...node.objects, ...node.funcs]) fn(r);
  for (const c of node.children.values()) eachRule(c, fn);
}

/** Visit every term (including nested bodies). */
function visitTerms(body: Body, fn: (t: Term) => void): void {
  const vt = (t: Term): void => {
    fn(t);
    forEachSubterm(t, vt);
    if (isComprehension(t)) visitTerms(t.body, fn);
  };
  for (const e of body) {
    if (e.type === 'term') vt(e.term);
    else if (e.type === 'somein') {
      if (e.key) vt(e.key);
      vt(e.value);
      vt(e.domain);
    } else if (e.type === 'every') {
      vt(e.domain);
      visitTerms(e.body, fn);
    }
    for (const w of e.with) {
      vt(w.value);
    }
  }
}

function ruleTerms(r: CRule): Body {
  // treat head terms as a pseudo-body so they are visited too
  const extra: Expr[] = [];
  const loc = r.rule.loc;
  const push = (t: Term | undefined) => t && extra.push({ type: 'term', term: t, negated: false, with: [], loc });
  push(r.value);
  push(r.key);
  r.suffix.forEach(push);
  r.elses.forEach((e) => push(e.value));
  return [...r.body, ...r.elses.flatMap((e) => e.body), ...extra];
}

export function checkCompiled(c: CompiledModules, opts: { strict?: boolean } = {}): CompileIssue[] {
  const issues: CompileIssue[] = [];
  const seen = new Set<string>();
  const add = (i: CompileIssue): void => {
    const k = `${i.loc.file}:${i.loc.row}:${i.code}:${i.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      issues.push(i);
    }
  };

  // ---- undefined functions and arity ----
  const checkCalls = (body: Body): void =>
    visitTerms(body, (t) => {
      if (t.type !== 'call' || t.fn === 'eq' || t.fn === 'assign') return;
      let arity: number | undefined;
      if (t.fn.startsWith('data.')) {
        arity = c.funcArity.get(t.fn);
        if (arity === undefined) {
          add({ code: 'rego_type_error', message: `undefined function ${t.fn}`, loc: t.loc });
          return;
        }
      } else {
        const b = BUILTINS.get(t.fn);
        if (!b) {
          add({ code: 'rego_type_error', message: `undefined function ${t.fn}`, loc: t.loc });
          return;
        }
        arity = b.arity;
        if (opts.strict && DEPRECATED.has(t.fn)) add({ code: 'rego_type_error', message: `deprecated built-in function calls in expression: ${t.fn}`, loc: t.loc });
      }
      if (arity >= 0 && (t.args.length < arity || t.args.length > arity + 1)) {
        add({ code: 'rego_type_error', message: `${t.fn}: ${t.args.length < arity ? 'too few' : 'too many'} arguments (want ${arity}, got ${t.args.length})`, loc: t.loc });
      }
    });

  eachRule(c.root, (r) => {
    checkCalls(ruleTerms(r));
    checkUnsafe(r, add);
  });

  // ---- recursion ----
  const deps = new Map<RuleNode, Set<RuleNode>>();
  const nodeOf = new Map<CRule, RuleNode>();
  const index = (n: RuleNode): void => {
    for (const r of [...n.complete, ...n.defaults, ...n.sets, ...n.objects, ...n.funcs]) nodeOf.set(r, n);
    for (const ch of n.children.values()) index(ch);
  };
  index(c.root);
  const leavesUnder = (n: RuleNode, out: Set<RuleNode>): void => {
    if (n.complete.length || n.defaults.length || n.sets.length || n.objects.length || n.funcs.length) out.add(n);
    for (const ch of n.children.values()) leavesUnder(ch, out);
  };
  for (const [r, n] of nodeOf) {
    let d = deps.get(n);
    if (!d) deps.set(n, (d = new Set()));
    const dd = d;
    visitTerms(ruleTerms(r), (t) => {
      if (t.type === 'ref' && t.head.type === 'var' && t.head.name === 'data') {
        let cur = c.root;
        let whole = true;
        for (const p of t.path) {
          if (p.type !== 'scalar' || typeof p.value !== 'string') break;
          const ch = cur.children.get(p.value);
          if (!ch) {
            // a constant key outside the rule tree: only this node's multi-key rules can produce it
            whole = false;
            break;
          }
          cur = ch;
          if (cur.complete.length || cur.defaults.length || cur.sets.length || cur.funcs.length) break;
        }
        if (!whole) {
          if (cur.objects.length) dd.add(cur);
        } else if (cur !== c.root || t.path.length === 0) leavesUnder(cur, dd);
      } else if (t.type === 'call' && t.fn.startsWith('data.')) {
        const fnode = c.funcPaths.get(t.fn);
        if (fnode) dd.add(fnode);
      }
    });
  }
  const state = new Map<RuleNode, 1 | 2>();
  const stack: RuleNode[] = [];
  const dfs = (n: RuleNode): void => {
    state.set(n, 1);
    stack.push(n);
    for (const m of deps.get(n) ?? []) {
      const s = state.get(m);
      if (s === 1) {
        const cyc = stack.slice(stack.indexOf(m)).map((x) => 'data.' + x.path.join('.'));
        const r = [...m.complete, ...m.defaults, ...m.sets, ...m.objects, ...m.funcs][0];
        add({ code: 'rego_recursion_error', message: `rule data.${m.path.join('.')} is recursive: ${[...cyc, cyc[0]].join(' -> ')}`, loc: r?.rule.loc ?? { file: '', row: 0, col: 0 } });
      } else if (s === undefined) dfs(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of deps.keys()) if (!state.has(n)) dfs(n);

  // ---- `x := ...` twice in one body ----
  for (const m of c.modules) for (const r of m.rules) for (const b of [r.body, ...r.elses.map((e) => e.body)]) checkReassign(b, add);

  // ---- strict mode ----
  if (opts.strict) for (const m of c.modules) strictModule(m, add);
  return issues;
}

/** A var may be declared with `:=` once per body (nested bodies are separate scopes). */
function checkReassign(body: Body, add: (i: CompileIssue) => void): void {
  const seen = new Set<string>();
  for (const e of body) {
    if (e.type === 'term' && e.term.type === 'call' && e.term.fn === 'assign') {
      const vs = new Set<string>();
      collectVars(e.term.args[0], vs);
      for (const v of vs) {
        if (v === '_') continue;
        if (seen.has(v)) add({ code: 'rego_compile_error', message: `var ${v} assigned above`, loc: e.loc });
        seen.add(v);
      }
    }
    const nested = (t: Term): void => {
      if (t.type === 'arraycomp' || t.type === 'setcomp' || t.type === 'objcomp') checkReassign(t.body, add);
    };
    if (e.type === 'term') visitTerms([e], nested);
    if (e.type === 'every') checkReassign(e.body, add);
  }
}

/** Vars read somewhere in a rule but bound nowhere (head, args or body). */
function checkUnsafe(r: CRule, add: (i: CompileIssue) => void): void {
  const bound = new Set<string>();
  if (r.args) for (const a of r.args) collectVars(a, bound);
  const needs = new Map<string, Loc>();
  const bodies = [r.body, ...r.elses.map((e) => e.body)];
  for (const body of bodies) {
    for (const e of body) {
      const inf = exprVarsInfo(e);
      for (const v of inf.binds) bound.add(v);
      if (e.type === 'some') e.vars.forEach((v) => bound.add(v));
      if (inf.alt) {
        for (const v of inf.alt[0]) bound.add(v);
        for (const v of inf.alt[1]) bound.add(v);
      }
      for (const v of inf.needs) if (!needs.has(v)) needs.set(v, e.loc);
    }
  }
  const head = new Set<string>();
  for (const t of [r.value, r.key, ...r.suffix, ...r.elses.map((e) => e.value)]) if (t) shallowVars(t, head);
  for (const v of head) if (!needs.has(v)) needs.set(v, r.rule.head.loc);
  for (const [v, loc] of needs) {
    if (bound.has(v) || v.startsWith('$') || v === 'data' || v === 'input') continue;
    add({ code: 'rego_unsafe_var_error', message: `var ${v} is unsafe`, loc });
  }
}

/** Vars of a term outside comprehensions (their bodies bind their own vars). */
/** Vars of a term, not looking into comprehensions. */
function shallowVars(t: Term, out: Set<string>): void {
  if (t.type === 'var') out.add(t.name);
  else if (!isComprehension(t)) forEachSubterm(t, (s) => shallowVars(s, out));
}

function strictModule(m: Module, add: (i: CompileIssue) => void): void {
  const used = new Set<string>();
  const visitSrc = (b: Body): void => {
    const s = new Set<string>();
    for (const e of b) collectExprVars(e, s);
    for (const v of s) used.add(v);
  };
  for (const r of m.rules) {
    visitSrc(r.body);
    r.elses.forEach((e) => visitSrc(e.body));
    for (const t of [r.head.value, r.head.key, ...r.head.ref, ...(r.head.args ?? []), ...r.elses.map((e) => e.value)]) if (t) collectVars(t, used);
    // unused assignments: `x := ...` never read again in the same rule
    const reads = new Map<string, number>();
    const all: Body = [...r.body, ...r.elses.flatMap((e) => e.body)];
    const count = (t: Term | undefined) => {
      if (!t) return;
      const s = new Set<string>();
      collectVars(t, s);
      for (const v of s) reads.set(v, (reads.get(v) ?? 0) + 1);
    };
    for (const e of all) {
      const s = new Set<string>();
      collectExprVars(e, s);
      for (const v of s) reads.set(v, (reads.get(v) ?? 0) + 1);
    }
    count(r.head.value);
    count(r.head.key);
    r.head.ref.forEach(count);
    r.elses.forEach((e) => count(e.value));
    for (const e of all) {
      if (e.type === 'term' && e.term.type === 'call' && e.term.fn === 'assign' && e.term.args[0].type === 'var') {
        const v = e.term.args[0].name;
        if (v !== '_' && (reads.get(v) ?? 0) <= 1) add({ code: 'rego_compile_error', message: `assigned var ${v} unused`, loc: e.loc });
      }
    }
  }
  const names = new Map<string, Loc>();
  for (const imp of m.imports) {
    const path = refName(imp.path) ?? '';
    const alias = imp.alias ?? path.split('.').pop()!;
    if (names.has(alias)) add({ code: 'rego_compile_error', message: `import must not shadow import ${alias}`, loc: imp.loc });
    names.set(alias, imp.loc);
    if (!used.has(alias)) add({ code: 'rego_compile_error', message: `import ${path}${imp.alias ? ' as ' + imp.alias : ''} unused`, loc: imp.loc });
  }
}
