/** String, regex (RE2 via re2js), glob and sprintf built-ins. */
import { RE2JS } from 're2js';
import { builtinErr, typeErr } from '../errors.js';
import { formatNumber, isNumber, RObject, RSet, toRegoText, typeName, type Value } from '../value.js';
import { intArg, numArg, reg, str, strOrArrayOfStrings, oneOf } from './registry.js';

const runes = (s: string): string[] => [...s];

reg('concat', 2, (args) => {
  const d = str('concat', args, 0);
  const v = args[1];
  let xs: Value[];
  if (Array.isArray(v)) xs = v;
  else if (v instanceof RSet) xs = v.sorted();
  else throw typeErr('concat', `operand 2 must be one of {set, array} but got ${typeName(v)}`);
  return xs
    .map((x) => {
      if (typeof x !== 'string') throw typeErr('concat', `operand 2 must be one of {set, array} of strings but got ${typeName(x)}`);
      return x;
    })
    .join(d);
});
reg('contains', 2, (a) => str('contains', a, 0).includes(str('contains', a, 1)));
reg('startswith', 2, (a) => str('startswith', a, 0).startsWith(str('startswith', a, 1)));
reg('endswith', 2, (a) => str('endswith', a, 0).endsWith(str('endswith', a, 1)));
reg('lower', 1, (a) => str('lower', a, 0).toLowerCase());
reg('upper', 1, (a) => str('upper', a, 0).toUpperCase());
reg('indexof', 2, (a) => {
  const s = str('indexof', a, 0);
  const sub = str('indexof', a, 1);
  const i = s.indexOf(sub);
  if (i < 0) return -1n;
  return BigInt(runes(s.slice(0, i)).length);
});
reg('indexof_n', 2, (a) => {
  const s = str('indexof_n', a, 0);
  const sub = str('indexof_n', a, 1);
  const out: Value[] = [];
  if (sub === '') return out;
  let i = s.indexOf(sub);
  while (i >= 0) {
    out.push(BigInt(runes(s.slice(0, i)).length));
    i = s.indexOf(sub, i + 1);
  }
  return out;
});
reg('replace', 3, (a) => {
  const s = str('replace', a, 0);
  const old = str('replace', a, 1);
  const nw = str('replace', a, 2);
  if (old === '') {
    // Go: inserts at every rune boundary
    const rs = runes(s);
    return nw + rs.map((r) => r + nw).join('');
  }
  return s.split(old).join(nw);
});
reg('strings.replace_n', 2, (a) => {
  const pats = oneOf('strings.replace_n', a, 0, ['object']) as RObject;
  let s = str('strings.replace_n', a, 1);
  const pairs: [string, string][] = [];
  for (const [k, v] of pats.sortedEntries()) {
    if (typeof k !== 'string') throw typeErr('strings.replace_n', `operand 1 keys must be strings but got ${typeName(k)}`);
    if (typeof v !== 'string') throw typeErr('strings.replace_n', `operand 1 values must be strings but got ${typeName(v)}`);
    pairs.push([k, v]);
  }
  // Go's strings.NewReplacer: at each position, first matching old string in argument order
  let out = '';
  let i = 0;
  outer: while (i < s.length) {
    for (const [o, n] of pairs) {
      if (o !== '' && s.startsWith(o, i)) {
        out += n;
        i += o.length;
        continue outer;
      }
    }
    out += s[i];
    i++;
  }
  s = out;
  return s;
});
reg('strings.reverse', 1, (a) => runes(str('strings.reverse', a, 0)).reverse().join(''));
reg('strings.count', 2, (a) => {
  const s = str('strings.count', a, 0);
  const sub = str('strings.count', a, 1);
  if (sub === '') return BigInt(runes(s).length + 1);
  return BigInt(s.split(sub).length - 1);
});
reg('strings.any_prefix_match', 2, (a) => {
  const ss = strOrArrayOfStrings('strings.any_prefix_match', a, 0);
  const ps = strOrArrayOfStrings('strings.any_prefix_match', a, 1);
  return ss.some((s) => ps.some((p) => s.startsWith(p)));
});
reg('strings.any_suffix_match', 2, (a) => {
  const ss = strOrArrayOfStrings('strings.any_suffix_match', a, 0);
  const ps = strOrArrayOfStrings('strings.any_suffix_match', a, 1);
  return ss.some((s) => ps.some((p) => s.endsWith(p)));
});
reg('split', 2, (a) => {
  const s = str('split', a, 0);
  const d = str('split', a, 1);
  if (d === '') return runes(s);
  return s.split(d);
});
reg('substring', 3, (a) => {
  const s = str('substring', a, 0);
  const start = Number(intArg('substring', a, 1));
  const len = Number(intArg('substring', a, 2));
  const rs = runes(s);
  if (start < 0) throw builtinErr('substring', 'negative offset');
  if (start >= rs.length) return '';
  if (len < 0) return rs.slice(start).join('');
  return rs.slice(start, start + len).join('');
});
function trimSet(s: string, cut: string, left: boolean, right: boolean): string {
  const cs = new Set(runes(cut));
  const rs = runes(s);
  let i = 0;
  let j = rs.length;
  if (left) while (i < j && cs.has(rs[i])) i++;
  if (right) while (j > i && cs.has(rs[j - 1])) j--;
  return rs.slice(i, j).join('');
}
reg('trim', 2, (a) => trimSet(str('trim', a, 0), str('trim', a, 1), true, true));
reg('trim_left', 2, (a) => trimSet(str('trim_left', a, 0), str('trim_left', a, 1), true, false));
reg('trim_right', 2, (a) => trimSet(str('trim_right', a, 0), str('trim_right', a, 1), false, true));
reg('trim_prefix', 2, (a) => {
  const s = str('trim_prefix', a, 0);
  const p = str('trim_prefix', a, 1);
  return s.startsWith(p) ? s.slice(p.length) : s;
});
reg('trim_suffix', 2, (a) => {
  const s = str('trim_suffix', a, 0);
  const p = str('trim_suffix', a, 1);
  return p !== '' && s.endsWith(p) ? s.slice(0, s.length - p.length) : s;
});
const SPACE = '\t\n\v\f\r \u0085\u00A0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000';
reg('trim_space', 1, (a) => trimSet(str('trim_space', a, 0), SPACE, true, true));

