/** Core built-ins: comparison, arithmetic, aggregates, types, casts, sets, arrays, objects, bits. */
import { BuiltinError, builtinErr, typeErr } from '../errors.js';
import { compare, equal, isNumber, num, RObject, RSet, toFloat, typeName, toRegoText, formatNumber, type Value } from '../value.js';
import { arr, bool, collection, intArg, numArg, obj, oneOf, reg, set, str } from './registry.js';

// ---------- comparison ----------
reg('equal', 2, ([a, b]) => equal(a, b));
reg('neq', 2, ([a, b]) => !equal(a, b));
reg('lt', 2, ([a, b]) => compare(a, b) < 0);
reg('gt', 2, ([a, b]) => compare(a, b) > 0);
reg('lte', 2, ([a, b]) => compare(a, b) <= 0);
reg('gte', 2, ([a, b]) => compare(a, b) >= 0);

// ---------- arithmetic ----------
type N = bigint | number;
function arith(a: N, b: N, op: (x: bigint, y: bigint) => bigint, fop: (x: number, y: number) => number): N {
  if (typeof a === 'bigint' && typeof b === 'bigint') return op(a, b);
  const r = fop(toFloat(a), toFloat(b));
  if (!Number.isFinite(r)) throw new BuiltinError('eval_builtin_error', 'arithmetic overflow');
  return num(r);
}

reg('plus', 2, (args) => arith(numArg('plus', args, 0), numArg('plus', args, 1), (x, y) => x + y, (x, y) => x + y));
reg('mul', 2, (args) => arith(numArg('mul', args, 0), numArg('mul', args, 1), (x, y) => x * y, (x, y) => x * y));
reg('minus', 2, (args) => {
  const [a, b] = args;
  if (a instanceof RSet && b instanceof RSet) {
    const out = new RSet();
    for (const v of a.values()) if (!b.has(v)) out.add(v);
    return out;
  }
  if (isNumber(a) && isNumber(b)) return arith(a, b, (x, y) => x - y, (x, y) => x - y);
  if (isNumber(a)) throw typeErr('minus', `operand 2 must be number but got ${typeName(b)}`);
  if (a instanceof RSet) throw typeErr('minus', `operand 2 must be set but got ${typeName(b)}`);
  if (!isNumber(a)) throw typeErr('minus', `operand 1 must be one of {number, set} but got ${typeName(a)}`);
  throw typeErr('minus', `operand 2 must be one of {number, set} but got ${typeName(b)}`);
});
reg('div', 2, (args) => {
  const a = numArg('div', args, 0);
  const b = numArg('div', args, 1);
  if (toFloat(b) === 0) throw builtinErr('div', 'divide by zero');
  if (typeof a === 'bigint' && typeof b === 'bigint' && a % b === 0n) return a / b;
  return num(toFloat(a) / toFloat(b));
});
reg('rem', 2, (args) => {
  const a = numArg('rem', args, 0);
  const b = numArg('rem', args, 1);
  const ai = typeof a === 'bigint' ? a : Number.isInteger(a) ? BigInt(a) : undefined;
  const bi = typeof b === 'bigint' ? b : Number.isInteger(b) ? BigInt(b) : undefined;
  if (ai === undefined || bi === undefined) throw builtinErr('rem', 'modulo on floating-point number');
  if (bi === 0n) throw builtinErr('rem', 'modulo by zero');
  return ai % bi;
});
reg('abs', 1, (args) => {
  const a = numArg('abs', args, 0);
  return typeof a === 'bigint' ? (a < 0n ? -a : a) : Math.abs(a);
});
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}
reg('round', 1, (args) => {
  const a = numArg('round', args, 0);
  return typeof a === 'bigint' ? a : num(roundHalfAway(a));
});
reg('ceil', 1, (args) => {
  const a = numArg('ceil', args, 0);
  return typeof a === 'bigint' ? a : num(Math.ceil(a));
});
reg('floor', 1, (args) => {
  const a = numArg('floor', args, 0);
  return typeof a === 'bigint' ? a : num(Math.floor(a));
});
reg('numbers.range', 2, (args) => {
  const a = intArg('numbers.range', args, 0);
  const b = intArg('numbers.range', args, 1);
  const out: Value[] = [];
  if (a <= b) for (let i = a; i <= b; i++) out.push(i);
  else for (let i = a; i >= b; i--) out.push(i);
  return out;
});
reg('numbers.range_step', 3, (args) => {
  const a = intArg('numbers.range_step', args, 0);
  const b = intArg('numbers.range_step', args, 1);
  const s = intArg('numbers.range_step', args, 2);
  if (s <= 0n) throw builtinErr('numbers.range_step', 'step must be a positive integer');
  const out: Value[] = [];
  if (a <= b) for (let i = a; i <= b; i += s) out.push(i);
  else for (let i = a; i >= b; i -= s) out.push(i);
  return out;
});

