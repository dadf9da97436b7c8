/**
 * `ztmesh rego eval [-d file|dir]... [-i input.json] '<query>'` — prints `opa eval`-style JSON.
 * `ztmesh rego test <path>...` — runs `test_*` rules like `opa test` (exit 1 on failures).
 */
import type { Command } from 'commander';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { ZtmError, isZtmError } from '../../errors.js';
import { compileModules, fromJSON, parseJSONExact, RegoEvalError, RObject, toJSONText, type CompiledPolicy, type Value } from '../../rego/index.js';
import { paint } from '../output.js';

const collect = (v: string, prev: string[]) => [...prev, v];

interface Loaded {
  sources: Record<string, string>;
  data: RObject;
}

function walk(p: string): string[] {
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new ZtmError('ZTM_CONFIG_IO', `cannot read ${p}`, { file: p });
  }
  if (st.isFile()) return [p];
  const out: string[] = [];
  for (const e of readdirSync(p).sort()) {
    if (e.startsWith('.')) continue;
    out.push(...walk(join(p, e)));
  }
  return out;
}

function mergeInto(target: RObject, path: string[], v: Value): void {
  let cur = target;
  for (const seg of path) {
    let nx = cur.get(seg);
    if (!(nx instanceof RObject)) {
      nx = new RObject();
      cur.set(seg, nx);
    }
    cur = nx;
  }
  if (v instanceof RObject) for (const [k, x] of v.entries()) {
    const prev = cur.get(k);
    if (prev instanceof RObject && x instanceof RObject) mergeInto(cur, [k as string], x);
    else cur.set(k, x);
  }
  else if (path.length) throw new ZtmError('ZTM_CONFIG_INVALID', `data file under ${path.join('/')} must hold an object`);
}

/** Load .rego modules and JSON/YAML data files (data goes under its directory's path, like `opa -d`). */
export function loadRegoPaths(paths: string[]): Loaded {
  const sources: Record<string, string> = {};
  const data = new RObject();
  for (const root of paths) {
    const rootIsFile = statSync(root).isFile();
    for (const f of walk(root)) {
      if (f.endsWith('.rego')) sources[f] = readFileSync(f, 'utf8');
      else if (/\.(json|ya?ml)$/.test(f)) {
        const text = readFileSync(f, 'utf8');
        let v: Value;
        try {
          v = f.endsWith('.json') ? parseJSONExact(text) : fromJSON(parseYaml(text, { intAsBigInt: true }));
        } catch (e) {
          throw new ZtmError('ZTM_CONFIG_PARSE', `cannot parse ${f}: ${(e as Error).message}`, { file: f });
        }
        const rel = rootIsFile ? '' : relative(root, f);
        const dirParts = rel.split(sep).slice(0, -1).filter(Boolean);
        mergeInto(data, dirParts, v);
      }
    }
  }
  return { sources, data };
}

function compile(sources: Record<string, string>, strict = false): CompiledPolicy {
  return compileModules(sources, { strict });
}

function readInput(file: string | undefined): Value | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch {
    throw new ZtmError('ZTM_CONFIG_IO', `cannot read input ${file}`, { file });
  }
  try {
    return /\.ya?ml$/.test(file) ? fromJSON(parseYaml(text, { intAsBigInt: true })) : parseJSONExact(text);
  } catch (e) {
    throw new ZtmError('ZTM_INPUT_INVALID', `input ${file} is not valid JSON: ${(e as Error).message}`, { file });
  }
}

/** An object whose keys print in the given order (for opa eval's output envelope). */
class Ordered {
  constructor(readonly fields: [string, Value | Ordered | (Value | Ordered)[]][]) {}
}
function ordered(fields: [string, Value | Ordered | (Value | Ordered)[]][]): Ordered {
  return new Ordered(fields);
}
function renderOrdered(v: Value | Ordered | (Value | Ordered)[], level: number): string {
  const pad = (n: number) => '  '.repeat(n);
  if (v instanceof Ordered) {
    if (!v.fields.length) return '{}';
    return '{\n' + v.fields.map(([k, x]) => `${pad(level + 1)}${JSON.stringify(k)}: ${renderOrdered(x, level + 1)}`).join(',\n') + '\n' + pad(level) + '}';
  }
  if (Array.isArray(v) && v.some((x) => x instanceof Ordered)) {
    return '[\n' + v.map((x) => pad(level + 1) + renderOrdered(x, level + 1)).join(',\n') + '\n' + pad(level) + ']';
  }
  return toJSONText(v as Value, '  ', pad(level)).replace(/^/, '');
}

