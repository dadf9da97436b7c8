/**
 * Rego values. Integers are `bigint` (exact at any size), non-integral numbers are
 * JS `number`; strings, booleans and null are native; arrays are JS arrays; objects
 * and sets are keyed by a canonical string so that any value can be a key.
 * Ordering follows OPA: null < boolean < number < string < array < object < set.
 */
export type Value = null | boolean | bigint | number | string | Value[] | RObject | RSet | Dec;

/**
 * An exact decimal `m × 10^e` for number literals that an IEEE double cannot hold
 * (more than ~17 significant digits, or magnitudes beyond its range), so that they
 * compare as the numbers they denote, as in OPA. Never integral (integers are bigint).
 * Arithmetic built-ins see its nearest double (`valueOf`).
 */
export class Dec {
  constructor(
    readonly m: bigint,
    readonly e: number,
  ) {}
  valueOf(): number {
    return Number(`${this.m}e${this.e}`);
  }
  toString(): string {
    const neg = this.m < 0n;
    const digits = (neg ? -this.m : this.m).toString();
    let out: string;
    if (this.e >= 0) out = digits + '0'.repeat(this.e);
    else if (-this.e < digits.length) out = digits.slice(0, digits.length + this.e) + '.' + digits.slice(digits.length + this.e);
    else if (-this.e - digits.length <= 20) out = '0.' + '0'.repeat(-this.e - digits.length) + digits;
    else out = (digits.length > 1 ? digits[0] + '.' + digits.slice(1) : digits) + 'e' + (this.e + digits.length - 1);
    return (neg ? '-' : '') + out;
  }
}

/** Exact decimal of a number value. */
function decOf(v: bigint | number | Dec): Dec {
  if (v instanceof Dec) return v;
  if (typeof v === 'bigint') return new Dec(v, 0);
  return parseDec(String(v))!;
}

function parseDec(t: string): Dec | undefined {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(t);
  if (!m) return undefined;
  const frac = m[3] ?? '';
  let mant = BigInt((m[2] || '0') + frac);
  let e = (m[4] ? parseInt(m[4], 10) : 0) - frac.length;
  if (mant === 0n) return new Dec(0n, 0);
  while (mant % 10n === 0n) {
    mant /= 10n;
    e++;
  }
  return new Dec(m[1] === '-' ? -mant : mant, e);
}

function compareDec(a: Dec, b: Dec): number {
  const e = Math.min(a.e, b.e);
  const am = a.m * 10n ** BigInt(a.e - e);
  const bm = b.m * 10n ** BigInt(b.e - e);
  return am < bm ? -1 : am > bm ? 1 : 0;
}

export class RObject {
  readonly m = new Map<string, [Value, Value]>();
  get size(): number {
    return this.m.size;
  }
  get(k: Value): Value | undefined {
    const e = this.m.get(keyOf(k));
    return e === undefined ? undefined : e[1];
  }
  getStr(k: string): Value | undefined {
    const e = this.m.get(k.charCodeAt(0) === 0 ? '\u0000s' + k : k);
    return e === undefined ? undefined : e[1];
  }
  has(k: Value): boolean {
    return this.m.has(keyOf(k));
  }
  set(k: Value, v: Value): this {
    this.m.set(keyOf(k), [k, v]);
    return this;
  }
  delete(k: Value): void {
    this.m.delete(keyOf(k));
  }
  keys(): Value[] {
    const out: Value[] = [];
    for (const e of this.m.values()) out.push(e[0]);
    return out;
  }
  entries(): IterableIterator<[Value, Value]> {
    return this.m.values();
  }
  sortedEntries(): [Value, Value][] {
    return [...this.m.values()].sort((a, b) => compare(a[0], b[0]));
  }
  static from(entries: Iterable<[Value, Value]>): RObject {
    const o = new RObject();
    for (const [k, v] of entries) o.set(k, v);
    return o;
  }
  static fromRecord(r: Record<string, Value>): RObject {
    const o = new RObject();
    for (const k of Object.keys(r)) o.set(k, r[k]);
    return o;
  }
}

