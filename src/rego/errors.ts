/** Evaluation errors with OPA's error codes (eval_type_error, eval_builtin_error, eval_conflict_error, ...). */
import { ZtmError } from '../errors.js';
import type { Loc } from './ast.js';

export type RegoErrorCode =
  | 'eval_type_error'
  | 'eval_builtin_error'
  | 'eval_conflict_error'
  | 'eval_internal_error'
  | 'eval_cancel_error'
  | 'rego_unsafe_var_error'
  | 'rego_recursion_error'
  | 'rego_compile_error';

export class RegoEvalError extends ZtmError {
  readonly regoCode: RegoErrorCode;
  readonly loc?: Loc;
  readonly rawMessage: string;
  constructor(regoCode: RegoErrorCode, message: string, loc?: Loc) {
    super('ZTM_REGO_EVAL', (loc ? `${loc.file}:${loc.row}: ` : '') + `${regoCode}: ${message}`, loc ? { file: loc.file, line: loc.row, col: loc.col } : {});
    this.regoCode = regoCode;
    this.loc = loc;
    this.rawMessage = message;
  }
}

/** Thrown by built-ins; the evaluator adds location and decides (strict mode) whether it halts. */
export class BuiltinError extends Error {
  constructor(
    readonly kind: 'eval_type_error' | 'eval_builtin_error',
    message: string,
    /** Halt errors propagate even in non-strict mode. */
    readonly halt = false,
  ) {
    super(message);
  }
}

export function typeErr(fn: string, msg: string): BuiltinError {
  return new BuiltinError('eval_type_error', `${fn}: ${msg}`);
}

export function builtinErr(fn: string, msg: string): BuiltinError {
  return new BuiltinError('eval_builtin_error', `${fn}: ${msg}`);
}
