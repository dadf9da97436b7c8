/**
 * Top-down evaluator: continuation-passing backtracking over bodies, with a binding
 * trail per frame. A continuation returns `true` to stop the search.
 */
import type { Body, Expr, Loc, Term } from './ast.js';
import type { CompiledModules, CRule, RuleNode } from './compiler.js';
import { isGround } from './compiler.js';
import { BUILTINS, type BuiltinCtx } from './builtins/index.js';
import { BuiltinError, RegoEvalError } from './errors.js';
import { compare, equal, formatNumber, keyOf, RObject, RSet, toRegoText, type Value } from './value.js';

type K = () => boolean;
type KV = (v: Value) => boolean;

export class Frame {
  vals = new Map<string, Value>();
  trail: string[] = [];
  bind(name: string, v: Value): void {
    this.vals.set(name, v);
    this.trail.push(name);
  }
  undo(mark: number): void {
    const t = this.trail;
    while (t.length > mark) this.vals.delete(t.pop()!);
  }
}

interface DataOverride {
  path: string[];
  value: Value;
}

interface Ctx {
  input: Value | undefined;
  data: Value;
  overrides: DataOverride[];
  fnOverrides: Map<string, { value?: Value; fn?: string }>;
  cache: Map<RuleNode, Value | null>;
  objCache: Map<RuleNode, Value | null>;
  inProgress: Set<RuleNode>;
  /** Unique per context: rule values are cached on the nodes, tagged with it. */
  gen: number;
}

export interface EvalOptions {
  input?: Value;
  data?: Value;
  strictBuiltinErrors?: boolean;
  /** Fixed clock for time.now_ns (nanoseconds). */
  nowNs?: bigint;
  /** Called by print(). */
  print?: (msg: string) => void;
  /** Document returned by opa.runtime() (default {}). */
  runtime?: Value;
}

export class Evaluator {
  private ctx: Ctx;
  readonly strict: boolean;
  /** Built-in errors recorded in strict mode (the first one is raised after evaluation). */
  readonly builtinErrors: RegoEvalError[] = [];
  readonly bctx: BuiltinCtx;
  constructor(
    readonly compiled: CompiledModules,
    opts: EvalOptions,
  ) {
    this.ctx = {
      input: opts.input,
      data: opts.data ?? new RObject(),
      overrides: [],
      fnOverrides: new Map(),
      cache: new Map(),
      objCache: new Map(),
      inProgress: new Set(),
      gen: ++genCounter,
    };
    this.strict = !!opts.strictBuiltinErrors;
    this.bctx = {
      nowNs: opts.nowNs ?? BigInt(Date.now()) * 1000000n,
      print: opts.print,
      cache: new Map(),
      runtime: opts.runtime,
    };
  }

  // ---------------- bodies & expressions ----------------
  evalBody(body: Body, i: number, f: Frame, k: K): boolean {
    if (i === body.length) return k();
    return this.evalExpr(body[i], f, () => this.evalBody(body, i + 1, f, k));
  }

  private evalExpr(e: Expr, f: Frame, k: K): boolean {
    if (e.with.length) return this.evalWith(e, f, k);
    if (e.negated) {
      const mark = f.trail.length;
      let found = false;
      this.evalExprInner(e, f, () => {
        found = true;
        return true;
      });
      f.undo(mark);
      return found ? false : k();
    }
    return this.evalExprInner(e, f, k);
  }

  private evalExprInner(e: Expr, f: Frame, k: K): boolean {
    switch (e.type) {
      case 'term': {
        const t = e.term;
        if (t.type === 'call') {
          if (t.fn === 'eq' || t.fn === 'assign') return this.unify(t.args[0], t.args[1], f, k);
          return this.evalCall(t, f, (v) => (v === false ? false : k()), true);
        }
        return this.evalTerm(t, f, (v) => (v === false ? false : k()));
      }
      case 'some':
        return k();
      case 'somein':
        return this.evalTerm(e.domain, f, (coll) => this.iterColl(coll, (key, val) => {
          const mark = f.trail.length;
          const stop = e.key
            ? this.unifyTV(e.key, key, f, () => this.unifyTV(e.value, val, f, k))
            : this.unifyTV(e.value, val, f, k);
          f.undo(mark);
          return stop;
        }));
      case 'every': {
        return this.evalTerm(e.domain, f, (coll) => {
          if (!Array.isArray(coll) && !(coll instanceof RObject) && !(coll instanceof RSet)) return false;
          let all = true;
          this.iterColl(coll, (key, val) => {
            const mark = f.trail.length;
            let ok = false;
            const run = (): boolean =>
              this.evalBody(e.body, 0, f, () => {
                ok = true;
                return true;
              });
            if (e.key) this.unifyTV(e.key, key, f, () => this.unifyTV(e.value, val, f, run));
            else this.unifyTV(e.value, val, f, run);
            f.undo(mark);
            if (!ok) {
              all = false;
              return true;
            }
            return false;
          });
          return all ? k() : false;
        });
      }
    }
  }

  private iterColl(coll: Value, cb: (k: Value, v: Value) => boolean): boolean {
    if (Array.isArray(coll)) {
      for (let i = 0; i < coll.length; i++) if (cb(BigInt(i), coll[i])) return true;
    } else if (coll instanceof RObject) {
      for (const [k, v] of [...coll.entries()]) if (cb(k, v)) return true;
    } else if (coll instanceof RSet) {
      for (const v of [...coll.values()]) if (cb(v, v)) return true;
    }
    return false;
  }

