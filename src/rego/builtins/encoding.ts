/** Encoding built-ins: json.*, base64*, hex, urlquery, yaml. */
import { parse as parseYaml, stringify as yamlStringify } from 'yaml';
import { builtinErr, typeErr } from '../errors.js';
import { equal, fromJSON, isNumber, parseJSONExact, RObject, RSet, toJSON, toJSONText, typeName, type Value } from '../value.js';
import { arr, bool, obj, oneOf, reg, str } from './registry.js';

// ---------- json ----------
reg('json.marshal', 1, ([v]) => toJSONText(v));
reg('json.marshal_with_options', 2, (args) => {
  const v = args[0];
  const o = obj('json.marshal_with_options', args, 1);
  let pretty = false;
  let prefix = '';
  let indent = '\t';
  let hasIndent = false;
  let hasPrefix = false;
  for (const [k, x] of o.entries()) {
    if (k === 'pretty') {
      if (typeof x !== 'boolean') throw typeErr('json.marshal_with_options', `opts.pretty must be boolean but got ${typeName(x)}`);
      pretty = x;
    } else if (k === 'prefix') {
      if (typeof x !== 'string') throw typeErr('json.marshal_with_options', `opts.prefix must be string but got ${typeName(x)}`);
      prefix = x;
      hasPrefix = true;
    } else if (k === 'indent') {
      if (typeof x !== 'string') throw typeErr('json.marshal_with_options', `opts.indent must be string but got ${typeName(x)}`);
      indent = x;
      hasIndent = true;
    } else throw typeErr('json.marshal_with_options', `object contained unknown key ${JSON.stringify(k)}`);
  }
  if (!o.has('pretty')) pretty = hasIndent || hasPrefix;
  if (!pretty) return toJSONText(v);
  return prefix + toJSONText(v, indent, prefix);
});
reg('json.unmarshal', 1, (args) => {
  const s = str('json.unmarshal', args, 0);
  try {
    return parseJSONExact(s);
  } catch (e) {
    throw builtinErr('json.unmarshal', (e as Error).message);
  }
});
reg('json.is_valid', 1, ([s]) => {
  if (typeof s !== 'string') return false;
  try {
    parseJSONExact(s);
    return true;
  } catch {
    return false;
  }
});