export class RSet {
  readonly m = new Map<string, Value>();
  get size(): number {
    return this.m.size;
  }
  has(v: Value): boolean {
    return this.m.has(keyOf(v));
  }
  add(v: Value): this {
    const k = keyOf(v);
    if (!this.m.has(k)) this.m.set(k, v);
    return this;
  }
  delete(v: Value): void {
    this.m.delete(keyOf(v));
  }
  values(): IterableIterator<Value> {
    return this.m.values();
  }
  sorted(): Value[] {
    return [...this.m.values()].sort(compare);
  }
  static from(vs: Iterable<Value>): RSet {
    const s = new RSet();
    for (const v of vs) s.add(v);
    return s;
  }
}

/** Canonical key: equal Rego values have equal keys. */
export function keyOf(v: Value): string {
  switch (typeof v) {
    case 'string':
      // strings are their own key (no allocation); other types get a NUL-prefixed tag
      return v.charCodeAt(0) === 0 ? '\u0000s' + v : v;
    case 'bigint':
      return '\u0000n' + v.toString();
    case 'number':
      return '\u0000n' + numKey(v);
    case 'boolean':
      return v ? '\u0000t' : '\u0000f';
    default:
      if (v === null) return '\u0000z';
      if (v instanceof Dec) return '\u0000d' + v.m + 'e' + v.e;
      return '\u0000c' + canon(v);
  }
}

function numKey(n: number): string {
  if (Number.isInteger(n) && Number.isFinite(n)) return BigInt(n).toString();
  return String(n);
}

function canon(v: Value): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'bigint':
      return v.toString();
    case 'number':
      return numKey(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      if (v === null) return 'null';
      if (v instanceof Dec) return 'd' + v.m + 'e' + v.e;
      if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
      if (v instanceof RObject) {
        const parts: string[] = [];
        for (const [k, x] of v.m) parts.push(JSON.stringify(k) + ':' + canon(x[1]));
        parts.sort();
        return '{' + parts.join(',') + '}';
      }
      {
        const parts = [...v.m.keys()].sort();
        return '<' + parts.map((p) => JSON.stringify(p)).join(',') + '>';
      }
  }
}

export function typeRank(v: Value): number {
  switch (typeof v) {
    case 'boolean':
      return 1;
    case 'bigint':
    case 'number':
      return 2;
    case 'string':
      return 3;
    default:
      if (v === null) return 0;
      if (v instanceof Dec) return 2;
      if (Array.isArray(v)) return 4;
      if (v instanceof RObject) return 5;
      return 6;
  }
}

export function compareNum(a: bigint | number | Dec, b: bigint | number | Dec): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  if (a instanceof Dec || b instanceof Dec) {
    if (typeof a === 'number' && !Number.isFinite(a)) return a > 0 ? 1 : -1;
    if (typeof b === 'number' && !Number.isFinite(b)) return b > 0 ? -1 : 1;
    return compareDec(decOf(a), decOf(b));
  }
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  // mixed: compare exactly
  if (typeof a === 'number') return -compareNum(b, a);
  const bn = b as number;
  if (!Number.isFinite(bn)) return bn > 0 ? -1 : 1;
  const fl = BigInt(Math.floor(bn));
  if (a < fl) return -1;
  if (a > fl) return 1;
  return bn === Math.floor(bn) ? 0 : -1;
}

function cmpStr(a: string, b: string): number {
  if (a === b) return 0;
  // compare by code point (UTF-8 byte order)
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

export function compare(a: Value, b: Value): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 0:
      return 0;
    case 1:
      return a === b ? 0 : a ? 1 : -1;
    case 2:
      return compareNum(a as bigint | number, b as bigint | number);
    case 3:
      return cmpStr(a as string, b as string);
    case 4: {
      const x = a as Value[];
      const y = b as Value[];
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compare(x[i], y[i]);
        if (c !== 0) return c;
      }
      return x.length - y.length < 0 ? -1 : x.length > y.length ? 1 : 0;
    }
    case 5: {
      const x = (a as RObject).sortedEntries();
      const y = (b as RObject).sortedEntries();
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        let c = compare(x[i][0], y[i][0]);
        if (c !== 0) return c;
        c = compare(x[i][1], y[i][1]);
        if (c !== 0) return c;
      }
      return x.length < y.length ? -1 : x.length > y.length ? 1 : 0;
    }
    default: {
      const x = (a as RSet).sorted();
      const y = (b as RSet).sorted();
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compare(x[i], y[i]);
        if (c !== 0) return c;
      }
      return x.length < y.length ? -1 : x.length > y.length ? 1 : 0;
    }
  }
}