  private evalWith(e: Expr, f: Frame, k: K): boolean {
    // evaluate with values first (may be multi-valued: take each)
    const ws = e.with;
    const vals: ({ value?: Value; fn?: string } | undefined)[] = [];
    const step = (i: number): boolean => {
      if (i === ws.length) return this.runWith(e, f, k, vals);
      const w = ws[i];
      const vt = w.value as Term & { fnMarker?: boolean };
      if (vt.type === 'scalar' && vt.fnMarker) {
        vals[i] = { fn: (vt.value as string).slice(3) };
        return step(i + 1);
      }
      return this.evalTerm(w.value, f, (v) => {
        vals[i] = { value: v };
        return step(i + 1);
      });
    };
    return step(0);
  }

  private runWith(e: Expr, f: Frame, k: K, vals: ({ value?: Value; fn?: string } | undefined)[]): boolean {
    const saved = this.ctx;
    const next: Ctx = {
      input: saved.input,
      data: saved.data,
      overrides: [...saved.overrides],
      fnOverrides: new Map(saved.fnOverrides),
      cache: new Map(),
      objCache: new Map(),
      inProgress: new Set(),
      gen: ++genCounter,
    };
    e.with.forEach((w, i) => {
      const t = w.target;
      const v = vals[i]!;
      if (t.type === 'scalar' && typeof t.value === 'string' && t.value.startsWith('fn:')) {
        next.fnOverrides.set(t.value.slice(3), v);
        return;
      }
      const path = targetPath(t);
      if (!path) throw new RegoEvalError('rego_compile_error', 'with keyword target must reference existing input, data, or a function', w.loc);
      if (v.fn !== undefined) {
        // replacing a data function ref with another function
        next.fnOverrides.set(path.join('.'), v);
        return;
      }
      if (path[0] === 'input') {
        next.input = path.length === 1 ? v.value! : setPath(next.input, path.slice(1), v.value!);
      } else {
        next.overrides = next.overrides.filter((o) => !startsWith(o.path, path.slice(1)));
        next.overrides.push({ path: path.slice(1), value: v.value! });
        if (this.compiled.funcPaths.has(path.join('.'))) next.fnOverrides.set(path.join('.'), v);
      }
    });
    const inner: Expr = { ...e, with: [] };
    this.ctx = next;
    let stop: boolean;
    try {
      stop = this.evalExpr(inner, f, () => {
        this.ctx = saved;
        try {
          return k();
        } finally {
          this.ctx = next;
        }
      });
    } finally {
      this.ctx = saved;
    }
    return stop;
  }

  // ---------------- unification ----------------
  unify(a: Term, b: Term, f: Frame, k: K): boolean {
    if (a.type === 'var' && !f.vals.has(a.name) && !isRoot(a.name)) {
      if (b.type === 'var' && !f.vals.has(b.name) && !isRoot(b.name)) throw new RegoEvalError('rego_unsafe_var_error', `var ${a.name} is unsafe`, a.loc);
      return this.evalTerm(b, f, (v) => this.unifyTV(a, v, f, k));
    }
    if (b.type === 'var' && !f.vals.has(b.name) && !isRoot(b.name)) return this.evalTerm(a, f, (v) => this.unifyTV(b, v, f, k));
    if (a.type === 'array' && b.type === 'array') {
      if (a.items.length !== b.items.length) return false;
      const step = (i: number): boolean => (i === a.items.length ? k() : this.unify(a.items[i], b.items[i], f, () => step(i + 1)));
      return step(0);
    }
    if (a.type === 'object' && b.type === 'object' && (this.hasUnbound(a, f) || this.hasUnbound(b, f))) {
      if (a.items.length !== b.items.length) return false;
      // match keys (ground)
      const bk = new Map<string, Term>();
      for (const [kt, vt] of b.items) {
        const kv = this.groundValue(kt, f);
        if (kv === undefined) return false;
        bk.set(keyOf(kv), vt);
      }
      const pairs: [Term, Term][] = [];
      for (const [kt, vt] of a.items) {
        const kv = this.groundValue(kt, f);
        if (kv === undefined) return false;
        const o = bk.get(keyOf(kv));
        if (!o) return false;
        pairs.push([vt, o]);
      }
      const step = (i: number): boolean => (i === pairs.length ? k() : this.unify(pairs[i][0], pairs[i][1], f, () => step(i + 1)));
      return step(0);
    }
    if (this.hasUnbound(a, f)) {
      if (this.hasUnbound(b, f) && !(b.type === 'ref' || b.type === 'call')) {
        // both have unbound vars: evaluate the side that can be evaluated (refs bind their own vars)
        if (a.type === 'ref' || a.type === 'call') return this.evalTerm(a, f, (v) => this.unifyTV(b, v, f, k));
      }
      return this.evalTerm(b, f, (v) => this.unifyTV(a, v, f, k));
    }
    if (this.hasUnbound(b, f)) return this.evalTerm(a, f, (v) => this.unifyTV(b, v, f, k));
    return this.evalTerm(a, f, (va) => this.evalTerm(b, f, (vb) => (equal(va, vb) ? k() : false)));
  }