// ---------- sprintf (Go fmt subset) ----------
export function goFormat(fmt: string, args: Value[]): string {
  let out = '';
  let ai = 0;
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const m = /^([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])/.exec(fmt.slice(i + 1));
    if (!m) {
      out += '%!(NOVERB)';
      continue;
    }
    i += m[0].length;
    const flags = m[1];
    const width = m[2] ? parseInt(m[2], 10) : undefined;
    const prec = m[3] !== undefined ? parseInt(m[3], 10) : m[0].includes('.') ? 0 : undefined;
    const verb = m[4];
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (ai >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const v = args[ai++];
    let s: string;
    switch (verb) {
      case 'd':
        if (typeof v === 'bigint') s = v.toString();
        else if (typeof v === 'number') s = `%!d(float64=${formatNumber(v)})`;
        else s = `%!d(${goTypeOf(v)}=${fmtV(v)})`;
        break;
      case 's':
        s = typeof v === 'string' ? v : fmtV(v);
        break;
      case 'v':
        s = fmtV(v);
        break;
      case 'q':
        s = typeof v === 'string' ? JSON.stringify(v) : fmtV(v);
        break;
      case 't':
        s = typeof v === 'boolean' ? String(v) : `%!t(${goTypeOf(v)}=${fmtV(v)})`;
        break;
      case 'f':
      case 'F':
        if (isNumber(v)) s = Number(v).toFixed(prec ?? 6);
        else s = `%!f(${goTypeOf(v)}=${fmtV(v)})`;
        break;
      case 'e':
      case 'E': {
        if (isNumber(v)) {
          s = Number(v).toExponential(prec ?? 6).replace(/e([+-])(\d)$/, 'e$10$2');
          if (verb === 'E') s = s.toUpperCase();
        } else s = `%!e(${goTypeOf(v)}=${fmtV(v)})`;
        break;
      }
      case 'g':
      case 'G':
        if (isNumber(v)) s = prec !== undefined ? String(Number(Number(v).toPrecision(prec))) : typeof v === 'bigint' ? v.toString() : String(v);
        else s = `%!g(${goTypeOf(v)}=${fmtV(v)})`;
        break;
      case 'x':
      case 'X': {
        if (typeof v === 'bigint') s = (v < 0n ? '-' + (-v).toString(16) : v.toString(16));
        else if (typeof v === 'string') s = Buffer.from(v, 'utf8').toString('hex');
        else if (typeof v === 'number') s = fmtV(v);
        else s = fmtV(v);
        if (verb === 'X') s = s.toUpperCase();
        break;
      }
      case 'o':
        s = typeof v === 'bigint' ? v.toString(8) : fmtV(v);
        break;
      case 'b':
        s = typeof v === 'bigint' ? v.toString(2) : fmtV(v);
        break;
      case 'c':
        s = typeof v === 'bigint' ? String.fromCodePoint(Number(v)) : fmtV(v);
        break;
      default:
        s = `%!${verb}(${goTypeOf(v)}=${fmtV(v)})`;
    }
    if (flags.includes('+') && isNumber(v) && !s.startsWith('-') && 'dfeEgG'.includes(verb)) s = '+' + s;
    if (width !== undefined && s.length < width) {
      if (flags.includes('-')) s = s + ' '.repeat(width - s.length);
      else if (flags.includes('0') && isNumber(v)) {
        const neg = s.startsWith('-') || s.startsWith('+');
        s = neg ? s[0] + '0'.repeat(width - s.length) + s.slice(1) : '0'.repeat(width - s.length) + s;
      } else s = ' '.repeat(width - s.length) + s;
    }
    out += s;
  }
  if (ai < args.length) {
    out += '%!(EXTRA ' + args.slice(ai).map((a) => `${goTypeOf(a)}=${fmtV(a)}`).join(', ') + ')';
  }
  return out;
}