export function registerRego(program: Command, ctx: CliContext): void {
  const rego = program.command('rego').description('Evaluate and test Rego (OPA policy language) policies');

  rego
    .command('eval')
    .description("evaluate a Rego query and print opa eval's JSON result")
    .argument('<query>', 'Rego query, e.g. data.authz.allow')
    .option('-d, --data <path>', '.rego / .json / .yaml file or directory (repeatable)', collect, [] as string[])
    .option('-i, --input <file>', 'input document (JSON or YAML; - for stdin)')
    .option('--strict-builtin-errors', 'treat built-in errors as fatal')
    .option('--strict', 'enable strict-mode compile checks (unused imports and assignments, deprecated built-ins)')
    .option('--fail', 'exit 1 when the result is undefined')
    .action((query: string, o: { data: string[]; input?: string; strictBuiltinErrors?: boolean; strict?: boolean; fail?: boolean }) => {
      const { sources, data } = loadRegoPaths(o.data);
      const policy = compile(sources, o.strict);
      const input = readInput(o.input);
      try {
        const sols = policy.evalRaw(query, { input, data, raw: true, strictBuiltinErrors: o.strictBuiltinErrors });
        const body = policy.prepareQuery(query);
        // opa eval's field order: result → expressions (value, text, location), bindings
        const result = sols.map((s) => {
          const exprs = body.map((e, i) =>
            ordered([
              ['value', s.expressions[i]],
              ['text', e.loc.text ?? ''],
              ['location', ordered([['row', BigInt(e.loc.row)], ['col', BigInt(e.loc.col)]])],
            ]),
          );
          const fields: [string, Value | Ordered][] = [['expressions', exprs as unknown as Value]];
          if (s.bindings.size) fields.push(['bindings', RObject.from(s.bindings)]);
          return ordered(fields);
        });
        ctx.stdout.write((result.length ? renderOrdered(ordered([['result', result as unknown as Value]]), 0) : '{}') + '\n');
        if (o.fail && !result.length) ctx.exitCode = Exit.FAILED;
      } catch (e) {
        if (e instanceof RegoEvalError) {
          // opa eval's error shape: {"errors":[{"code","message","location"}]}
          const err = RObject.fromRecord({ code: e.regoCode, message: e.rawMessage });
          if (e.loc) err.set('location', RObject.fromRecord({ file: e.loc.file, row: BigInt(e.loc.row), col: BigInt(e.loc.col) }));
          ctx.stdout.write(toJSONText(RObject.fromRecord({ errors: [err] }), '  ') + '\n');
          ctx.exitCode = Exit.FAILED;
          return;
        }
        if (isZtmError(e)) {
          const errs = RObject.fromRecord({ errors: [RObject.fromRecord({ code: e.code, message: e.message })] });
          ctx.stdout.write(toJSONText(errs, '  ') + '\n');
          ctx.exitCode = Exit.FAILED;
          return;
        }
        throw e;
      }
    });

  rego
    .command('test')
    .description('run test_* rules (like opa test); exit 1 on failures')
    .argument('<paths...>', 'directories or files with .rego modules (and JSON/YAML data)')
    .option('-r, --run <regex>', 'only run tests whose name matches')
    .option('--strict', 'enable strict-mode compile checks')
    .action((paths: string[], o: { run?: string; strict?: boolean }) => {
      const { sources, data } = loadRegoPaths(paths);
      const policy = compile(sources, o.strict);
      const re = o.run ? new RegExp(o.run) : undefined;
      let pass = 0;
      let fail = 0;
      let errors = 0;
      const byFile = new Map<string, string[]>();
      for (const m of policy.modules) {
        for (const r of m.rules) {
          if (r.head.ref.length !== 1 || r.head.args || r.kind !== 'complete') continue;
          const name = (r.head.ref[0] as { name: string }).name;
          if (!name.startsWith('test_') && !name.startsWith('todo_test_')) continue;
          const full = [...m.pkg, name].join('.');
          if (re && !re.test(full)) continue;
          const list = byFile.get(m.file) ?? [];
          if (!list.includes(full)) list.push(full);
          byFile.set(m.file, list);
        }
      }
      for (const [file, tests] of byFile) {
        ctx.stdout.write(`${file}:\n`);
        for (const t of tests) {
          const short = t.split('.').pop()!;
          if (short.startsWith('todo_')) {
            ctx.stdout.write(`${t}: ${paint(ctx.stdout, 'yellow', 'SKIPPED')}\n`);
            continue;
          }
          const start = process.hrtime.bigint();
          let status: 'PASS' | 'FAIL' | 'ERROR';
          let detail = '';
          const printed: string[] = [];
          try {
            const v = policy.evalPath(t.split('.').slice(1), { data, raw: true, print: (m) => printed.push(m) });
            status = v === undefined || v === false ? 'FAIL' : 'PASS';
          } catch (e) {
            status = 'ERROR';
            detail = (e as Error).message;
          }
          const ms = Number(process.hrtime.bigint() - start) / 1e6;
          if (status === 'PASS') pass++;
          else if (status === 'FAIL') fail++;
          else errors++;
          const colour = status === 'PASS' ? 'green' : 'red';
          ctx.stdout.write(`${t}: ${paint(ctx.stdout, colour, status)} (${ms < 1 ? ms.toFixed(3) : ms.toFixed(1)}ms)${detail ? `\n  ${detail}` : ''}\n`);
          for (const p of printed) ctx.stdout.write(`  ${p}\n`);
        }
      }
      const total = pass + fail + errors;
      ctx.stdout.write('-'.repeat(80) + '\n');
      if (total === 0) {
        ctx.stdout.write('no tests found\n');
        ctx.exitCode = Exit.FAILED;
        return;
      }
      if (pass) ctx.stdout.write(`${paint(ctx.stdout, 'green', 'PASS')}: ${pass}/${total}\n`);
      if (fail) ctx.stdout.write(`${paint(ctx.stdout, 'red', 'FAIL')}: ${fail}/${total}\n`);
      if (errors) ctx.stdout.write(`${paint(ctx.stdout, 'red', 'ERROR')}: ${errors}/${total}\n`);
      ctx.exitCode = fail || errors ? Exit.FAILED : Exit.OK;
    });
}