  /** Unify a term (pattern) with a value. */
  unifyTV(t: Term, v: Value, f: Frame, k: K): boolean {
    switch (t.type) {
      case 'var': {
        const cur = f.vals.get(t.name);
        if (cur === undefined) {
          if (isRoot(t.name)) return this.evalTerm(t, f, (x) => (equal(x, v) ? k() : false));
          const mark = f.trail.length;
          f.bind(t.name, v);
          const stop = k();
          f.undo(mark);
          return stop;
        }
        return equal(cur, v) ? k() : false;
      }
      case 'scalar':
        return equal(t.value, v) ? k() : false;
      case 'array': {
        if (!Array.isArray(v) || v.length !== t.items.length) return false;
        const step = (i: number): boolean => (i === v.length ? k() : this.unifyTV(t.items[i], v[i], f, () => step(i + 1)));
        return step(0);
      }
      case 'object': {
        if (!(v instanceof RObject) || v.size !== t.items.length) return false;
        if (!this.hasUnbound(t, f)) return this.evalTerm(t, f, (x) => (equal(x, v) ? k() : false));
        const step = (i: number): boolean => {
          if (i === t.items.length) return k();
          const [kt, vt] = t.items[i];
          return this.evalTerm(kt, f, (kv) => {
            const x = v.get(kv);
            if (x === undefined) return false;
            return this.unifyTV(vt, x, f, () => step(i + 1));
          });
        };
        return step(0);
      }
      default:
        return this.evalTerm(t, f, (x) => (equal(x, v) ? k() : false));
    }
  }

  private hasUnbound(t: Term, f: Frame): boolean {
    switch (t.type) {
      case 'var':
        return !f.vals.has(t.name) && !isRoot(t.name);
      case 'array':
      case 'set':
        for (const x of t.items) if (this.hasUnbound(x, f)) return true;
        return false;
      case 'object':
        for (const [a, b] of t.items) if (this.hasUnbound(a, f) || this.hasUnbound(b, f)) return true;
        return false;
      case 'ref':
        for (const p of t.path) if (this.hasUnbound(p, f)) return true;
        return this.hasUnbound(t.head, f);
      default:
        return false;
    }
  }

  private groundValue(t: Term, f: Frame): Value | undefined {
    let out: Value | undefined;
    this.evalTerm(t, f, (v) => {
      out = v;
      return true;
    });
    return out;
  }

  // ---------------- terms ----------------
  evalTerm(t: Term, f: Frame, k: KV): boolean {
    switch (t.type) {
      case 'scalar':
        return k(t.value);
      case 'var': {
        const v = f.vals.get(t.name);
        if (v !== undefined) return k(v);
        if (t.name === 'input') return this.ctx.input === undefined ? false : k(this.ctx.input);
        if (t.name === 'data') return this.evalRef({ type: 'ref', head: t, path: [], loc: t.loc }, f, k);
        throw new RegoEvalError('rego_unsafe_var_error', `var ${t.name} is unsafe`, t.loc);
      }
      case 'ref':
        return this.evalRef(t, f, k);
      case 'array':
      case 'set': {
        const gv = groundCached(t);
        if (gv !== undefined) return k(gv);
        const isSet = t.type === 'set';
        const out: Value[] = new Array(t.items.length);
        const step = (i: number): boolean => {
          if (i === t.items.length) return k(isSet ? RSet.from(out) : out.slice());
          return this.evalTerm(t.items[i], f, (v) => {
            out[i] = v;
            return step(i + 1);
          });
        };
        return step(0);
      }
      case 'object': {
        const gv = groundCached(t);
        if (gv !== undefined) return k(gv);
        const ks: Value[] = new Array(t.items.length);
        const vs: Value[] = new Array(t.items.length);
        const step = (i: number): boolean => {
          if (i === t.items.length) {
            const o = new RObject();
            for (let j = 0; j < ks.length; j++) o.set(ks[j], vs[j]);
            return k(o);
          }
          return this.evalTerm(t.items[i][0], f, (kv) => {
            ks[i] = kv;
            return this.evalTerm(t.items[i][1], f, (vv) => {
              vs[i] = vv;
              return step(i + 1);
            });
          });
        };
        return step(0);
      }
      case 'arraycomp': {
        const out: Value[] = [];
        const mark = f.trail.length;
        this.evalBody(t.body, 0, f, () => this.evalTerm(t.head, f, (v) => {
          out.push(v);
          return false;
        }));
        f.undo(mark);
        return k(out);
      }
      case 'setcomp': {
        const out = new RSet();
        const mark = f.trail.length;
        this.evalBody(t.body, 0, f, () => this.evalTerm(t.head, f, (v) => {
          out.add(v);
          return false;
        }));
        f.undo(mark);
        return k(out);
      }
      case 'objcomp': {
        const out = new RObject();
        const mark = f.trail.length;
        this.evalBody(t.body, 0, f, () => this.evalTerm(t.key, f, (kv) => this.evalTerm(t.value, f, (vv) => {
          const prev = out.get(kv);
          if (prev !== undefined && !equal(prev, vv)) throw new RegoEvalError('eval_conflict_error', 'object keys must be unique', t.loc);
          out.set(kv, vv);
          return false;
        })));
        f.undo(mark);
        return k(out);
      }
      case 'call':
        return this.evalCall(t, f, k, false);
      case 'template': {
        const parts: string[] = new Array(t.parts.length);
        const step = (i: number): boolean => {
          if (i === t.parts.length) return k(parts.join(''));
          const p = t.parts[i];
          if (typeof p === 'string') {
            parts[i] = p;
            return step(i + 1);
          }
          let any = false;
          if ((p as { single?: boolean }).single) {
            let got: Value | undefined;
            this.evalTerm(p, f, (arr) => {
              if (Array.isArray(arr) && arr.length) got = arr[0];
              return true;
            });
            parts[i] = got === undefined ? '<undefined>' : typeof got === 'string' ? got : typeof got === 'bigint' || typeof got === 'number' ? formatNumber(got) : toRegoText(got);
            return step(i + 1);
          }
          const stop = this.evalTerm(p, f, (v) => {
            any = true;
            parts[i] = typeof v === 'string' ? v : typeof v === 'bigint' || typeof v === 'number' ? formatNumber(v) : toRegoText(v);
            return step(i + 1);
          });
          if (!any) {
            parts[i] = '<undefined>';
            return step(i + 1);
          }
          return stop;
        };
        return step(0);
      }
    }
  }

