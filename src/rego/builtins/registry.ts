/** Built-in function registry and operand helpers shared by the built-in groups. */
import { typeErr } from '../errors.js';
import { isNumber, RObject, RSet, typeName, type Value } from '../value.js';

export interface BuiltinCtx {
  nowNs: bigint;
  print?: (msg: string) => void;
  /** Per-query cache (e.g. uuid.rfc4122, rand.intn must be stable within a query). */
  cache: Map<string, Value>;
  /** Document returned by opa.runtime(). */
  runtime?: Value;
}

/** Minimal view of the evaluator a built-in may use. */
export interface EvalHandle {
  callByName(name: string, args: Value[]): Value | undefined;
}

export type BuiltinFn = (args: Value[], ctx: BuiltinCtx, ev: EvalHandle) => Value | undefined | Value[];

export interface BuiltinDef {
  name: string;
  /** Number of inputs; -1 for variadic (print). */
  arity: number;
  fn: BuiltinFn;
  /** Returns a list of results (non-deterministic, like `walk`). */
  relation?: boolean;
}

export const BUILTINS = new Map<string, BuiltinDef>();

export function reg(name: string, arity: number, fn: BuiltinFn, relation = false): void {
  BUILTINS.set(name, { name, arity, fn, relation });
}

function got(v: Value): string {
  return typeName(v);
}

export function str(fn: string, args: Value[], i: number): string {
  const v = args[i];
  if (typeof v !== 'string') throw typeErr(fn, `operand ${i + 1} must be string but got ${got(v)}`);
  return v;
}

export function numArg(fn: string, args: Value[], i: number): bigint | number {
  const v = args[i];
  if (!isNumber(v)) throw typeErr(fn, `operand ${i + 1} must be number but got ${got(v)}`);
  return v;
}

export function intArg(fn: string, args: Value[], i: number): bigint {
  const v = args[i];
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return BigInt(v);
    throw typeErr(fn, `operand ${i + 1} must be integer number but got floating-point number`);
  }
  throw typeErr(fn, `operand ${i + 1} must be number but got ${got(v)}`);
}

export function arr(fn: string, args: Value[], i: number): Value[] {
  const v = args[i];
  if (!Array.isArray(v)) throw typeErr(fn, `operand ${i + 1} must be array but got ${got(v)}`);
  return v;
}

export function obj(fn: string, args: Value[], i: number): RObject {
  const v = args[i];
  if (!(v instanceof RObject)) throw typeErr(fn, `operand ${i + 1} must be object but got ${got(v)}`);
  return v;
}

export function set(fn: string, args: Value[], i: number): RSet {
  const v = args[i];
  if (!(v instanceof RSet)) throw typeErr(fn, `operand ${i + 1} must be set but got ${got(v)}`);
  return v;
}

export function bool(fn: string, args: Value[], i: number): boolean {
  const v = args[i];
  if (typeof v !== 'boolean') throw typeErr(fn, `operand ${i + 1} must be boolean but got ${got(v)}`);
  return v;
}

export function oneOf(fn: string, args: Value[], i: number, types: string[]): Value {
  const v = args[i];
  if (!types.includes(got(v))) throw typeErr(fn, `operand ${i + 1} must be one of {${types.join(', ')}} but got ${got(v)}`);
  return v;
}

/** Elements of an array or set argument. */
export function collection(fn: string, args: Value[], i: number, types = ['array', 'set']): Value[] {
  const v = oneOf(fn, args, i, types);
  if (Array.isArray(v)) return v;
  if (v instanceof RSet) return v.sorted();
  return [];
}

export function strOrArrayOfStrings(fn: string, args: Value[], i: number): string[] {
  const v = args[i];
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) || v instanceof RSet) {
    const xs = Array.isArray(v) ? v : v.sorted();
    return xs.map((x) => {
      if (typeof x !== 'string') throw typeErr(fn, `operand ${i + 1} must be ${Array.isArray(v) ? 'array' : 'set'} of strings but got ${Array.isArray(v) ? 'array' : 'set'} containing ${got(x)}`);
      return x;
    });
  }
  throw typeErr(fn, `operand ${i + 1} must be one of {string, set, array} but got ${got(v)}`);
}
