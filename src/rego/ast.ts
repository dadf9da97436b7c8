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

/** Comprehension terms: each has a body of its own (and its own local vars). */
export type ComprehensionTerm = TermOf<'arraycomp' | 'setcomp' | 'objcomp'>;

export function isComprehension(t: Term): t is ComprehensionTerm {
  return t.type === 'arraycomp' || t.type === 'setcomp' || t.type === 'objcomp';
}

/**
 * Calls `fn` on each direct subterm of `t`, in source order: a ref's head, then its path;
 * array and set items; object keys and values, pair by pair; a call's arguments (not
 * `fnRef`, which only names the function); a template's embedded terms; a comprehension's
 * head (or key, then value). Scalars and vars have none.
 *
 * A comprehension's body is expressions, not terms, so it is not visited here: a caller that
 * should look inside walks `t.body` itself, and one that should stop at comprehensions
 * checks `isComprehension(t)` before calling this.
 */
export function forEachSubterm(t: Term, fn: (sub: Term) => void): void {
  switch (t.type) {
    case 'ref':
      fn(t.head);
      for (const p of t.path) fn(p);
      return;
    case 'array':
    case 'set':
      for (const x of t.items) fn(x);
      return;
    case 'object':
      for (const [k, v] of t.items) {
        fn(k);
        fn(v);
      }
      return;
    case 'call':
      for (const a of t.args) fn(a);
      return;
    case 'template':
      for (const p of t.parts) if (typeof p !== 'string') fn(p);
      return;
    case 'arraycomp':
    case 'setcomp':
      fn(t.head);
      return;
    case 'objcomp':
      fn(t.key);
      fn(t.value);
      return;
    case 'scalar':
    case 'var':
      return;
  }
}

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