/** Parse json.filter/json.remove paths: strings "a/b" (with ~0 ~1 escapes) or arrays. */
function jsonPaths(fn: string, v: Value): Value[][] {
  let xs: Value[];
  if (Array.isArray(v)) xs = v;
  else if (v instanceof RSet) xs = v.sorted();
  else throw typeErr(fn, `operand 2 must be one of {set, array} but got ${typeName(v)}`);
  return xs.map((p) => {
    if (typeof p === 'string') {
      const s = p.replace(/^\//, '');
      if (s === '') return [];
      return s.split('/').map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'));
    }
    if (Array.isArray(p)) return p;
    throw typeErr(fn, `operand 2 must be one of {set, array} containing string paths or array of path segments but got ${typeName(p)}`);
  });
}

interface PathTree {
  leaf: boolean;
  kids: Map<string, { key: Value; t: PathTree }>;
}
function buildTree(paths: Value[][]): PathTree {
  const root: PathTree = { leaf: false, kids: new Map() };
  for (const p of paths) {
    let n = root;
    if (p.length === 0) root.leaf = true;
    for (let i = 0; i < p.length; i++) {
      const k = toJSONText(p[i]);
      let c = n.kids.get(k);
      if (!c) n.kids.set(k, (c = { key: p[i], t: { leaf: false, kids: new Map() } }));
      n = c.t;
      if (i === p.length - 1) n.leaf = true;
    }
  }
  return root;
}
function childKey(container: Value, key: Value): Value | undefined {
  if (Array.isArray(container)) {
    let i: number;
    if (typeof key === 'string' && /^\d+$/.test(key)) i = parseInt(key, 10);
    else if (isNumber(key)) i = Number(key);
    else return undefined;
    return BigInt(i);
  }
  if (container instanceof RObject) {
    if (container.has(key)) return key;
    return undefined;
  }
  if (container instanceof RSet) return container.has(key) ? key : undefined;
  return undefined;
}
function filterTree(v: Value, t: PathTree): Value {
  if (t.leaf) return v;
  if (v instanceof RObject) {
    const out = new RObject();
    for (const { key, t: sub } of t.kids.values()) {
      const x = v.get(key);
      if (x !== undefined) out.set(key, filterTree(x, sub));
    }
    return out;
  }
  if (Array.isArray(v)) {
    const out: Value[] = [];
    const idx = [...t.kids.values()]
      .map(({ key, t: sub }) => ({ i: childKey(v, key), sub }))
      .filter((x) => x.i !== undefined && Number(x.i) < v.length)
      .sort((a, b) => Number(a.i) - Number(b.i));
    for (const { i, sub } of idx) out.push(filterTree(v[Number(i)], sub));
    return out;
  }
  if (v instanceof RSet) {
    const out = new RSet();
    for (const { key, t: sub } of t.kids.values()) if (v.has(key)) out.add(filterTree(key, sub));
    return out;
  }
  return v;
}
reg('json.filter', 2, (args) => {
  const o = obj('json.filter', args, 0);
  const paths = jsonPaths('json.filter', args[1]);
  return filterTree(o, buildTree(paths));
});
function removeTree(v: Value, t: PathTree): Value | undefined {
  if (t.leaf) return undefined;
  if (v instanceof RObject) {
    const out = new RObject();
    for (const [k, x] of v.entries()) {
      const sub = t.kids.get(toJSONText(k));
      if (!sub) out.set(k, x);
      else {
        const r = removeTree(x, sub.t);
        if (r !== undefined) out.set(k, r);
      }
    }
    return out;
  }
  if (Array.isArray(v)) {
    const out: Value[] = [];
    v.forEach((x, i) => {
      const sub = t.kids.get(toJSONText(String(i))) ?? t.kids.get(String(i));
      if (!sub) out.push(x);
      else {
        const r = removeTree(x, sub.t);
        if (r !== undefined) out.push(r);
      }
    });
    return out;
  }
  if (v instanceof RSet) {
    const out = new RSet();
    for (const x of v.values()) {
      const sub = t.kids.get(toJSONText(x));
      if (!sub) out.add(x);
      else {
        const r = removeTree(x, sub.t);
        if (r !== undefined) out.add(r);
      }
    }
    return out;
  }
  return v;
}
reg('json.remove', 2, (args) => {
  const o = obj('json.remove', args, 0);
  const paths = jsonPaths('json.remove', args[1]);
  return removeTree(o, buildTree(paths)) ?? new RObject();
});

// json.patch (RFC 6902)
function patchPath(p: Value): Value[] {
  if (typeof p === 'string') {
    if (p === '') return [];
    return p
      .replace(/^\//, '')
      .split('/')
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  }
  if (Array.isArray(p)) return p;
  throw new Error('invalid path');
}
function getAt(doc: Value, path: Value[]): Value | undefined {
  let cur: Value | undefined = doc;
  for (const k of path) {
    if (cur === undefined) return undefined;
    if (Array.isArray(cur)) {
      const i = typeof k === 'string' && /^(0|[1-9]\d*)$/.test(k) ? parseInt(k, 10) : isNumber(k) ? Number(k) : -1;
      cur = i >= 0 && i < cur.length ? cur[i] : undefined;
    } else if (cur instanceof RObject) cur = cur.get(k);
    else if (cur instanceof RSet) cur = cur.has(k) ? k : undefined;
    else return undefined;
  }
  return cur;
}
function setAt(doc: Value, path: Value[], v: Value | undefined, mode: 'add' | 'replace' | 'remove'): Value {
  if (path.length === 0) {
    if (mode === 'remove') throw new Error('cannot remove root');
    return v!;
  }
  const [k, ...rest] = path;
  if (doc instanceof RObject) {
    const out = RObject.from(doc.entries());
    if (rest.length === 0) {
      if (mode === 'remove' || mode === 'replace') {
        if (!out.has(k)) throw new Error('path not found');
      }
      if (mode === 'remove') out.delete(k);
      else out.set(k, v!);
      return out;
    }
    const child = out.get(k);
    if (child === undefined) throw new Error('path not found');
    out.set(k, setAt(child, rest, v, mode));
    return out;
  }
  if (Array.isArray(doc)) {
    const out = doc.slice();
    let i: number;
    if (k === '-' && rest.length === 0 && mode === 'add') i = out.length;
    else if (typeof k === 'string' && /^(0|[1-9]\d*)$/.test(k)) i = parseInt(k, 10);
    else if (isNumber(k)) i = Number(k);
    else throw new Error('invalid array index');
    if (rest.length === 0) {
      if (mode === 'add') {
        if (i > out.length) throw new Error('index out of range');
        out.splice(i, 0, v!);
      } else {
        if (i >= out.length) throw new Error('index out of range');
        if (mode === 'remove') out.splice(i, 1);
        else out[i] = v!;
      }
      return out;
    }
    if (i >= out.length) throw new Error('index out of range');
    out[i] = setAt(out[i], rest, v, mode);
    return out;
  }
  if (doc instanceof RSet) {
    const out = RSet.from(doc.values());
    if (rest.length === 0) {
      if (mode === 'remove') {
        if (!out.has(k)) throw new Error('path not found');
        out.delete(k);
      } else {
        if (!equal(k, v!)) throw new Error('set element must equal its key');
        out.add(v!);
      }
      return out;
    }
    if (!out.has(k)) throw new Error('path not found');
    out.delete(k);
    out.add(setAt(k, rest, v, mode));
    return out;
  }
  throw new Error('path not found');
}
reg('json.patch', 2, (args) => {
  let doc = args[0];
  const ops = arr('json.patch', args, 1);
  for (const op of ops) {
    if (!(op instanceof RObject)) throw typeErr('json.patch', `operand 2 must be array of objects but got ${typeName(op)}`);
    const kind = op.getStr('op');
    const path = op.getStr('path');
    if (typeof kind !== 'string' || path === undefined) return undefined;
    try {
      const p = patchPath(path);
      switch (kind) {
        case 'add':
          if (op.getStr('value') === undefined) return undefined;
          doc = setAt(doc, p, op.getStr('value')!, 'add');
          break;
        case 'remove':
          doc = setAt(doc, p, undefined, 'remove');
          break;
        case 'replace':
          if (op.getStr('value') === undefined) return undefined;
          doc = setAt(doc, p, op.getStr('value')!, 'replace');
          break;
        case 'move':
        case 'copy': {
          const from = patchPath(op.getStr('from') ?? null);
          const v = getAt(doc, from);
          if (v === undefined) return undefined;
          if (kind === 'move') doc = setAt(doc, from, undefined, 'remove');
          doc = setAt(doc, p, v, 'add');
          break;
        }
        case 'test': {
          const v = getAt(doc, p);
          const want = op.getStr('value');
          if (want === undefined || v === undefined || !equal(v, want)) return undefined;
          break;
        }
        default:
          return undefined;
      }
    } catch {
      return undefined;
    }
  }
  return doc;
});

// ---------- base64 / hex ----------
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
function b64decode(fn: string, s: string, url: boolean): string {
  const re = url ? /^[A-Za-z0-9_-]*={0,2}$/ : B64;
  let t = s;
  if (!re.test(t)) throw builtinErr(fn, `illegal base64 data at input byte ${[...t].findIndex((c) => !/[A-Za-z0-9+/=_-]/.test(c))}`);
  if (url) {
    // OPA base64url.decode accepts missing padding
    const pad = t.length % 4;
    if (!t.includes('=') && pad) t += '='.repeat(4 - pad);
  }
  if (t.length % 4 !== 0) throw builtinErr(fn, `illegal base64 data at input byte ${t.length - (t.length % 4)}`);
  const buf = Buffer.from(t, url ? 'base64url' : 'base64');
  return utf8(buf);
}
function utf8(buf: Buffer): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(buf);
}
reg('base64.encode', 1, (a) => Buffer.from(str('base64.encode', a, 0), 'utf8').toString('base64'));
reg('base64.decode', 1, (a) => b64decode('base64.decode', str('base64.decode', a, 0), false));
reg('base64.is_valid', 1, ([s]) => {
  if (typeof s !== 'string') return false;
  return B64.test(s) && s.length % 4 === 0;
});
reg('base64url.encode', 1, (a) => {
  const s = Buffer.from(str('base64url.encode', a, 0), 'utf8').toString('base64url');
  return s + '='.repeat((4 - (s.length % 4)) % 4);
});
reg('base64url.encode_no_pad', 1, (a) => Buffer.from(str('base64url.encode_no_pad', a, 0), 'utf8').toString('base64url'));
reg('base64url.decode', 1, (a) => b64decode('base64url.decode', str('base64url.decode', a, 0), true));
reg('hex.encode', 1, (a) => Buffer.from(str('hex.encode', a, 0), 'utf8').toString('hex'));
reg('hex.decode', 1, (a) => {
  const s = str('hex.decode', a, 0);
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) {
    const bad = [...s].findIndex((c) => !/[0-9a-fA-F]/.test(c));
    if (bad >= 0) throw builtinErr('hex.decode', `encoding/hex: invalid byte: U+${s.codePointAt(bad)!.toString(16).toUpperCase().padStart(4, '0')} ${JSON.stringify(s[bad]).replace(/"/g, "'")}`);
    throw builtinErr('hex.decode', 'encoding/hex: odd length hex string');
  }
  return utf8(Buffer.from(s, 'hex'));
});