  // ---------------- references ----------------
  evalRef(t: Term & { type: 'ref' }, f: Frame, k: KV): boolean {
    const h = t.head;
    if (h.type === 'var') {
      if (h.name === 'data' && !f.vals.has('data')) {
        if (!this.ctx.overrides.length) {
          // resolved once per reference: the rule node a constant prefix leads to
          const tt = t as typeof t & { _leaf?: { node: RuleNode; i: number } | null };
          let c = tt._leaf;
          if (c === undefined) tt._leaf = c = resolveLeaf(this.compiled.root, t.path);
          if (c) {
            const v = this.ruleValue(c.node);
            return v === undefined ? false : this.iter(v, t.path, c.i, f, k);
          }
        }
        return this.walkData(this.compiled.root, this.ctx.data, [], t.path, 0, f, k);
      }
      if (h.name === 'input' && !f.vals.has('input')) {
        const inp = this.ctx.input;
        if (inp === undefined) return false;
        return this.iter(inp, t.path, 0, f, k);
      }
      const v = f.vals.get(h.name);
      if (v === undefined) throw new RegoEvalError('rego_unsafe_var_error', `var ${h.name} is unsafe`, h.loc);
      return this.iter(v, t.path, 0, f, k);
    }
    return this.evalTerm(h, f, (v) => this.iter(v, t.path, 0, f, k));
  }

  /** Iterate / index a plain value along ref path terms. */
  private iter(v: Value, path: Term[], i: number, f: Frame, k: KV, dataMode = false): boolean {
    if (i === path.length) return k(v);
    const p = path[i];
    if (p.type === 'scalar') {
      let x = lookup(v, p.value);
      if (x === undefined && dataMode && (typeof p.value === 'bigint' || typeof p.value === 'number') && v instanceof RObject) x = v.getStr(String(p.value));
      return x === undefined ? false : this.iter(x, path, i + 1, f, k, dataMode);
    }
    if (p.type === 'var') {
      const b = f.vals.get(p.name);
      if (b !== undefined) {
        const x = lookup(v, b);
        return x === undefined ? false : this.iter(x, path, i + 1, f, k);
      }
      if (isRoot(p.name)) {
        return this.evalTerm(p, f, (kv) => {
          const x = lookup(v, kv);
          return x === undefined ? false : this.iter(x, path, i + 1, f, k);
        });
      }
      // iterate
      return this.iterColl(v, (key, val) => {
        f.bind(p.name, key);
        const mark = f.trail.length - 1;
        const stop = this.iter(val, path, i + 1, f, k);
        f.undo(mark);
        return stop;
      });
    }
    if (this.hasUnbound(p, f) && p.type !== 'ref' && p.type !== 'call') {
      return this.iterColl(v, (key, val) => {
        const mark = f.trail.length;
        const stop = this.unifyTV(p, key, f, () => this.iter(val, path, i + 1, f, k));
        f.undo(mark);
        return stop;
      });
    }
    return this.evalTerm(p, f, (kv) => {
      const x = lookup(v, kv);
      return x === undefined ? false : this.iter(x, path, i + 1, f, k);
    });
  }

  private overrideAt(path: string[]): DataOverride | undefined {
    for (const o of this.ctx.overrides) if (o.path.length === path.length && startsWith(path, o.path)) return o;
    return undefined;
  }

  private walkData(node: RuleNode, base: Value | undefined, _sofar: string[], path: Term[], i: number, f: Frame, k: KV): boolean {
    const hasOv = this.ctx.overrides.length > 0;
    for (;;) {
      if (hasOv) {
        const o = this.overrideAt(node.path);
        if (o) return this.iter(o.value, path, i, f, k);
      }
      if (node.isLeaf) {
        if (node.isFunc) return false;
        let v = this.ruleValue(node);
        if (v === undefined) return false;
        if (hasOv) v = this.applyOverrides(v, node.path);
        return this.iter(v, path, i, f, k);
      }
      if (i === path.length) {
        const v = this.materialize(node, base, node.path);
        return v === undefined ? false : k(v);
      }
      const p = path[i];
      let key: Value;
      if (p.type === 'scalar') key = p.value;
      else if (p.type === 'var' && f.vals.has(p.name)) key = f.vals.get(p.name)!;
      else if (!this.hasUnbound(p, f)) return this.evalTerm(p, f, (kv) => this.descend(node, base, kv, path, i, f, k));
      else {
        const v = this.materialize(node, base, node.path);
        if (v === undefined) return false;
        return this.iter(v, path, i, f, k);
      }
      // fast path: descend into a child rule node without allocating
      if (typeof key === 'string') {
        const ch = node.children.get(key);
        if (ch) {
          base = base === undefined ? undefined : lookup(base, key);
          node = ch;
          i++;
          continue;
        }
      }
      return this.descend(node, base, key, path, i, f, k);
    }
  }