// ---------- aggregates ----------
reg('count', 1, (args) => {
  const v = args[0];
  if (typeof v === 'string') return BigInt([...v].length);
  if (Array.isArray(v)) return BigInt(v.length);
  if (v instanceof RObject || v instanceof RSet) return BigInt(v.size);
  throw typeErr('count', `operand 1 must be one of {array, object, set, string} but got ${typeName(v)}`);
});
function numbersOf(fn: string, args: Value[]): N[] {
  const xs = collection(fn, args, 0);
  return xs.map((x) => {
    if (!isNumber(x)) throw typeErr(fn, `operand 1 must be one of {array, set} of numbers but got ${typeName(x)}`);
    return x;
  });
}
reg('sum', 1, (args) => {
  let acc: N = 0n;
  for (const x of numbersOf('sum', args)) acc = arith(acc, x, (a, b) => a + b, (a, b) => a + b);
  return acc;
});
reg('product', 1, (args) => {
  let acc: N = 1n;
  for (const x of numbersOf('product', args)) acc = arith(acc, x, (a, b) => a * b, (a, b) => a * b);
  return acc;
});
reg('max', 1, (args) => {
  const xs = collection('max', args, 0);
  if (!xs.length) return undefined;
  return xs.reduce((a, b) => (compare(a, b) >= 0 ? a : b));
});
reg('min', 1, (args) => {
  const xs = collection('min', args, 0);
  if (!xs.length) return undefined;
  return xs.reduce((a, b) => (compare(a, b) <= 0 ? a : b));
});
reg('sort', 1, (args) => {
  const xs = collection('sort', args, 0);
  return [...xs].sort(compare);
});
reg('all', 1, (args) => collection('all', args, 0).every((x) => x === true));
reg('any', 1, (args) => collection('any', args, 0).some((x) => x === true));

// ---------- membership ----------
reg('internal.member_2', 2, ([x, c]) => {
  if (Array.isArray(c)) return c.some((y) => equal(x, y));
  if (c instanceof RSet) return c.has(x);
  if (c instanceof RObject) {
    for (const [, v] of c.entries()) if (equal(v, x)) return true;
    return false;
  }
  return false;
});
reg('internal.member_3', 3, ([k, x, c]) => {
  if (Array.isArray(c)) {
    if (!isNumber(k)) return false;
    const i = Number(k);
    return Number.isInteger(i) && i >= 0 && i < c.length && equal(c[i], x);
  }
  if (c instanceof RSet) return c.has(k) && equal(k, x);
  if (c instanceof RObject) {
    const v = c.get(k);
    return v !== undefined && equal(v, x);
  }
  return false;
});

// ---------- types ----------
reg('is_number', 1, ([v]) => (isNumber(v) ? true : false));
reg('is_string', 1, ([v]) => typeof v === 'string');
reg('is_boolean', 1, ([v]) => typeof v === 'boolean');
reg('is_array', 1, ([v]) => Array.isArray(v));
reg('is_set', 1, ([v]) => v instanceof RSet);
reg('is_object', 1, ([v]) => v instanceof RObject);
reg('is_null', 1, ([v]) => v === null);
reg('type_name', 1, ([v]) => typeName(v));

