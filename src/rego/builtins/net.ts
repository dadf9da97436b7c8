/** net.cidr_* built-ins (IPv4 and IPv6, exact via bigint). */
import { builtinErr, typeErr } from '../errors.js';
import { RObject, RSet, typeName, type Value } from '../value.js';
import { reg, str } from './registry.js';

interface Addr {
  v6: boolean;
  n: bigint;
}
interface Net {
  v6: boolean;
  base: bigint; // network address (masked)
  bits: number;
  ip: bigint; // address as written
}

function parseV4(s: string): bigint | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let n = 0n;
  for (let i = 1; i <= 4; i++) {
    if (m[i].length > 1 && m[i][0] === '0') return undefined;
    const x = parseInt(m[i], 10);
    if (x > 255) return undefined;
    n = (n << 8n) | BigInt(x);
  }
  return n;
}

function parseV6(s: string): bigint | undefined {
  if (s.includes('%')) return undefined;
  let tail4: bigint | undefined;
  let str = s;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    str = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = str.split('::');
  if (dbl.length > 2) return undefined;
  const parse = (p: string) => (p === '' ? [] : p.split(':'));
  const head = parse(dbl[0]);
  const tail = dbl.length === 2 ? parse(dbl[1]) : [];
  const groups = head.length + tail.length;
  if (dbl.length === 1 && groups !== 8) return undefined;
  if (dbl.length === 2 && groups > 7) return undefined;
  const all = [...head, ...Array(8 - groups).fill('0'), ...tail];
  let n = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) n = (n & ~0xffffffffn) | tail4;
  return n;
}

function parseAddr(s: string): Addr | undefined {
  const v4 = parseV4(s);
  if (v4 !== undefined) return { v6: false, n: v4 };
  const v6 = parseV6(s);
  if (v6 !== undefined) {
    return { v6: true, n: v6 };
  }
  return undefined;
}

function parseCidr(s: string): Net | undefined {
  const i = s.indexOf('/');
  if (i < 0) return undefined;
  const a = parseAddr(s.slice(0, i));
  if (!a) return undefined;
  const bs = s.slice(i + 1);
  if (!/^\d+$/.test(bs)) return undefined;
  const bits = parseInt(bs, 10);
  const width = a.v6 ? 128 : 32;
  if (bits > width) return undefined;
  const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
  return { v6: a.v6, base: a.n & mask, bits, ip: a.n };
}

function width(n: { v6: boolean }): number {
  return n.v6 ? 128 : 32;
}
function last(n: Net): bigint {
  return n.base | ((1n << BigInt(width(n) - n.bits)) - 1n);
}

function cidrOrIp(fn: string, s: string): Net {
  const c = parseCidr(s);
  if (c) return c;
  const a = parseAddr(s);
  if (a) return { v6: a.v6, base: a.n, bits: width(a), ip: a.n };
  throw builtinErr(fn, `invalid CIDR address: ${s}`);
}

function mustCidr(fn: string, s: string): Net {
  const c = parseCidr(s);
  if (!c) throw builtinErr(fn, `invalid CIDR address: ${s}`);
  return c;
}

function contains(a: Net, b: Net): boolean {
  if (a.v6 !== b.v6) {
    // IPv4-mapped comparisons are not attempted
    return false;
  }
  return b.base >= a.base && last(b) <= last(a);
}

reg('net.cidr_contains', 2, (args) => {
  const a = mustCidr('net.cidr_contains', str('net.cidr_contains', args, 0));
  const b = cidrOrIp('net.cidr_contains', str('net.cidr_contains', args, 1));
  return contains(a, b);
});
reg('net.cidr_intersects', 2, (args) => {
  const a = mustCidr('net.cidr_intersects', str('net.cidr_intersects', args, 0));
  const b = mustCidr('net.cidr_intersects', str('net.cidr_intersects', args, 1));
  if (a.v6 !== b.v6) return false;
  return a.base <= last(b) && b.base <= last(a);
});
reg('net.cidr_overlap', 2, (args) => {
  const a = mustCidr('net.cidr_overlap', str('net.cidr_overlap', args, 0));
  const b = cidrOrIp('net.cidr_overlap', str('net.cidr_overlap', args, 1));
  return contains(a, b);
});
reg('net.cidr_is_valid', 1, ([s]) => typeof s === 'string' && parseCidr(s) !== undefined);