  private descend(node: RuleNode, base: Value | undefined, key: Value, path: Term[], i: number, f: Frame, k: KV): boolean {
    if (typeof key === 'string') {
      const ch = node.children.get(key);
      if (ch) return this.walkData(ch, base === undefined ? undefined : lookup(base, key), ch.path, path, i + 1, f, k);
    }
    if (node.objects.length) {
      const v = this.materialize(node, base, node.path);
      if (v === undefined) return false;
      const x = lookup(v, key);
      return x === undefined ? false : this.iter(x, path, i + 1, f, k);
    }
    if (this.ctx.overrides.length && typeof key === 'string') {
      const p2 = [...node.path, key];
      const o = this.overrideAt(p2);
      if (o) return this.iter(o.value, path, i + 1, f, k, true);
      if (this.ctx.overrides.some((ov) => ov.path.length > p2.length && startsWith(ov.path, p2))) {
        const cur = base === undefined ? undefined : lookup(base, key);
        const v = this.applyOverrides(cur ?? new RObject(), p2);
        return this.iter(v, path, i + 1, f, k, true);
      }
    }
    if (base === undefined) return false;
    let x = lookup(base, key);
    if (x === undefined && (typeof key === 'bigint' || typeof key === 'number') && base instanceof RObject) x = base.getStr(String(key));
    if (x === undefined) return false;
    return this.iter(x, path, i + 1, f, k, true);
  }

  private applyOverrides(v: Value, sofar: string[]): Value {
    let out = v;
    for (const o of this.ctx.overrides) {
      if (o.path.length > sofar.length && startsWith(o.path, sofar)) out = setPath(out, o.path.slice(sofar.length), o.value);
    }
    return out;
  }

  /** Full value of a subtree: base data merged with rule values. */
  materialize(node: RuleNode, base: Value | undefined, sofar: string[]): Value | undefined {
    if (this.ctx.overrides.length) {
      const o = this.overrideAt(sofar);
      if (o) return o.value;
    }
    if (node.isLeaf) {
      if (node.isFunc) return undefined;
      const v = this.ruleValue(node);
      return v !== undefined && this.ctx.overrides.length ? this.applyOverrides(v, node.path) : v;
    }
    const cached = this.ctx.objCache.get(node);
    if (cached !== undefined) return cached === null ? undefined : cached;
    if (base !== undefined && !(base instanceof RObject) && !node.hasRulesBelow) return base;
    const obj = new RObject();
    for (const [name, ch] of node.children) {
      const v = this.materialize(ch, lookup(base ?? null, name), [...sofar, name]);
      if (v !== undefined) obj.set(name, v);
    }
    if (base instanceof RObject) for (const [kk, vv] of base.entries()) if (!(vv instanceof RObject && obj.get(kk) instanceof RObject)) obj.set(kk, vv);
    if (node.objects.length) this.evalObjectRules(node, obj);
    let result: Value = obj;
    if (this.ctx.overrides.length) result = this.applyOverrides(result, sofar);
    this.ctx.objCache.set(node, result);
    return result;
  }

  // ---------------- rules ----------------
  ruleValue(node: RuleNode): Value | undefined {
    const gen = this.ctx.gen;
    const n = node as RuleNode & NodeCache;
    if (n._cGen === gen) return n._cVal ?? undefined;
    if (n._busy === gen) throw new RegoEvalError('rego_recursion_error', `rule data.${node.path.join('.')} is recursive`);
    const prevBusy = n._busy;
    n._busy = gen;
    let v: Value | undefined;
    try {
      if (node.sets.length) v = this.evalSetRules(node);
      else v = this.evalCompleteRules(node);
      if (node.objects.length && v instanceof RObject) {
        v = RObject.from(v.entries());
        this.evalObjectRules(node, v);
      }
    } finally {
      n._busy = prevBusy;
    }
    n._cGen = gen;
    n._cVal = v === undefined ? null : v;
    return v;
  }

  private candidates(node: RuleNode): CRule[] {
    let cands = node.complete;
    const idx = node.index;
    if (idx) {
      let val: Value | undefined;
      let failed = false;
      try {
        this.evalTerm(idx.ref, new Frame(), (v) => {
          val = v;
          return true;
        });
      } catch {
        failed = true;
      }
      if (!failed) {
        if (val === undefined) cands = idx.rest;
        else {
          const b = idx.buckets.get(keyOf(val));
          if (!b) cands = idx.rest;
          else if (!idx.rest.length) cands = b;
          else {
            // keep definition order
            const set = new Set([...b, ...idx.rest]);
            cands = node.complete.filter((r) => set.has(r));
          }
        }
      }
    }
    if (node.globIndex && cands === node.complete) cands = this.globIndexed(node, cands);
    if (node.globFilter) cands = this.globFilter(cands);
    return cands;
  }

  /** Candidates whose glob literal prefix is a prefix of the input value (plus those without one). */
  private globIndexed(node: RuleNode, cands: CRule[]): CRule[] {
    const gi = node.globIndex!;
    let v: Value | undefined;
    try {
      this.evalTerm(gi.ref, new Frame(), (x) => {
        v = x;
        return true;
      });
    } catch {
      return cands;
    }
    if (typeof v !== 'string') return cands;
    const s = v;
    let hits: CRule[] = gi.rest;
    let merged = false;
    for (const n of gi.lengths) {
      if (n > s.length) break;
      const l = gi.byPrefix.get(s.slice(0, n));
      if (l) {
        hits = hits.length ? hits.concat(l) : l;
        merged = hits !== l;
      }
    }
    // keep definition order
    if (merged) hits = [...hits].sort((a, b) => (a.pos ?? 0) - (b.pos ?? 0));
    return hits;
  }

