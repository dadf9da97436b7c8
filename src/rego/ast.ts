/** Rego abstract syntax tree. */
import type { Value } from './value.js';

export interface Loc {
  file: string;
  row: number;
  col: number;
  text?: string;
}

export type Term =
  | { type: 'scalar'; value: Value; loc: Loc }
  | { type: 'var'; name: string; loc: Loc }
  | { type: 'ref'; head: Term; path: Term[]; loc: Loc }
  | { type: 'array'; items: Term[]; loc: Loc }
  | { type: 'object'; items: [Term, Term][]; loc: Loc }
  | { type: 'set'; items: Term[]; loc: Loc }
  | { type: 'arraycomp'; head: Term; body: Body; loc: Loc }
  | { type: 'setcomp'; head: Term; body: Body; loc: Loc }
  | { type: 'objcomp'; key: Term; value: Term; body: Body; loc: Loc }
  | { type: 'call'; fn: string; fnRef: Term; args: Term[]; loc: Loc }
  | { type: 'template'; parts: (string | Term)[]; loc: Loc };

export type TermOf<T extends Term['type']> = Extract<Term, { type: T }>;

export interface With {
  target: Term; // ref or var
  value: Term;
  loc: Loc;
}

export type Expr =
  | { type: 'term'; term: Term; negated: boolean; with: With[]; loc: Loc }
  | { type: 'some'; vars: string[]; negated: boolean; with: With[]; loc: Loc }
  | { type: 'somein'; key?: Term; value: Term; domain: Term; negated: boolean; with: With[]; loc: Loc }
  | { type: 'every'; key?: Term; value: Term; domain: Term; body: Body; negated: boolean; with: With[]; loc: Loc };

export type Body = Expr[];

export type RuleKind = 'complete' | 'set' | 'func';

export interface RuleHead {
  /** Rule reference: first element is a var (rule name), then path terms. */
  ref: Term[];
  args?: Term[];
  /** Set member for `contains` / v0 `p[x]` rules. */
  key?: Term;
  value?: Term;
  assign: boolean;
  loc: Loc;
}

export interface Rule {
  kind: RuleKind;
  isDefault: boolean;
  head: RuleHead;
  body: Body;
  elses: { value?: Term; body: Body; loc: Loc }[];
  loc: Loc;
  module?: Module;
}

export interface Import {
  path: Term; // ref
  alias?: string;
  loc: Loc;
}

export interface Module {
  file: string;
  pkg: string[];
  pkgLoc: Loc;
  imports: Import[];
  rules: Rule[];
  regoV1: boolean;
}
