/** Rego tokenizer: identifiers, numbers, strings (quoted, raw, template), operators. */
import { ZtmError } from '../errors.js';

export type TokType = 'ident' | 'number' | 'string' | 'rawstring' | 'template' | 'op' | 'eof';

export interface Token {
  type: TokType;
  text: string;
  /** Decoded string value, for string tokens; raw template source for templates. */
  value?: string;
  /** true when the template is raw (`$\`...\``). */
  raw?: boolean;
  line: number;
  col: number;
  endLine: number;
  /** offset in source */
  pos: number;
  end: number;
}

const OPS3: string[] = [];
const OPS2 = [':=', '==', '!=', '<=', '>='];
const OPS1 = '=<>+-*/%&|{}[](),;.:';

export class RegoParseError extends ZtmError {
  constructor(message: string, file: string, line: number, col: number) {
    super('ZTM_REGO_PARSE', message, { file, line, col });
  }
}

export function tokenize(src: string, file: string): Token[] {
  const toks: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const n = src.length;
  const err = (msg: string, at = i): never => {
    // compute line/col at `at`
    let l = 1;
    let ls = 0;
    for (let k = 0; k < at && k < n; k++) if (src[k] === '\n') {
      l++;
      ls = k + 1;
    }
    throw new RegoParseError(msg, file, l, at - ls + 1);
  };
  while (i < n) {
    const c = src[i];
    if (c === '\n') {
      line++;
      i++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    const startLine = line;
    const col = i - lineStart + 1;
    const start = i;
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_]/.test(src[j])) j++;
      toks.push({ type: 'ident', text: src.slice(i, j), line, col, endLine: line, pos: start, end: j });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(0|[1-9][0-9]*|[0-9]+)?(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(src.slice(i, i + 1000))!;
      let j = i + m[0].length;
      if (j < n && /[A-Za-z_]/.test(src[j])) err('illegal number format', i);
      toks.push({ type: 'number', text: m[0], line, col, endLine: line, pos: start, end: j });
      i = j;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < n && src[j] !== '"') {
        if (src[j] === '\\') j++;
        if (src[j] === '\n') err('non-terminated string', i);
        j++;
      }
      if (j >= n) err('non-terminated string', i);
      const text = src.slice(i, j + 1);
      let value: string;
      try {
        value = JSON.parse(text) as string;
      } catch {
        err('illegal string escape', i);
        value = '';
      }
      toks.push({ type: 'string', text, value, line, col, endLine: line, pos: start, end: j + 1 });
      i = j + 1;
      continue;
    }
    if (c === '`') {
      let j = i + 1;
      while (j < n && src[j] !== '`') {
        if (src[j] === '\n') line++;
        j++;
      }
      if (j >= n) err('non-terminated raw string', i);
      const value = src.slice(i + 1, j);
      toks.push({ type: 'rawstring', text: src.slice(i, j + 1), value, line: startLine, col, endLine: line, pos: start, end: j + 1 });
      i = j + 1;
      if (line !== startLine) lineStart = src.lastIndexOf('\n', i - 1) + 1;
      continue;
    }
    if (c === '$' && (src[i + 1] === '"' || src[i + 1] === '`')) {
      const q = src[i + 1];
      let j = i + 2;
      let depth = 0;
      while (j < n) {
        const d = src[j];
        if (d === '\\' && (q === '"' || src[j + 1] === '{' || src[j + 1] === '}')) {
          j += 2;
          continue;
        }
        if (d === '\n') {
          if (q === '"' && depth === 0) err('non-terminated string', i);
          line++;
        }
        if (depth > 0 && d === '"') {
          // nested string inside template expression
          j++;
          while (j < n && src[j] !== '"') {
            if (src[j] === '\\') j++;
            j++;
          }
          j++;
          continue;
        }
        if (depth > 0 && d === '`') {
          j++;
          while (j < n && src[j] !== '`') j++;
          j++;
          continue;
        }
        if (d === '{') depth++;
        else if (d === '}' && depth > 0) depth--;
        else if (d === q && depth === 0) break;
        j++;
      }
      if (j >= n) err('non-terminated template string', i);
      toks.push({ type: 'template', text: src.slice(i, j + 1), value: src.slice(i + 2, j), raw: q === '`', line: startLine, col, endLine: line, pos: start, end: j + 1 });
      i = j + 1;
      if (line !== startLine) lineStart = src.lastIndexOf('\n', i - 1) + 1;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (OPS3.includes(src.slice(i, i + 3))) {
      toks.push({ type: 'op', text: src.slice(i, i + 3), line, col, endLine: line, pos: start, end: i + 3 });
      i += 3;
      continue;
    }
    if (OPS2.includes(two)) {
      toks.push({ type: 'op', text: two, line, col, endLine: line, pos: start, end: i + 2 });
      i += 2;
      continue;
    }
    if (OPS1.includes(c)) {
      toks.push({ type: 'op', text: c, line, col, endLine: line, pos: start, end: i + 1 });
      i++;
      continue;
    }
    err(`illegal token ${JSON.stringify(c)}`);
  }
  toks.push({ type: 'eof', text: '', line, col: i - lineStart + 1, endLine: line, pos: n, end: n });
  return toks;
}
