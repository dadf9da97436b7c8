/**
 * A strict RFC 8259 JSON parser that rejects duplicate object keys (JSON.parse keeps
 * the last one silently, which lets an attacker smuggle a second `alg` or `sub` past
 * a checker that reads the first). Objects are built without prototypes so keys such
 * as `__proto__` are plain data.
 */
export class StrictJsonError extends Error {
  constructor(
    readonly reason: 'syntax' | 'duplicate_key' | 'too_deep',
    message: string,
  ) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUM_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

export function parseStrictJson(text: string, maxDepth = 64): JsonValue {
  let i = 0;
  const err = (msg: string): never => {
    throw new StrictJsonError('syntax', `${msg} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const str = (): string => {
    // at opening quote
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) err('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) err('control character in string');
      if (c === 0x5c) {
        out += text.slice(start, i);
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) err('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else err('bad escape');
        start = i;
        continue;
      }
      i++;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > maxDepth) throw new StrictJsonError('too_deep', 'JSON nesting is too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = Object.create(null) as { [k: string]: JsonValue };
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') err('expected a string key');
        const k = str();
        if (seen.has(k)) throw new StrictJsonError('duplicate_key', `duplicate key "${k.slice(0, 40)}"`);
        seen.add(k);
        ws();
        if (text[i] !== ':') err('expected ":"');
        i++;
        obj[k] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        err('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        err('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUM_RE.lastIndex = i;
    const m = NUM_RE.exec(text);
    if (m && m[0].length > 0) {
      i += m[0].length;
      const n = Number(m[0]);
      if (!Number.isFinite(n)) err('number out of range');
      return n;
    }
    return err('unexpected character');
  };
  const v = value(0);
  ws();
  if (i !== text.length) err('trailing characters');
  return v;
}
