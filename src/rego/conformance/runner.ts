/**
 * OPA conformance runner: loads OPA-format case files (JSON or YAML) and judges each
 * case the way OPA's `v1/topdown/exported_test.go` does: want_result is a set of
 * binding sets (sets in results become sorted arrays; `sort_bindings` sorts array
 * bindings), want_error_code must equal the evaluation error's code, want_error is a
 * substring of the error text, strict_error turns on strict built-in errors.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CompiledModules } from '../compiler.js';
import { compileQueryBody } from '../compiler.js';
import { Evaluator, Frame } from '../eval.js';
import { RegoEvalError } from '../errors.js';
import { parseModule, parseQuery, parseTerm } from '../parser.js';
import { compare, equal, fromJSON, parseJSONExact, RObject, RSet, toJSONText, type Value } from '../value.js';
import type { Body, Module, Term } from '../ast.js';
import { forEachSubterm, isComprehension } from '../ast.js';

export interface Case {
  note: string;
  query: string;
  modules?: string[];
  data?: Value;
  input?: Value;
  input_term?: string;
  want_result?: Value[];
  want_error_code?: string;
  want_error?: string;
  sort_bindings?: boolean;
  strict_error?: boolean;
  file: string;
  folder: string;
}

export interface CaseOutcome {
  c: Case;
  pass: boolean;
  reason?: string;
}

function listFiles(p: string): string[] {
  const st = statSync(p);
  if (st.isFile()) return [p];
  const out: string[] = [];
  for (const e of readdirSync(p).sort()) out.push(...listFiles(join(p, e)));
  return out.filter((f) => /\.(json|ya?ml)$/.test(f));
}

export function loadCases(dirs: string[]): Case[] {
  const cases: Case[] = [];
  for (const d of dirs) {
    for (const file of listFiles(d)) {
      const text = readFileSync(file, 'utf8');
      let doc: Value;
      if (file.endsWith('.json')) doc = parseJSONExact(text);
      else doc = fromJSON(parseYaml(text, { intAsBigInt: true }));
      const list = doc instanceof RObject ? doc.getStr('cases') : undefined;
      if (!Array.isArray(list)) continue;
      const rel = relative(d, dirname(file));
      const folder = rel === '' ? basename(d) : rel.split(/[\\/]/)[0];
      for (const c of list) {
        if (!(c instanceof RObject)) continue;
        const g = (k: string) => c.getStr(k);
        const mods = g('modules');
        cases.push({
          note: String(g('note') ?? ''),
          query: String(g('query') ?? ''),
          modules: Array.isArray(mods) ? mods.map(String) : undefined,
          data: g('data'),
          input: g('input'),
          input_term: g('input_term') as string | undefined,
          want_result: g('want_result') as Value[] | undefined,
          want_error_code: g('want_error_code') as string | undefined,
          want_error: g('want_error') as string | undefined,
          sort_bindings: g('sort_bindings') === true,
          strict_error: g('strict_error') === true,
          file,
          folder,
        });
      }
    }
  }
  return cases;
}

/** Convert a result value the way ast.JSON does: sets → sorted arrays, non-string keys → JSON text. */
function jsonish(v: Value): Value {
  if (Array.isArray(v)) return v.map(jsonish);
  if (v instanceof RSet) return v.sorted().map(jsonish);
  if (v instanceof RObject) {
    const o = new RObject();
    for (const [k, x] of v.entries()) o.set(typeof k === 'string' ? k : toJSONText(k), jsonish(x));
    return o;
  }
  return v;
}