function fmtAddr(v6: boolean, n: bigint): string {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // longest run of zeros (len >= 2)
  let bestS = -1;
  let bestL = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestL && j - i >= 2) {
      bestS = i;
      bestL = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestS < 0) return hex.join(':');
  return hex.slice(0, bestS).join(':') + '::' + hex.slice(bestS + bestL).join(':');
}

reg('net.cidr_expand', 1, (args) => {
  const c = mustCidr('net.cidr_expand', str('net.cidr_expand', args, 0));
  const count = 1n << BigInt(width(c) - c.bits);
  if (count > 65536n) throw builtinErr('net.cidr_expand', 'CIDR too large to expand');
  const out = new RSet();
  for (let i = 0n; i < count; i++) out.add(fmtAddr(c.v6, c.base + i));
  return out;
});

function entries(fn: string, v: Value, pos: number): [Value, string][] {
  const val = (x: Value): string => {
    if (typeof x === 'string') return x;
    if (Array.isArray(x) && typeof x[0] === 'string') return x[0];
    throw builtinErr(fn, `operand ${pos}: element must be string or non-empty array`);
  };
  if (typeof v === 'string') return [[v, v]];
  if (Array.isArray(v)) return v.map((x, i) => [BigInt(i), val(x)]);
  if (v instanceof RSet) return v.sorted().map((x) => [x, val(x)]);
  if (v instanceof RObject) return v.sortedEntries().map(([k, x]) => [k, val(x)]);
  throw typeErr(fn, `operand ${pos} must be one of {string, array, set, object} but got ${typeName(v)}`);
}

reg('net.cidr_contains_matches', 2, (args) => {
  const fn = 'net.cidr_contains_matches';
  const as = entries(fn, args[0], 1);
  const bs = entries(fn, args[1], 2);
  const out = new RSet();
  for (const [ka, ca] of as) {
    const na = mustCidr(fn, ca);
    for (const [kb, cb] of bs) {
      const nb = cidrOrIp(fn, cb);
      if (contains(na, nb)) out.add([ka, kb]);
    }
  }
  return out;
});

reg('net.cidr_merge', 1, (args) => {
  const fn = 'net.cidr_merge';
  const v = args[0];
  let xs: Value[];
  if (Array.isArray(v)) xs = v;
  else if (v instanceof RSet) xs = v.sorted();
  else throw typeErr(fn, `operand 1 must be one of {array, set} but got ${typeName(v)}`);
  const nets: Net[] = xs.map((x) => {
    if (typeof x !== 'string') throw typeErr(fn, `operand 1 must be one of {array, set} of strings but got ${typeName(x)}`);
    const c = parseCidr(x);
    if (c) return c;
    const a = parseAddr(x);
    if (!a || a.v6) throw builtinErr(fn, `IPv${x.includes(':') ? '6' : '4'} invalid: needs prefix length`);
    return { v6: a.v6, base: a.n, bits: width(a), ip: a.n };
  });
  const out: string[] = [];
  for (const v6 of [false, true]) {
    const ranges = nets
      .filter((n) => n.v6 === v6)
      .map((n) => [n.base, last(n)] as [bigint, bigint])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const merged: [bigint, bigint][] = [];
    for (const r of ranges) {
      const l = merged[merged.length - 1];
      if (l && r[0] <= l[1] + 1n) {
        if (r[1] > l[1]) l[1] = r[1];
      } else merged.push([r[0], r[1]]);
    }
    const w = v6 ? 128 : 32;
    for (const [lo, hi] of merged) {
      let cur = lo;
      while (cur <= hi) {
        let bits = w;
        while (bits > 0) {
          const size = 1n << BigInt(w - bits + 1);
          if (cur % size !== 0n || cur + size - 1n > hi) break;
          bits--;
        }
        out.push(`${fmtAddr(v6, cur)}/${bits}`);
        cur += 1n << BigInt(w - bits);
      }
    }
  }
  return out;
});