// ---------- casts ----------
reg('to_number', 1, (args) => {
  const v = args[0];
  if (v === null) return 0n;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  if (isNumber(v)) return v;
  if (typeof v === 'string') {
    const s = v;
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(s)) {
      if (/^[+-]?(inf|infinity|nan)$/i.test(s)) throw typeErr('to_number', `operand 1 must be a valid number string but got ${s}`);
      if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(s)) return BigInt(s.replace('+', ''));
      throw builtinErr('to_number', `strconv.ParseFloat: parsing ${JSON.stringify(s)}: invalid syntax`);
    }
    if (/^[+-]?\d+$/.test(s)) return BigInt(s.replace('+', ''));
    return num(Number(s));
  }
  throw typeErr('to_number', `operand 1 must be one of {null, boolean, number, string} but got ${typeName(v)}`);
});
reg('cast_array', 1, ([v]) => (Array.isArray(v) ? v : v instanceof RSet ? v.sorted() : undefined));
reg('cast_set', 1, ([v]) => (Array.isArray(v) ? RSet.from(v) : v instanceof RSet ? v : undefined));
reg('cast_string', 1, ([v]) => (typeof v === 'string' ? v : undefined));
reg('cast_boolean', 1, ([v]) => (typeof v === 'boolean' ? v : undefined));
reg('cast_null', 1, ([v]) => (v === null ? null : undefined));
reg('cast_object', 1, ([v]) => (v instanceof RObject ? v : undefined));

// ---------- sets ----------
reg('and', 2, (args) => {
  const a = set('and', args, 0);
  const b = set('and', args, 1);
  const out = new RSet();
  for (const v of a.values()) if (b.has(v)) out.add(v);
  return out;
});
reg('or', 2, (args) => {
  const a = set('or', args, 0);
  const b = set('or', args, 1);
  const out = new RSet();
  for (const v of a.values()) out.add(v);
  for (const v of b.values()) out.add(v);
  return out;
});
reg('intersection', 1, (args) => {
  const s = set('intersection', args, 0);
  let out: RSet | undefined;
  for (const x of s.values()) {
    if (!(x instanceof RSet)) throw typeErr('intersection', `operand 1 must be set of sets but got set containing ${typeName(x)}`);
    if (!out) out = RSet.from(x.values());
    else {
      const n = new RSet();
      for (const v of out.values()) if (x.has(v)) n.add(v);
      out = n;
    }
  }
  return out ?? new RSet();
});
reg('union', 1, (args) => {
  const s = set('union', args, 0);
  const out = new RSet();
  for (const x of s.values()) {
    if (!(x instanceof RSet)) throw typeErr('union', `operand 1 must be set of sets but got set containing ${typeName(x)}`);
    for (const v of x.values()) out.add(v);
  }
  return out;
});

// ---------- arrays ----------
reg('array.concat', 2, (args) => [...arr('array.concat', args, 0), ...arr('array.concat', args, 1)]);
reg('array.slice', 3, (args) => {
  const a = arr('array.slice', args, 0);
  let s = Number(intArg('array.slice', args, 1));
  let e = Number(intArg('array.slice', args, 2));
  if (s < 0) s = 0;
  if (e > a.length) e = a.length;
  if (s >= e) return [];
  return a.slice(s, e);
});
reg('array.reverse', 1, (args) => [...arr('array.reverse', args, 0)].reverse());
reg('array.flatten', 1, (args) => {
  const out: Value[] = [];
  for (const x of arr('array.flatten', args, 0)) if (Array.isArray(x)) out.push(...x);
  else out.push(x);
  return out;
});