export function equal(a: Value, b: Value): boolean {
  if (a === b) return true;
  const ta = typeof a;
  const tb = typeof b;
  if (ta === 'string' || tb === 'string' || ta === 'boolean' || tb === 'boolean') return false;
  if ((ta === 'bigint' || ta === 'number') && (tb === 'bigint' || tb === 'number')) return compareNum(a as bigint, b as bigint) === 0;
  if (a === null || b === null) return false;
  if (a instanceof Dec || b instanceof Dec) return isNumber(a) && isNumber(b) && compareNum(a, b) === 0;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof RObject) {
    if (!(b instanceof RObject) || a.size !== b.size) return false;
    for (const [k, e] of a.m) {
      const f = b.m.get(k);
      if (f === undefined || !equal(e[1], f[1])) return false;
    }
    return true;
  }
  if (a instanceof RSet) {
    if (!(b instanceof RSet) || a.size !== b.size) return false;
    for (const k of a.m.keys()) if (!b.m.has(k)) return false;
    return true;
  }
  return false;
}

export function isNumber(v: Value | undefined): v is bigint | number {
  return typeof v === 'bigint' || typeof v === 'number' || v instanceof Dec;
}

/** Normalise a JS number: integral values become bigint. */
export function num(n: number): bigint | number {
  if (Number.isInteger(n) && Number.isFinite(n)) return BigInt(n);
  return n;
}

export function toFloat(v: bigint | number): number {
  return typeof v === 'number' ? v : Number(v);
}

export function typeName(v: Value): string {
  switch (typeof v) {
    case 'boolean':
      return 'boolean';
    case 'bigint':
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    default:
      if (v === null) return 'null';
      if (v instanceof Dec) return 'number';
      if (Array.isArray(v)) return 'array';
      if (v instanceof RObject) return 'object';
      return 'set';
  }
}

/** Convert plain JSON (from JSON.parse / YAML) to a Rego value. */
export function fromJSON(j: unknown): Value {
  if (j === null || j === undefined) return null;
  switch (typeof j) {
    case 'boolean':
    case 'string':
    case 'bigint':
      return j as Value;
    case 'number':
      return num(j);
    default:
      if (Array.isArray(j)) return j.map(fromJSON);
      if (j instanceof RObject || j instanceof RSet) return j;
      {
        const o = new RObject();
        for (const k of Object.keys(j as object)) o.set(k, fromJSON((j as Record<string, unknown>)[k]));
        return o;
      }
  }
}

/**
 * Convert to plain JSON (sets become sorted arrays, object keys that are not strings
 * are serialised). Big integers beyond 2^53 stay exact only through `toJSONText`.
 */
export function toJSON(v: Value): unknown {
  switch (typeof v) {
    case 'bigint':
      return Number(v);
    case 'number':
    case 'string':
    case 'boolean':
      return v;
    default:
      if (v === null) return null;
      if (v instanceof Dec) return v.valueOf();
      if (Array.isArray(v)) return v.map(toJSON);
      if (v instanceof RObject) {
        const out: Record<string, unknown> = {};
        for (const [k, x] of v.sortedEntries()) out[typeof k === 'string' ? k : toJSONText(k)] = toJSON(x);
        return out;
      }
      return v.sorted().map(toJSON);
  }
}

export function formatNumber(v: bigint | number): string {
  if (typeof v === 'bigint') return v.toString();
  if ((v as unknown) instanceof Dec) return (v as unknown as Dec).toString();
  if (Number.isInteger(v) && Math.abs(v) < 1e21) return v.toFixed(0);
  const s = String(v);
  return s;
}

/** JSON text as OPA's json.marshal writes it (sorted keys, sets as arrays, exact integers). */
export function toJSONText(v: Value, indent?: string, prefix = '', level = 0): string {
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return formatNumber(v);
    case 'string':
      return jsonString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default: {
      if (v === null) return 'null';
      if (v instanceof Dec) return v.toString();
      let items: string[];
      let open: string;
      let close: string;
      const nl = indent !== undefined ? '\n' + prefix + indent.repeat(level + 1) : '';
      const endNl = indent !== undefined ? '\n' + prefix + indent.repeat(level) : '';
      const colon = indent !== undefined ? ': ' : ':';
      if (Array.isArray(v)) {
        items = v.map((x) => toJSONText(x, indent, prefix, level + 1));
        open = '[';
        close = ']';
      } else if (v instanceof RObject) {
        const ents = v.keys().map((k) => [typeof k === 'string' ? k : toJSONText(k), v.get(k)!] as [string, Value]);
        ents.sort((a, b) => cmpStr(a[0], b[0]));
        items = ents.map(([k, x]) => jsonString(k) + colon + toJSONText(x, indent, prefix, level + 1));
        open = '{';
        close = '}';
      } else {
        items = v.sorted().map((x) => toJSONText(x, indent, prefix, level + 1));
        open = '[';
        close = ']';
      }
      if (items.length === 0) return open + close;
      return open + nl + items.join(',' + nl) + endNl + close;
    }
  }
}