  /** Drop definitions whose constant glob condition cannot match (only when the input is a string). */
  private globFilter(rules: CRule[]): CRule[] {
    const vals = new Map<string, Value | undefined>();
    const get = (ref: Term, key: string): Value | undefined => {
      if (vals.has(key)) return vals.get(key);
      let v: Value | undefined;
      try {
        this.evalTerm(ref, new Frame(), (x) => {
          v = x;
          return true;
        });
      } catch {
        v = undefined;
      }
      vals.set(key, v);
      return v;
    };
    return rules.filter((r) => {
      if (!r.globConds) return true;
      for (const g of r.globConds) {
        const v = get(g.ref, g.refKey);
        if (typeof v === 'string' && !g.re.test(v)) return false;
      }
      return true;
    });
  }

  private evalCompleteRules(node: RuleNode): Value | undefined {
    let result: Value | undefined;
    let resultLoc: Loc | undefined;
    for (const r of this.candidates(node)) {
      const f = new Frame();
      const bodies = bodiesOf(r);
      for (const b of bodies) {
        let found = false;
        this.evalBody(b.body, 0, f, () => {
          found = true;
          const emit = (v: Value): boolean => {
            if (result !== undefined && !equal(result, v)) throw new RegoEvalError('eval_conflict_error', 'complete rules must not produce multiple outputs', resultLoc ?? r.rule.loc);
            result = v;
            resultLoc = r.rule.loc;
            return false;
          };
          if (b.value === undefined) emit(true);
          else this.evalTerm(b.value, f, emit);
          return r.constValue;
        });
        if (found) break;
      }
    }
    if (result === undefined && node.defaults.length) {
      const d = node.defaults[0];
      this.evalTerm(d.value!, new Frame(), (v) => {
        result = v;
        return true;
      });
    }
    if (result === undefined && !node.complete.length && !node.defaults.length && node.objects.length) return new RObject();
    return result;
  }

  private evalSetRules(node: RuleNode): Value {
    const out = new RSet();
    for (const r of node.sets) {
      const f = new Frame();
      this.evalBody(r.body, 0, f, () => this.evalTerm(r.key!, f, (v) => {
        out.add(v);
        return false;
      }));
    }
    return out;
  }

  private evalObjectRules(node: RuleNode, obj: RObject): void {
    for (const r of node.objects) {
      const f = new Frame();
      const bodies = bodiesOf(r);
      for (const b of bodies) {
        let found = false;
        this.evalBody(b.body, 0, f, () => {
          found = true;
          const keys: Value[] = [];
          const step = (i: number): boolean => {
            if (i === r.suffix.length) {
              const put = (v: Value): boolean => {
                insertNested(obj, keys, v, r.rule.loc);
                return false;
              };
              if (r.key) return this.evalTerm(r.key, f, (m) => {
                insertSetMember(obj, keys, m, r.rule.loc);
                return false;
              });
              if (b.value === undefined) return put(true);
              return this.evalTerm(b.value, f, put);
            }
            return this.evalTerm(r.suffix[i], f, (kv) => {
              keys[i] = kv;
              return step(i + 1);
            });
          };
          step(0);
          return false;
        });
        if (found) break;
      }
    }
  }

  // ---------------- calls ----------------
  evalCall(t: Term & { type: 'call' }, f: Frame, k: KV, asExpr: boolean): boolean {
    let name = t.fn;
    const ov = this.ctx.fnOverrides.size ? this.ctx.fnOverrides.get(name) : undefined;
    if (name === 'print' && !ov) return this.evalPrint(t, f, k);
    let mockValue: Value | undefined;
    if (ov) {
      if (ov.fn !== undefined) name = ov.fn;
      else mockValue = ov.value;
    }
    let arity: number;
    let userNode: RuleNode | undefined;
    const tc = t as typeof t & { _bi?: ReturnType<typeof BUILTINS.get> | null; _varArgs?: boolean };
    let bi: ReturnType<typeof BUILTINS.get>;
    if (name === t.fn) {
      if (tc._bi === undefined) tc._bi = BUILTINS.get(name) ?? null;
      bi = tc._bi ?? undefined;
    } else bi = BUILTINS.get(name);
    if (name.startsWith('data.')) {
      userNode = this.compiled.funcPaths.get(name);
      if (!userNode) {
        const n = this.compiled.lookupNode(name.split('.').slice(1));
        if (!n || !n.funcs.length) {
          if (mockValue === undefined) throw new RegoEvalError('rego_compile_error', `rego_type_error: undefined function ${name}`, t.loc);
        }
        userNode = n;
      }
      arity = userNode ? (userNode.funcs[0] ?? userNode.defaults[0])?.args?.length ?? 0 : t.args.length;
    } else if (bi) {
      arity = bi.arity < 0 ? t.args.length : bi.arity;
    } else if (mockValue !== undefined) {
      arity = t.args.length;
    } else {
      throw new RegoEvalError('rego_compile_error', `rego_type_error: undefined function ${name}`, t.loc);
    }
    if (mockValue !== undefined && ov && ov.fn === undefined) {
      const origBi = BUILTINS.get(t.fn);
      if (origBi && origBi.arity >= 0) arity = origBi.arity;
      else if (t.fn.startsWith('data.')) {
        const n = this.compiled.funcPaths.get(t.fn);
        arity = n ? (n.funcs[0] ?? n.defaults[0])?.args?.length ?? t.args.length : t.args.length;
      }
    }
    const nargs = Math.min(arity, t.args.length);
    const args: Value[] = new Array(nargs);
    // arguments that are still-unbound vars are evaluated last (other arguments may bind them)
    let order: number[] | undefined;
    if (tc._varArgs === undefined) tc._varArgs = t.args.some((a) => a.type === 'var');
    if (tc._varArgs) for (let i = 0; i < nargs; i++) {
      const a = t.args[i];
      if (a.type === 'var' && !f.vals.has(a.name) && !isRoot(a.name)) {
        order = [];
        for (let j = 0; j < nargs; j++) if (!(t.args[j].type === 'var' && !f.vals.has((t.args[j] as { name: string }).name))) order.push(j);
        for (let j = 0; j < nargs; j++) if (!order.includes(j)) order.push(j);
        break;
      }
    }
    const finish = (result: Value | undefined): boolean => {
      if (result === undefined) return false;
      if (t.args.length > arity) {
        return this.unifyTV(t.args[arity], result, f, () => k(true));
      }
      return k(result);
    };
    const step = (i: number): boolean => {
      if (i === nargs) {
        if (mockValue !== undefined) return finish(mockValue);
        if (ov && ov.fn !== undefined) return this.withoutMocks(() => (userNode ? this.callUser(userNode, name, args.slice(), t, finish) : this.callBuiltin(bi!, name, args.slice(), t, finish)));
        if (userNode) return this.callUser(userNode, name, args.slice(), t, finish);
        return this.callBuiltin(bi!, name, args.slice(), t, finish);
      }
      const ai = order ? order[i] : i;
      return this.evalTerm(t.args[ai], f, (v) => {
        args[ai] = v;
        return step(i + 1);
      });
    };
    return step(0);
  }