// ---------- urlquery ----------
function qEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/%20/g, '+')
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%7E/g, '~');
}
function qUnescape(fn: string, s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    throw builtinErr(fn, `invalid URL escape`);
  }
}
reg('urlquery.encode', 1, (a) => qEscape(str('urlquery.encode', a, 0)));
reg('urlquery.decode', 1, (a) => qUnescape('urlquery.decode', str('urlquery.decode', a, 0)));
reg('urlquery.encode_object', 1, (args) => {
  const o = obj('urlquery.encode_object', args, 0);
  const parts: string[] = [];
  for (const [k, v] of o.sortedEntries()) {
    if (typeof k !== 'string') throw typeErr('urlquery.encode_object', `operand 1 keys must be strings`);
    let vs: Value[];
    if (typeof v === 'string') vs = [v];
    else if (Array.isArray(v)) vs = v;
    else if (v instanceof RSet) vs = v.sorted();
    else throw typeErr('urlquery.encode_object', `operand 1 values must be one of {string, array, set} but got ${typeName(v)}`);
    for (const x of vs) {
      if (typeof x !== 'string') throw typeErr('urlquery.encode_object', `operand 1 values must be strings`);
      parts.push(qEscape(k) + '=' + qEscape(x));
    }
  }
  return parts.join('&');
});
reg('urlquery.decode_object', 1, (args) => {
  const s = str('urlquery.decode_object', args, 0);
  const out = new RObject();
  if (s === '') return out;
  for (const part of s.split(/[&]/)) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = qUnescape('urlquery.decode_object', eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : qUnescape('urlquery.decode_object', part.slice(eq + 1));
    const cur = out.get(k);
    if (Array.isArray(cur)) cur.push(v);
    else out.set(k, [v]);
  }
  return out;
});

// ---------- yaml ----------
reg('yaml.marshal', 1, ([v]) => yamlStringify(toJSON(v)));
reg('yaml.unmarshal', 1, (args) => {
  const s = str('yaml.unmarshal', args, 0);
  try {
    return fromJSON(parseYaml(s, { intAsBigInt: true }));
  } catch (e) {
    throw builtinErr('yaml.unmarshal', (e as Error).message);
  }
});
reg('yaml.is_valid', 1, ([s]) => {
  if (typeof s !== 'string') return false;
  try {
    parseYaml(s);
    return true;
  } catch {
    return false;
  }
});