export function runCase(c: Case): CaseOutcome {
  let rs: Map<string, Value>[] = [];
  let err: unknown;
  try {
    const mods: Module[] = [];
    (c.modules ?? []).forEach((src, i) => mods.push(...parseModule(src, `test-${i}.rego`)));
    const compiled = new CompiledModules(mods);
    const body: Body = compileQueryBody(compiled, parseQuery(c.query, 'query'));
    let input: Value | undefined;
    if (c.input_term !== undefined) {
      const t = parseTerm(c.input_term, 'input');
      input = groundTerm(t);
    } else if (c.input !== undefined) input = c.input;
    const ev = new Evaluator(compiled, { input, data: c.data ?? new RObject(), strictBuiltinErrors: c.strict_error });
    const vars = new Set<string>();
    const orig = parseQuery(c.query, 'query');
    for (const e of orig) collectQueryVars(e, vars);
    const f = new Frame();
    ev.evalBody(body, 0, f, () => {
      const b = new Map<string, Value>();
      for (const v of vars) {
        const x = f.vals.get(v);
        if (x !== undefined) b.set(v, x);
      }
      rs.push(b);
      return false;
    });
    if (ev.builtinErrors.length) err = ev.builtinErrors[0];
  } catch (e) {
    err = e;
    rs = [];
  }
  const msg = err === undefined ? undefined : err instanceof Error ? err.message : String(err);
  if (c.want_error !== undefined) {
    if (err === undefined) return { c, pass: false, reason: `expected error containing ${JSON.stringify(c.want_error)} but got success` };
    if (!msg!.includes(c.want_error)) return { c, pass: false, reason: `expected error text ${JSON.stringify(c.want_error)} but got ${JSON.stringify(msg)}` };
  }
  if (c.want_error_code !== undefined) {
    if (!(err instanceof RegoEvalError)) return { c, pass: false, reason: `expected error code ${c.want_error_code} but got ${err === undefined ? 'success' : JSON.stringify(msg)}` };
    if (err.regoCode !== c.want_error_code) return { c, pass: false, reason: `expected error code ${c.want_error_code} but got ${err.regoCode}: ${msg}` };
  }
  if (err !== undefined && c.want_error === undefined && c.want_error_code === undefined) {
    return { c, pass: false, reason: `unexpected error: ${msg}` };
  }
  if (c.want_result !== undefined) {
    const exp = new RSet();
    for (const b of c.want_result) exp.add(b);
    const got = new RSet();
    for (const b of rs) {
      const o = new RObject();
      for (const [k, v] of b) {
        let j = jsonish(v);
        if (c.sort_bindings && Array.isArray(j)) j = [...j].sort(compare);
        o.set(k, j);
      }
      got.add(o);
    }
    if (!equal(exp, got) && !setsEqualNumeric(exp, got)) {
      return { c, pass: false, reason: `unexpected result\n  exp: ${toJSONText(exp)}\n  got: ${toJSONText(got)}` };
    }
  }
  if (c.want_result === undefined && c.want_error === undefined && c.want_error_code === undefined) return { c, pass: false, reason: 'case has no expectation' };
  return { c, pass: true };
}

/** Sets compare by canonical key; numbers like 1.0 vs 1 are already normalised, so this is a safety net. */
function setsEqualNumeric(a: RSet, b: RSet): boolean {
  if (a.size !== b.size) return false;
  const bs = b.sorted();
  const as = a.sorted();
  return as.every((x, i) => compare(x, bs[i]) === 0);
}

function groundTerm(t: Term): Value {
  switch (t.type) {
    case 'scalar':
      return t.value;
    case 'array':
      return t.items.map(groundTerm);
    case 'set':
      return RSet.from(t.items.map(groundTerm));
    case 'object':
      return RObject.from(t.items.map(([a, b]) => [groundTerm(a), groundTerm(b)] as [Value, Value]));
    case 'call':
      if (t.fn === 'set' && t.args.length === 0) return new RSet();
      throw new Error('input_term must be ground');
    default:
      throw new Error('input_term must be ground');
  }
}

function collectQueryVars(e: Body[number], out: Set<string>): void {
  // Not into comprehensions (their locals are not query vars), nor into templates.
  const visit = (t: Term): void => {
    if (t.type === 'var') {
      if (t.name !== '_' && t.name !== 'data' && t.name !== 'input' && !t.name.startsWith('__')) out.add(t.name);
    } else if (!isComprehension(t) && t.type !== 'template') forEachSubterm(t, visit);
  };
  if (e.negated) return;
  if (e.type === 'term') visit(e.term);
  else if (e.type === 'some') e.vars.forEach((v) => out.add(v));
  else if (e.type === 'somein') {
    if (e.key) visit(e.key);
    visit(e.value);
  }
}

export interface RunSummary {
  outcomes: CaseOutcome[];
  passed: number;
  failed: number;
}

export function runAll(dirs: string[], filter?: (c: Case) => boolean): RunSummary {
  const cases = loadCases(dirs).filter((c) => !filter || filter(c));
  const outcomes: CaseOutcome[] = [];
  for (const c of cases) {
    let o: CaseOutcome;
    try {
      o = runCase(c);
    } catch (e) {
      o = { c, pass: false, reason: `crash: ${(e as Error).message}` };
    }
    outcomes.push(o);
  }
  const passed = outcomes.filter((o) => o.pass).length;
  return { outcomes, passed, failed: outcomes.length - passed };
}