  /** print(...) always succeeds; an undefined operand prints as <undefined> (as in OPA). */
  private evalPrint(t: Term & { type: 'call' }, f: Frame, k: KV): boolean {
    const parts: string[] = [];
    for (const a of t.args) {
      const vals: Value[] = [];
      const mark = f.trail.length;
      try {
        this.evalTerm(a, f, (v) => {
          vals.push(v);
          return false;
        });
      } catch (e) {
        if (!(e instanceof RegoEvalError)) throw e;
      }
      f.undo(mark);
      const fmt = (v: Value): string => (typeof v === 'string' ? v : toRegoText(v));
      parts.push(vals.length === 0 ? '<undefined>' : vals.length === 1 ? fmt(vals[0]) : toRegoText(RSet.from(vals)));
    }
    this.bctx.print?.(parts.join(' '));
    return k(true);
  }

  /** Run a mock replacement with function mocks disabled (a mock calling the original gets the original). */
  private withoutMocks(run: () => boolean): boolean {
    const saved = this.ctx;
    const inner: Ctx = { ...saved, fnOverrides: new Map(), cache: new Map(), objCache: new Map(), inProgress: new Set(), gen: ++genCounter };
    this.ctx = inner;
    try {
      return run();
    } finally {
      this.ctx = saved;
    }
  }

  private callBuiltin(bi: NonNullable<ReturnType<typeof BUILTINS.get>>, name: string, args: Value[], t: Term, finish: (v: Value | undefined) => boolean): boolean {
    let r: Value | undefined | Value[];
    try {
      r = bi.fn(args, this.bctx, this);
    } catch (e) {
      if (e instanceof BuiltinError) {
        if (e.halt) throw new RegoEvalError(e.kind, e.message, t.loc);
        // strict mode: like OPA, record the error, treat the call as undefined and report it at the end
        if (this.strict) this.builtinErrors.push(new RegoEvalError(e.kind, e.message, t.loc));
        return false;
      }
      if (e instanceof RegoEvalError) throw e;
      if (this.strict) this.builtinErrors.push(new RegoEvalError('eval_builtin_error', `${name}: ${(e as Error).message}`, t.loc));
      return false;
    }
    if (bi.relation) {
      for (const x of r as Value[]) if (finish(x)) return true;
      return false;
    }
    return finish(r as Value | undefined);
  }

  private callUser(node: RuleNode, name: string, args: Value[], t: Term, finish: (v: Value | undefined) => boolean): boolean {
    let result: Value | undefined;
    for (const r of node.funcs) {
      const f = new Frame();
      const params = r.args!;
      if (params.length !== args.length) continue;
      const bodies = bodiesOf(r);
      // parameters that are not patterns (templates, calls) are checked once the body has run
      const deferred = (p: Term): boolean => p.type === 'template' || p.type === 'call';
      const bindArgs = (i: number, kk: K): boolean =>
        i === params.length ? kk() : deferred(params[i]) ? bindArgs(i + 1, kk) : this.unifyTV(params[i], args[i], f, () => bindArgs(i + 1, kk));
      const checkDeferred = (i: number, kk: K): boolean =>
        i === params.length ? kk() : deferred(params[i]) ? this.unifyTV(params[i], args[i], f, () => checkDeferred(i + 1, kk)) : checkDeferred(i + 1, kk);
      const hasDeferred = params.some(deferred);
      bindArgs(0, () => {
        for (const b of bodies) {
          let found = false;
          this.evalBody(b.body, 0, f, () => {
            if (hasDeferred) {
              let ok = false;
              checkDeferred(0, () => {
                ok = true;
                return true;
              });
              if (!ok) return false;
            }
            found = true;
            const emit = (v: Value): boolean => {
              if (result !== undefined && !equal(result, v)) throw new RegoEvalError('eval_conflict_error', 'functions must not produce multiple outputs for same inputs', t.loc);
              result = v;
              return false;
            };
            if (b.value === undefined) emit(true);
            else this.evalTerm(b.value, f, emit);
            return r.constValue;
          });
          if (found) break;
        }
        return false;
      });
    }
    if (result === undefined && node.defaults.length) {
      const d = node.defaults[0];
      this.evalTerm(d.value!, new Frame(), (v) => {
        result = v;
        return true;
      });
    }
    return finish(result);
  }

