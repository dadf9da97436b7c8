/**
 * Public API of the Rego engine.
 *
 *   const policy = compileModules({ 'authz.rego': src });
 *   const rs = policy.eval('data.authz.allow', { input });
 *   // rs: [{ expressions: [{ value, text, location }], bindings: {} }]
 */
import type { Body, Term } from './ast.js';
import { forEachSubterm, isComprehension } from './ast.js';
import { compileQueryBody, CompiledModules, type CompileOptions } from './compiler.js';
import { Evaluator, Frame, type EvalOptions } from './eval.js';
import { parseModule, parseQuery } from './parser.js';
import { fromJSON, toJSON, type Value } from './value.js';
import type { Module } from './ast.js';

export { RegoEvalError, BuiltinError } from './errors.js';
export { RegoCompileError, checkCompiled, type CompileIssue } from './checks.js';
import { checkCompiled, RegoCompileError } from './checks.js';
export { RegoParseError } from './lexer.js';
export { parseModule, parseQuery, parseTerm } from './parser.js';
export * from './value.js';
export { BUILTINS } from './builtins/index.js';

export interface RegoEvalOptions {
  /** Input document: plain JSON or Rego values. */
  input?: unknown;
  /** Base data document. */
  data?: unknown;
  /** Raise built-in errors instead of treating them as undefined. */
  strictBuiltinErrors?: boolean;
  /** Fixed clock (ns since epoch) for time.now_ns. */
  nowNs?: bigint;
  print?: (msg: string) => void;
  /** Document returned by opa.runtime() (default {}). */
  runtime?: unknown;
  /** Input/data are already Rego values (skip conversion). */
  raw?: boolean;
}

export interface ExpressionResult {
  value: unknown;
  text: string;
  location: { row: number; col: number };
}

export interface QueryResult {
  expressions: ExpressionResult[];
  bindings: Record<string, unknown>;
}

/** One solution: bindings as Rego values plus the value of each top-level expression. */
export interface RawSolution {
  bindings: Map<string, Value>;
  expressions: Value[];
}

export class CompiledPolicy {
  private queryCache = new Map<string, Body>();
  constructor(readonly compiled: CompiledModules) {}

  get modules(): Module[] {
    return this.compiled.modules;
  }

  /** Parsed, compiled query body (cached). */
  prepareQuery(query: string | string[]): Body {
    return this.prepare(query);
  }

  private prepare(query: string | string[]): Body {
    const q = Array.isArray(query) ? 'data.' + query.join('.') : query;
    let body = this.queryCache.get(q);
    if (!body) {
      body = compileQueryBody(this.compiled, parseQuery(q, 'query'));
      if (this.queryCache.size > 500) this.queryCache.clear();
      this.queryCache.set(q, body);
    }
    return body;
  }

  /** Evaluate and return raw solutions (Rego values). */
  evalRaw(query: string | string[], opts: RegoEvalOptions = {}): RawSolution[] {
    const body = this.prepare(query);
    const ev = this.evaluator(opts);
    const f = new Frame();
    const out: RawSolution[] = [];
    const userVars = new Set<string>();
    for (const e of body) collectUserVars(e, userVars);
    ev.evalBody(body, 0, f, () => {
      const bindings = new Map<string, Value>();
      for (const v of userVars) {
        const x = f.vals.get(v);
        if (x !== undefined) bindings.set(v, x);
      }
      const expressions = body.map((e) => exprValue(ev, e, f));
      out.push({ bindings, expressions });
      return false;
    });
    if (ev.builtinErrors.length) throw ev.builtinErrors[0];
    return out;
  }

  /** `opa eval`-shaped result set (plain JSON values). */
  eval(query: string | string[], opts: RegoEvalOptions = {}): QueryResult[] {
    const body = this.prepare(query);
    return this.evalRaw(query, opts).map((s) => ({
      expressions: body.map((e, i) => ({ value: toJSON(s.expressions[i]), text: e.loc.text ?? '', location: { row: e.loc.row, col: e.loc.col } })),
      bindings: Object.fromEntries([...s.bindings].map(([k, v]) => [k, toJSON(v)])),
    }));
  }

  /** Fast path: value of a document (rule or data path) or undefined. */
  evalPath(path: string | string[], opts: RegoEvalOptions = {}): Value | undefined {
    const parts = Array.isArray(path) ? path : path.replace(/^data\./, '').split('.').filter(Boolean);
    const ev = this.evaluator(opts);
    let out: Value | undefined;
    const t: Term = {
      type: 'ref',
      head: { type: 'var', name: 'data', loc: NOLOC },
      path: parts.map((p) => ({ type: 'scalar', value: p, loc: NOLOC }) as Term),
      loc: NOLOC,
    };
    ev.evalTerm(t, new Frame(), (v) => {
      out = v;
      return true;
    });
    if (ev.builtinErrors.length) throw ev.builtinErrors[0];
    return out;
  }

  private evaluator(opts: RegoEvalOptions): Evaluator {
    const eo: EvalOptions = {
      input: opts.input === undefined ? undefined : opts.raw ? (opts.input as Value) : fromJSON(opts.input),
      data: opts.data === undefined ? undefined : opts.raw ? (opts.data as Value) : fromJSON(opts.data),
      strictBuiltinErrors: opts.strictBuiltinErrors,
      nowNs: opts.nowNs,
      print: opts.print,
      runtime: opts.runtime === undefined ? undefined : opts.raw ? (opts.runtime as Value) : fromJSON(opts.runtime),
    };
    return new Evaluator(this.compiled, eo);
  }
}

const NOLOC = { file: '', row: 0, col: 0 };

function collectUserVars(e: Body[number], out: Set<string>): void {
  const s = new Set<string>();
  // only top-level vars of the query (not comprehension locals)
  const visit = (t: Term): void => {
    if (t.type === 'var') s.add(t.name);
    else if (!isComprehension(t)) forEachSubterm(t, visit);
  };
  if (e.type === 'term') visit(e.term);
  else if (e.type === 'some') e.vars.forEach((v) => s.add(v));
  else if (e.type === 'somein') {
    if (e.key) visit(e.key);
    visit(e.value);
    visit(e.domain);
  } else if (e.type === 'every') visit(e.domain);
  if (e.negated) return;
  for (const v of s) if (!v.includes('$') && v !== 'data' && v !== 'input' && !v.startsWith('__')) out.add(v);
}

function exprValue(ev: Evaluator, e: Body[number], f: Frame): Value {
  if (e.type !== 'term' || e.negated || e.with.length) return true;
  const t = e.term;
  if (t.type === 'call') {
    if (t.fn === 'eq' || t.fn === 'assign') return true;
  }
  let out: Value = true;
  try {
    ev.evalTerm(t, f, (v) => {
      out = v;
      return true;
    });
  } catch {
    /* value already established by the successful evaluation */
  }
  return out;
}

/** Parse and compile modules: `{ 'file.rego': source }`. */
export function compileModules(sources: Record<string, string>, opts: CompileOptions & { strict?: boolean; skipChecks?: boolean } = {}): CompiledPolicy {
  const mods: Module[] = [];
  for (const [file, src] of Object.entries(sources)) mods.push(...parseModule(src, file));
  const compiled = new CompiledModules(mods, opts);
  if (!opts.skipChecks) {
    const issues = checkCompiled(compiled, { strict: opts.strict });
    if (issues.length) throw new RegoCompileError(issues);
  }
  return new CompiledPolicy(compiled);
}

export type { CompileOptions };

export { CompiledModules };