function goTypeOf(v: Value): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return 'float64';
  if (typeof v === 'boolean') return 'bool';
  return 'ast.Value';
}

function fmtV(v: Value): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number') return formatNumber(v);
  return toRegoText(v);
}

reg('sprintf', 2, (a) => {
  const f = str('sprintf', a, 0);
  const xs = a[1];
  if (!Array.isArray(xs)) throw typeErr('sprintf', `operand 2 must be array but got ${typeName(xs)}`);
  return goFormat(f, xs);
});

// ---------- regex ----------
const reCache = new Map<string, RE2JS>();
export function compileRe(fn: string, pat: string): RE2JS {
  let r = reCache.get(pat);
  if (r) return r;
  try {
    r = RE2JS.compile(pat);
  } catch (e) {
    throw builtinErr(fn, `error parsing regexp: ${(e as Error).message}`);
  }
  if (reCache.size > 1000) reCache.clear();
  reCache.set(pat, r);
  return r;
}

reg('regex.match', 2, (a) => compileRe('regex.match', str('regex.match', a, 0)).test(str('regex.match', a, 1)));
reg('re_match', 2, (a) => compileRe('re_match', str('re_match', a, 0)).test(str('re_match', a, 1)));
reg('regex.is_valid', 1, ([p]) => {
  if (typeof p !== 'string') return false;
  try {
    RE2JS.compile(p);
    return true;
  } catch {
    return false;
  }
});
reg('regex.split', 2, (a) => {
  const r = compileRe('regex.split', str('regex.split', a, 0));
  const s = str('regex.split', a, 1);
  return goSplit(r, s);
});
function allMatches(r: RE2JS, s: string, n: number): { idx: number[]; groups: (string | null)[]; named: Record<string, string | null> }[] {
  const out: { idx: number[]; groups: (string | null)[]; named: Record<string, string | null> }[] = [];
  const m = r.matcher(s);
  let pos = 0;
  let prevEnd = -1;
  while ((n < 0 || out.length < n) && pos <= s.length && m.find(pos)) {
    const st = m.start();
    const en = m.end();
    if (st === en && st === prevEnd) {
      // Go skips an empty match adjacent to the previous match
      pos = st + 1;
      if (pos > s.length) break;
      continue;
    }
    const groups: (string | null)[] = [];
    for (let g = 0; g <= m.groupCount(); g++) groups.push(m.group(g));
    const names = m.getNamedGroups() as unknown as Record<string, unknown>;
    const named: Record<string, string | null> = {};
    for (const k of Object.keys(names)) named[k] = m.group(k);
    out.push({ idx: [st, en], groups, named });
    prevEnd = en;
    pos = en > st ? en : en + 1;
  }
  return out;
}
function goSplit(r: RE2JS, s: string): string[] {
  if (s === '') return [''];
  const ms = allMatches(r, s, -1);
  const out: string[] = [];
  let beg = 0;
  for (const m of ms) {
    if (m.idx[1] === 0) continue;
    out.push(s.slice(beg, m.idx[0]));
    beg = m.idx[1];
  }
  out.push(s.slice(beg));
  return out;
}
reg('regex.find_n', 3, (a) => {
  const r = compileRe('regex.find_n', str('regex.find_n', a, 0));
  const s = str('regex.find_n', a, 1);
  const n = Number(intArg('regex.find_n', a, 2));
  return allMatches(r, s, n).map((m) => m.groups[0] ?? '');
});
reg('regex.find_all_string_submatch_n', 3, (a) => {
  const r = compileRe('regex.find_all_string_submatch_n', str('regex.find_all_string_submatch_n', a, 0));
  const s = str('regex.find_all_string_submatch_n', a, 1);
  const n = Number(intArg('regex.find_all_string_submatch_n', a, 2));
  return allMatches(r, s, n).map((m) => m.groups.map((g) => g ?? ''));
});
reg('regex.replace', 3, (a) => {
  const s = str('regex.replace', a, 0);
  const r = compileRe('regex.replace', str('regex.replace', a, 1));
  const repl = str('regex.replace', a, 2);
  const ms = allMatches(r, s, -1);
  let out = '';
  let last = 0;
  for (const m of ms) {
    out += s.slice(last, m.idx[0]) + expandTemplate(repl, m.groups, m.named);
    last = m.idx[1];
  }
  return out + s.slice(last);
});
function expandTemplate(t: string, groups: (string | null)[], named: Record<string, string | null>): string {
  let out = '';
  for (let i = 0; i < t.length; i++) {
    if (t[i] !== '$') {
      out += t[i];
      continue;
    }
    if (t[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    let name: string;
    let m = /^\{([A-Za-z0-9_]+)\}/.exec(t.slice(i + 1));
    if (m) name = m[1];
    else {
      m = /^[A-Za-z0-9_]+/.exec(t.slice(i + 1));
      if (!m) {
        out += '$';
        continue;
      }
      name = m[0];
    }
    i += m[0].length;
    if (/^\d+$/.test(name)) out += groups[parseInt(name, 10)] ?? '';
    else out += named[name] ?? '';
  }
  return out;
}
reg('regex.template_match', 4, (a) => {
  const tpl = str('regex.template_match', a, 0);
  const s = str('regex.template_match', a, 1);
  const ds = str('regex.template_match', a, 2);
  const de = str('regex.template_match', a, 3);
  // build regex: literal parts quoted, delimited parts raw
  let pat = '^';
  let i = 0;
  while (i < tpl.length) {
    const j = tpl.indexOf(ds, i);
    if (j < 0) {
      pat += RE2JS.quote(tpl.slice(i));
      break;
    }
    pat += RE2JS.quote(tpl.slice(i, j));
    const k = tpl.indexOf(de, j + ds.length);
    if (k < 0) throw builtinErr('regex.template_match', `unbalanced braces in template`);
    pat += '(?:' + tpl.slice(j + ds.length, k) + ')';
    i = k + de.length;
  }
  pat += '$';
  return compileRe('regex.template_match', pat).test(s);
});
reg('regex.globs_match', 2, (a) => {
  const g1 = str('regex.globs_match', a, 0);
  const g2 = str('regex.globs_match', a, 1);
  return globsIntersect(g1, g2);
});

/**
 * Intersection of two "glob-like" regexes (literals, escapes, `.`, `[...]` classes, each
 * optionally followed by `*`, `+` or `?`), as OPA's regex.globs_match defines it: a
 * product-automaton search over the two token sequences.
 */
interface CharSet {
  any?: boolean;
  neg?: boolean;
  ranges: [number, number][];
}
interface GTok {
  set: CharSet;
  star: boolean;
}

function globErr(input: string, pos: number, what: string): never {
  throw builtinErr('regex.globs_match', `input:${input}, pos:${pos}, ${what}: the input provided is invalid`);
}

function tokenizeGlobRe(p: string): GTok[] {
  const cps = [...p];
  const toks: GTok[] = [];
  let i = 0;
  while (i < cps.length) {
    const c = cps[i];
    let set: CharSet;
    if (c === '.') {
      set = { any: true, ranges: [] };
      i++;
    } else if (c === '\\') {
      if (i + 1 >= cps.length) globErr(p, i + 1, 'trailing backslash');
      const cp = cps[i + 1].codePointAt(0)!;
      set = { ranges: [[cp, cp]] };
      i += 2;
    } else if (c === '[') {
      let j = i + 1;
      const ranges: [number, number][] = [];
      let neg = false;
      if (cps[j] === '^') {
        neg = true;
        j++;
      }
      let closed = false;
      while (j < cps.length) {
        let a = cps[j];
        if (a === ']') {
          closed = true;
          break;
        }
        if (a === '\\') {
          j++;
          a = cps[j] ?? '';
        }
        let lo = a.codePointAt(0) ?? 0;
        let hi = lo;
        if (cps[j + 1] === '-' && cps[j + 2] !== undefined && cps[j + 2] !== ']') {
          let b = cps[j + 2];
          let step = 3;
          if (b === '\\') {
            b = cps[j + 3] ?? '';
            step = 4;
          }
          hi = b.codePointAt(0) ?? lo;
          j += step;
        } else j++;
        if (hi < lo) [lo, hi] = [hi, lo];
        ranges.push([lo, hi]);
      }
      if (!closed) globErr(p, cps.length, "set-open '[' with no closing ']'");
      set = { neg, ranges };
      i = j + 1;
    } else if (c === ']') {
      globErr(p, i + 1, "set-close ']' with no preceding '['");
    } else if (c === '*' || c === '+' || c === '?') {
      globErr(p, i + 1, `quantifier '${c}' with nothing to repeat`);
    } else {
      const cp = c.codePointAt(0)!;
      set = { ranges: [[cp, cp]] };
      i++;
    }
    const q = cps[i];
    if (q === '*') {
      toks.push({ set, star: true });
      i++;
    } else if (q === '+') {
      toks.push({ set, star: false }, { set, star: true });
      i++;
    } else if (q === '?') {
      // zero or one: approximated as zero or more (same intersection for single-char sets in practice)
      toks.push({ set, star: true });
      i++;
    } else toks.push({ set, star: false });
  }
  return toks;
}

function inSet(s: CharSet, cp: number): boolean {
  if (s.any) return true;
  const hit = s.ranges.some(([a, b]) => cp >= a && cp <= b);
  return s.neg ? !hit : hit;
}

function setsIntersect(a: CharSet, b: CharSet): boolean {
  if (a.any) return b.any || b.neg || b.ranges.length > 0;
  if (b.any) return a.neg || a.ranges.length > 0;
  const candidates = new Set<number>([0, 0x10ffff]);
  for (const s of [a, b]) for (const [lo, hi] of s.ranges) for (const x of [lo - 1, lo, hi, hi + 1]) if (x >= 0 && x <= 0x10ffff) candidates.add(x);
  for (const cp of candidates) if (inSet(a, cp) && inSet(b, cp)) return true;
  return false;
}

function globsIntersect(a: string, b: string): boolean {
  const ta = tokenizeGlobRe(a);
  const tb = tokenizeGlobRe(b);
  const seen = new Set<number>();
  const W = tb.length + 1;
  const stack: [number, number][] = [[0, 0]];
  while (stack.length) {
    const [i, j] = stack.pop()!;
    const key = i * W + j;
    if (seen.has(key)) continue;
    seen.add(key);
    if (i === ta.length && j === tb.length) return true;
    if (i < ta.length && ta[i].star) stack.push([i + 1, j]);
    if (j < tb.length && tb[j].star) stack.push([i, j + 1]);
    if (i < ta.length && j < tb.length && setsIntersect(ta[i].set, tb[j].set)) {
      stack.push([ta[i].star ? i : i + 1, tb[j].star ? j : j + 1]);
    }
  }
  return false;
}

// ---------- glob ----------
const globCache = new Map<string, RegExp>();
export function globToRegExp(pattern: string, delims: string[] | null): RegExp {
  const key = pattern + '\u0000' + (delims ? delims.join('\u0001') : '\u0002');
  let r = globCache.get(key);
  if (r) return r;
  const notDelim = delims && delims.length ? '[^' + delims.map(escClass).join('') + ']' : '[\\s\\S]';
  let i = 0;
  const parse = (inAlt: boolean): string => {
    let out = '';
    while (i < pattern.length) {
      const c = pattern[i];
      if (c === '\\') {
        i++;
        if (i >= pattern.length) throw new Error('unexpected end of input');
        out += escRe(pattern[i]);
        i++;
      } else if (c === '*') {
        if (pattern[i + 1] === '*') {
          out += '[\\s\\S]*';
          i += 2;
        } else {
          out += notDelim + '*';
          i++;
        }
      } else if (c === '?') {
        out += notDelim;
        i++;
      } else if (c === '[') {
        const j = pattern.indexOf(']', i + 1);
        if (j < 0) throw new Error('unexpected end of input');
        let body = pattern.slice(i + 1, j);
        let neg = false;
        if (body.startsWith('!')) {
          neg = true;
          body = body.slice(1);
        }
        out += '[' + (neg ? '^' : '') + body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^') + ']';
        i = j + 1;
      } else if (c === '{') {
        i++;
        const alts: string[] = [];
        for (;;) {
          alts.push(parse(true));
          if (pattern[i] === ',') {
            i++;
            continue;
          }
          if (pattern[i] === '}') {
            i++;
            break;
          }
          throw new Error('unexpected end of input');
        }
        out += '(?:' + alts.join('|') + ')';
      } else if (inAlt && (c === ',' || c === '}')) {
        return out;
      } else {
        out += escRe(c);
        i++;
      }
    }
    return out;
  };
  const src = parse(false);
  r = new RegExp('^' + src + '$', 'u');
  if (globCache.size > 1000) globCache.clear();
  globCache.set(key, r);
  return r;
}
function escRe(c: string): string {
  return c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
function escClass(c: string): string {
  return c.replace(/[\\\]^-]/g, '\\$&');
}
reg('glob.match', 3, (a) => {
  const pat = str('glob.match', a, 0);
  const d = a[1];
  let delims: string[] | null;
  if (d === null) delims = null;
  else if (Array.isArray(d)) {
    delims = d.map((x) => {
      if (typeof x !== 'string') throw typeErr('glob.match', `operand 2 must be array of strings but got ${typeName(x)}`);
      return x;
    });
    if (delims.length === 0) delims = ['.'];
  } else throw typeErr('glob.match', `operand 2 must be one of {array, null} but got ${typeName(d)}`);
  const s = str('glob.match', a, 2);
  let r: RegExp;
  try {
    r = globToRegExp(pat, delims);
  } catch (e) {
    throw builtinErr('glob.match', (e as Error).message);
  }
  return r.test(s);
});
reg('glob.quote_meta', 1, (a) => str('glob.quote_meta', a, 0).replace(/[*?\\[\]{}]/g, '\\$&'));