  /** Call a function value by name (used by built-ins such as `walk`-like helpers). */
  callByName(name: string, args: Value[]): Value | undefined {
    let out: Value | undefined;
    const t: Term = { type: 'call', fn: name, fnRef: { type: 'var', name, loc: noLoc }, args: args.map((a) => ({ type: 'scalar', value: a, loc: noLoc })), loc: noLoc };
    this.evalCall(t as Term & { type: 'call' }, new Frame(), (v) => {
      out = v;
      return true;
    }, false);
    return out;
  }
}

const noLoc: Loc = { file: '', row: 0, col: 0 };

let genCounter = 0;

/** Per-node rule value cache, valid for one evaluation context (`gen`). */
interface NodeCache {
  _cGen?: number;
  _cVal?: Value | null;
  _busy?: number;
}

function bodiesOf(r: CRule): { value?: Term; body: Body }[] {
  const rr = r as CRule & { _bodies?: { value?: Term; body: Body }[] };
  return (rr._bodies ??= [{ value: r.value, body: r.body }, ...r.elses]);
}

function resolveLeaf(root: RuleNode, path: Term[]): { node: RuleNode; i: number } | null {
  let n = root;
  for (let i = 0; i < path.length; i++) {
    const p = path[i];
    if (p.type !== 'scalar' || typeof p.value !== 'string') return null;
    const ch = n.children.get(p.value);
    if (!ch) return null;
    n = ch;
    if (n.isLeaf) return n.isFunc ? null : { node: n, i: i + 1 };
  }
  return null;
}

function isRoot(n: string): boolean {
  return n === 'input' || n === 'data';
}

export function lookup(v: Value, key: Value): Value | undefined {
  if (Array.isArray(v)) {
    let idx: number;
    if (typeof key === 'bigint') idx = Number(key);
    else if (typeof key === 'number' && Number.isInteger(key)) idx = key;
    else return undefined;
    return idx >= 0 && idx < v.length ? v[idx] : undefined;
  }
  if (v instanceof RObject) return v.get(key);
  if (v instanceof RSet) return v.has(key) ? key : undefined;
  return undefined;
}

/** Value of a ground composite literal, computed once per term (values are never mutated). */
function groundCached(t: Term): Value | undefined {
  const tc = t as Term & { _gv?: Value | null };
  if (tc._gv === undefined) tc._gv = isGround(t) ? groundValueOf(t) : null;
  return tc._gv === null ? undefined : tc._gv;
}

function groundValueOf(t: Term): Value {
  switch (t.type) {
    case 'scalar':
      return t.value;
    case 'array':
      return t.items.map(groundValueOf);
    case 'set':
      return RSet.from(t.items.map(groundValueOf));
    case 'object':
      return RObject.from(t.items.map(([a, b]) => [groundValueOf(a), groundValueOf(b)] as [Value, Value]));
    default:
      throw new Error('not ground');
  }
}

function startsWith(path: string[], prefix: string[]): boolean {
  if (prefix.length > path.length) return false;
  for (let i = 0; i < prefix.length; i++) if (path[i] !== prefix[i]) return false;
  return true;
}

function targetPath(t: Term): string[] | undefined {
  if (t.type === 'var') return [t.name];
  if (t.type !== 'ref' || t.head.type !== 'var') return undefined;
  const out = [t.head.name];
  for (const p of t.path) {
    if (p.type !== 'scalar' || typeof p.value !== 'string') return undefined;
    out.push(p.value);
  }
  return out;
}

function setPath(base: Value | undefined, path: string[], v: Value): Value {
  if (path.length === 0) return v;
  const obj = new RObject();
  if (base instanceof RObject) for (const [a, b] of base.entries()) obj.set(a, b);
  obj.set(path[0], setPath(base instanceof RObject ? base.get(path[0]) : undefined, path.slice(1), v));
  return obj;
}

function insertSetMember(obj: RObject, keys: Value[], m: Value, loc: Loc): void {
  let cur = obj;
  for (let i = 0; i < keys.length; i++) {
    let nx = cur.get(keys[i]);
    if (i === keys.length - 1) {
      if (nx === undefined) {
        nx = new RSet();
        cur.set(keys[i], nx);
      }
      if (!(nx instanceof RSet)) throw new RegoEvalError('eval_conflict_error', 'object keys must be unique', loc);
      nx.add(m);
      return;
    }
    if (nx === undefined) {
      nx = new RObject();
      cur.set(keys[i], nx);
    } else if (!(nx instanceof RObject)) throw new RegoEvalError('eval_conflict_error', 'object keys must be unique', loc);
    cur = nx;
  }
}

function insertNested(obj: RObject, keys: Value[], v: Value, loc: Loc): void {
  let cur = obj;
  for (let i = 0; i < keys.length - 1; i++) {
    let nx = cur.get(keys[i]);
    if (nx === undefined) {
      nx = new RObject();
      cur.set(keys[i], nx);
    } else if (!(nx instanceof RObject)) throw new RegoEvalError('eval_conflict_error', 'object keys must be unique', loc);
    cur = nx;
  }
  const last = keys[keys.length - 1];
  const prev = cur.get(last);
  if (prev !== undefined && !equal(prev, v)) throw new RegoEvalError('eval_conflict_error', 'object keys must be unique', loc);
  cur.set(last, v);
}

export { compare };