// ---------- objects ----------
reg('object.get', 3, (args) => {
  const o = obj('object.get', args, 0);
  const key = args[1];
  if (Array.isArray(key)) {
    let cur: Value = o;
    for (const k of key) {
      let nx: Value | undefined;
      if (cur instanceof RObject) nx = cur.get(k);
      else if (Array.isArray(cur) && isNumber(k)) {
        const i = Number(k);
        nx = Number.isInteger(i) && i >= 0 && i < cur.length ? cur[i] : undefined;
      } else if (cur instanceof RSet) nx = cur.has(k) ? k : undefined;
      if (nx === undefined) return args[2];
      cur = nx;
    }
    return cur;
  }
  const v = o.get(key);
  return v === undefined ? args[2] : v;
});
reg('object.keys', 1, (args) => RSet.from(obj('object.keys', args, 0).keys()));
reg('object.remove', 2, (args) => {
  const o = obj('object.remove', args, 0);
  const ks = oneOf('object.remove', args, 1, ['object', 'set', 'array']);
  const rm = new RSet();
  if (ks instanceof RObject) for (const k of ks.keys()) rm.add(k);
  else if (ks instanceof RSet) for (const k of ks.values()) rm.add(k);
  else for (const k of ks as Value[]) rm.add(k);
  const out = new RObject();
  for (const [k, v] of o.entries()) if (!rm.has(k)) out.set(k, v);
  return out;
});
reg('object.filter', 2, (args) => {
  const o = obj('object.filter', args, 0);
  const ks = args[1];
  const keep = new RSet();
  if (ks instanceof RObject) for (const k of ks.keys()) keep.add(k);
  else if (ks instanceof RSet) for (const k of ks.values()) keep.add(k);
  else if (Array.isArray(ks)) for (const k of ks) keep.add(k);
  else throw typeErr('object.filter', `operand 2 must be one of {object, set, array} but got ${typeName(ks)}`);
  const out = new RObject();
  for (const [k, v] of o.entries()) if (keep.has(k)) out.set(k, v);
  return out;
});
export function mergeObjects(a: RObject, b: RObject): RObject {
  const out = new RObject();
  for (const [k, v] of a.entries()) out.set(k, v);
  for (const [k, v] of b.entries()) {
    const x = out.get(k);
    if (x instanceof RObject && v instanceof RObject) out.set(k, mergeObjects(x, v));
    else out.set(k, v);
  }
  return out;
}
reg('object.union', 2, (args) => mergeObjects(obj('object.union', args, 0), obj('object.union', args, 1)));
reg('object.union_n', 1, (args) => {
  const xs = arr('object.union_n', args, 0);
  let out = new RObject();
  for (const x of xs) {
    if (!(x instanceof RObject)) throw typeErr('object.union_n', `operand 1 must be array of objects but got array containing ${typeName(x)}`);
    out = mergeObjects(out, x);
  }
  return out;
});
function isSubset(sup: Value, sub: Value): boolean {
  if (sup instanceof RObject && sub instanceof RObject) {
    for (const [k, v] of sub.entries()) {
      const x = sup.get(k);
      if (x === undefined) return false;
      if (x instanceof RObject && v instanceof RObject) {
        if (!isSubset(x, v)) return false;
      } else if (x instanceof RSet && v instanceof RSet) {
        if (!isSubset(x, v)) return false;
      } else if (Array.isArray(x) && Array.isArray(v)) {
        if (!isSubset(x, v)) return false;
      } else if (!equal(x, v)) return false;
    }
    return true;
  }
  if (sup instanceof RSet && sub instanceof RSet) {
    for (const v of sub.values()) if (!sup.has(v)) return false;
    return true;
  }
  if (Array.isArray(sup) && Array.isArray(sub)) {
    // contiguous subsequence
    if (sub.length === 0) return true;
    for (let i = 0; i + sub.length <= sup.length; i++) {
      let ok = true;
      for (let j = 0; j < sub.length; j++) if (!equal(sup[i + j], sub[j])) {
        ok = false;
        break;
      }
      if (ok) return true;
    }
    return false;
  }
  if (Array.isArray(sup) && sub instanceof RSet) {
    for (const v of sub.values()) if (!sup.some((x) => equal(x, v))) return false;
    return true;
  }
  if (sup instanceof RSet && Array.isArray(sub)) {
    for (const v of sub) if (!sup.has(v)) return false;
    return true;
  }
  return false;
}
reg('object.subset', 2, (args) => {
  const a = oneOf('object.subset', args, 0, ['object', 'set', 'array']);
  const b = oneOf('object.subset', args, 1, ['object', 'set', 'array']);
  if (a instanceof RObject && !(b instanceof RObject)) throw typeErr('object.subset', `operand 2 must be object but got ${typeName(b)}`);
  if (!(a instanceof RObject) && b instanceof RObject) throw typeErr('object.subset', `operand 2 must be one of {set, array} but got object`);
  if (a instanceof RSet && Array.isArray(b)) throw typeErr('object.subset', `operand 2 must be set but got array`);
  return isSubset(a, b);
});