function jsonString(s: string): string {
  // Go's encoding/json escapes <, >, & and U+2028/9.
  return JSON.stringify(s)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Rego literal syntax (as OPA prints terms). */
export function toRegoText(v: Value): string {
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return formatNumber(v);
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      if (v === null) return 'null';
      if (v instanceof Dec) return v.toString();
      if (Array.isArray(v)) return '[' + v.map(toRegoText).join(', ') + ']';
      if (v instanceof RObject) return '{' + v.sortedEntries().map(([k, x]) => toRegoText(k) + ': ' + toRegoText(x)).join(', ') + '}';
      if (v.size === 0) return 'set()';
      return '{' + v.sorted().map(toRegoText).join(', ') + '}';
  }
}

/** JSON.parse that keeps integers exact (bigint when beyond safe range). */
export function parseJSONExact(text: string): Value {
  const p = new JsonParser(text);
  const v = p.value();
  p.ws();
  if (p.i !== text.length) throw new SyntaxError(`unexpected trailing characters at offset ${p.i}`);
  return v;
}

class JsonParser {
  i = 0;
  constructor(private s: string) {}
  ws(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i])) this.i++;
  }
  /** Skips white space, then consumes `close` if it comes next (an empty object or array). */
  private closesEmpty(close: '}' | ']'): boolean {
    this.ws();
    if (this.s[this.i] !== close) return false;
    this.i++;
    return true;
  }
  /** After a member: consumes `,` (more follow: false) or `close` (done: true). */
  private closesAfterMember(close: '}' | ']'): boolean {
    this.ws();
    if (this.s[this.i] === ',') {
      this.i++;
      return false;
    }
    if (this.s[this.i] === close) {
      this.i++;
      return true;
    }
    throw new SyntaxError(`expected ',' or '${close}' at offset ${this.i}`);
  }
  value(): Value {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') {
      this.i++;
      const o = new RObject();
      if (this.closesEmpty('}')) return o;
      do {
        this.ws();
        if (this.s[this.i] !== '"') throw new SyntaxError(`expected string key at offset ${this.i}`);
        const k = this.str();
        this.ws();
        if (this.s[this.i] !== ':') throw new SyntaxError(`expected ':' at offset ${this.i}`);
        this.i++;
        o.set(k, this.value());
      } while (!this.closesAfterMember('}'));
      return o;
    }
    if (c === '[') {
      this.i++;
      const a: Value[] = [];
      if (this.closesEmpty(']')) return a;
      do a.push(this.value());
      while (!this.closesAfterMember(']'));
      return a;
    }
    if (c === '"') return this.str();
    if (this.s.startsWith('true', this.i)) {
      this.i += 4;
      return true;
    }
    if (this.s.startsWith('false', this.i)) {
      this.i += 5;
      return false;
    }
    if (this.s.startsWith('null', this.i)) {
      this.i += 4;
      return null;
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) throw new SyntaxError(`unexpected character at offset ${this.i}`);
    this.i += m[0].length;
    return parseNumberLiteral(m[0]);
  }
  str(): string {
    const start = this.i;
    this.i++;
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '\\') this.i += 2;
      else if (c === '"') break;
      else this.i++;
    }
    this.i++;
    return JSON.parse(this.s.slice(start, this.i)) as string;
  }
}

export function parseNumberLiteral(t: string): bigint | number | Dec {
  if (/^-?[0-9]+$/.test(t)) return BigInt(t);
  const d = parseDec(t);
  if (!d) return num(Number(t));
  // integral values (1e3, 2.50e1, 10.00) are exact bigints
  if (d.e >= 0) return d.e <= 4000 ? d.m * 10n ** BigInt(d.e) : d;
  const f = Number(t);
  if (Number.isFinite(f) && f !== 0 && compareDec(decOf(f), d) === 0) return f;
  return d;
}