// ---------- bits ----------
reg('bits.and', 2, (a) => intArg('bits.and', a, 0) & intArg('bits.and', a, 1));
reg('bits.or', 2, (a) => intArg('bits.or', a, 0) | intArg('bits.or', a, 1));
reg('bits.xor', 2, (a) => intArg('bits.xor', a, 0) ^ intArg('bits.xor', a, 1));
reg('bits.negate', 1, (a) => ~intArg('bits.negate', a, 0));
reg('bits.lsh', 2, (a) => {
  const s = intArg('bits.lsh', a, 1);
  if (s < 0n) throw typeErr('bits.lsh', 'operand 2 must be an unsigned integer number but got a negative integer');
  return intArg('bits.lsh', a, 0) << s;
});
reg('bits.rsh', 2, (a) => {
  const s = intArg('bits.rsh', a, 1);
  if (s < 0n) throw typeErr('bits.rsh', 'operand 2 must be an unsigned integer number but got a negative integer');
  return intArg('bits.rsh', a, 0) >> s;
});

// ---------- walk / misc ----------
reg(
  'walk',
  1,
  ([v]) => {
    const out: Value[] = [];
    const rec = (path: Value[], x: Value): void => {
      out.push([path.slice(), x]);
      if (Array.isArray(x)) x.forEach((y, i) => rec([...path, BigInt(i)], y));
      else if (x instanceof RObject) for (const [k, y] of x.sortedEntries()) rec([...path, k], y);
      else if (x instanceof RSet) for (const y of x.sorted()) rec([...path, y], y);
    };
    rec([], v);
    return out;
  },
  true,
);
reg('print', -1, (args, ctx) => {
  const parts = args.map((a) => (typeof a === 'string' ? a : toRegoText(a)));
  ctx.print?.(parts.join(' '));
  return true;
});
reg('trace', 1, (args) => {
  str('trace', args, 0);
  return true;
});
// Like OPA used as a library: the runtime document the embedder configured, else {}.
reg('opa.runtime', 0, (_a, ctx) => ctx.runtime ?? new RObject());
reg('rand.intn', 2, (args, ctx) => {
  const s = str('rand.intn', args, 0);
  const n = intArg('rand.intn', args, 1);
  const key = `rand.intn:${s}:${n}`;
  const c = ctx.cache.get(key);
  if (c !== undefined) return c;
  const v = n === 0n ? 0n : BigInt(Math.floor(Math.random() * Number(n < 0n ? -n : n)));
  ctx.cache.set(key, v);
  return v;
});
function reach(fn: string, args: Value[]): [RObject, Value[]] {
  const g = obj(fn, args, 0);
  const initial = collection(fn, args, 1);
  return [g, initial];
}
function neighbours(g: RObject, n: Value): Value[] {
  const e = g.get(n);
  if (e === undefined || e === null) return [];
  if (Array.isArray(e)) return e;
  if (e instanceof RSet) return e.sorted();
  return [];
}
reg('graph.reachable', 2, (args) => {
  const [g, initial] = reach('graph.reachable', args);
  const seen = new RSet();
  const stack = [...initial];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n) || !g.has(n)) continue;
    seen.add(n);
    for (const m of neighbours(g, n)) stack.push(m);
  }
  return seen;
});
reg('graph.reachable_paths', 2, (args) => {
  const [g, initial] = reach('graph.reachable_paths', args);
  const out = new RSet();
  // Depth-first from each edge of each initial node; `reached` is shared by the walk that
  // starts at one edge, and a path ends at a node outside the graph, a node without edges,
  // or before a neighbour that was already reached.
  const build = (root: Value, path: Value[], reached: RSet): void => {
    if (!g.has(root)) {
      if (path.length) out.add(path);
      return;
    }
    const p2 = [...path, root];
    const ns = neighbours(g, root);
    if (!ns.length) {
      out.add(p2);
      return;
    }
    for (const nb of ns) {
      if (reached.has(nb)) out.add(p2);
      else {
        reached.add(root);
        build(nb, p2, reached);
      }
    }
  };
  for (const n of initial) {
    if (!g.has(n)) continue;
    const ns = neighbours(g, n);
    if (!ns.length) {
      out.add([n]);
      continue;
    }
    for (const nb of ns) build(nb, [n], RSet.from([n]));
  }
  return out;
});
reg('format_int', 2, (args) => {
  const n = numArg('format_int', args, 0);
  const b = numArg('format_int', args, 1);
  const base = Number(b);
  if (![2, 8, 10, 16].includes(base)) throw typeErr('format_int', 'operand 2 must be one of {2, 8, 10, 16}');
  let i: bigint;
  if (typeof n === 'bigint') i = n;
  else i = BigInt(Math.trunc(n));
  return i.toString(base);
});
