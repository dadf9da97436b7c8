/**
 * json.verify_schema and json.match_schema: JSON Schema (draft-04 to draft-07 keywords) with
 * error objects shaped like OPA's ({error, type, field, desc}, gojsonschema wording).
 */
import { builtinErr, typeErr } from '../errors.js';
import { compileRe } from './strings.js';
import { compare, equal, isNumber, parseJSONExact, RObject, RSet, toFloat, toJSONText, typeName, type Value } from '../value.js';
import { reg } from './registry.js';

interface SchemaError {
  type: string;
  field: string;
  desc: string;
}

function schemaArg(fn: string, v: Value, pos: number): Value {
  if (typeof v === 'string') {
    try {
      return parseJSONExact(v);
    } catch (e) {
      throw builtinErr(fn, `operand ${pos}: invalid JSON: ${(e as Error).message}`);
    }
  }
  if (v instanceof RObject || typeof v === 'boolean') return v;
  throw typeErr(fn, `operand ${pos} must be one of {string, object, boolean} but got ${typeName(v)}`);
}

const TYPES = new Set(['null', 'boolean', 'object', 'array', 'number', 'string', 'integer']);

/** Structural checks of a schema; returns an error message or undefined. */
function checkSchema(s: Value, path: string): string | undefined {
  if (typeof s === 'boolean') return undefined;
  if (!(s instanceof RObject)) return `${path}: schema must be an object or boolean`;
  const t = s.getStr('type');
  if (t !== undefined) {
    const ts = Array.isArray(t) ? t : [t];
    for (const x of ts) if (typeof x !== 'string' || !TYPES.has(x)) return `${path}.type: has a primitive type that is NOT VALID -- given: /${typeof x === 'string' ? x : toJSONText(x)}/ Expected valid values are:/array/ /boolean/ /integer/ /null/ /number/ /object/ /string/`;
  }
  for (const k of ['properties', 'patternProperties', 'definitions', '$defs']) {
    const p = s.getStr(k);
    if (p === undefined) continue;
    if (!(p instanceof RObject)) return `${path}.${k}: must be an object`;
    for (const [name, sub] of p.entries()) {
      const e = checkSchema(sub, `${path}.${k}.${String(name)}`);
      if (e) return e;
    }
  }
  for (const k of ['items', 'additionalProperties', 'additionalItems', 'not', 'if', 'then', 'else', 'contains', 'propertyNames']) {
    const sub = s.getStr(k);
    if (sub === undefined) continue;
    const subs = Array.isArray(sub) && k === 'items' ? sub : [sub];
    for (const x of subs) {
      const e = checkSchema(x, `${path}.${k}`);
      if (e) return e;
    }
  }
  for (const k of ['allOf', 'anyOf', 'oneOf']) {
    const arr = s.getStr(k);
    if (arr === undefined) continue;
    if (!Array.isArray(arr) || !arr.length) return `${path}.${k}: must be a non-empty array`;
    for (const x of arr) {
      const e = checkSchema(x, `${path}.${k}`);
      if (e) return e;
    }
  }
  const req = s.getStr('required');
  if (req !== undefined && (!Array.isArray(req) || req.some((x) => typeof x !== 'string'))) return `${path}.required: must be an array of strings`;
  const pat = s.getStr('pattern');
  if (pat !== undefined) {
    if (typeof pat !== 'string') return `${path}.pattern: must be a string`;
    try {
      compileRe('json.verify_schema', pat);
    } catch {
      return `${path}.pattern: invalid regular expression ${JSON.stringify(pat)}`;
    }
  }
  return undefined;
}

function jsonType(v: Value): string {
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (isNumber(v)) return 'number';
  if (v instanceof RSet) return 'array';
  return typeName(v);
}

function typeMatches(t: string, v: Value): boolean {
  const jt = jsonType(v);
  if (t === jt) return true;
  return t === 'number' && jt === 'integer';
}

function fieldOf(path: string[]): string {
  return path.length ? path.join('.') : '(root)';
}

function fmtVal(v: Value): string {
  return toJSONText(v);
}

class Validator {
  constructor(private root: Value) {}

  private resolve(ref: string): Value | undefined {
    if (!ref.startsWith('#')) return undefined;
    let cur: Value | undefined = this.root;
    for (const raw of ref.slice(1).split('/').filter(Boolean)) {
      const seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (cur instanceof RObject) cur = cur.getStr(seg);
      else if (Array.isArray(cur)) cur = cur[parseInt(seg, 10)];
      else return undefined;
    }
    return cur;
  }

  validate(s: Value, v: Value, path: string[], out: SchemaError[]): void {
    if (s === true) return;
    if (s === false) {
      out.push({ type: 'false', field: fieldOf(path), desc: 'False always fails validation' });
      return;
    }
    if (!(s instanceof RObject)) return;
    const ref = s.getStr('$ref');
    if (typeof ref === 'string') {
      const target = this.resolve(ref);
      if (target !== undefined) this.validate(target, v, path, out);
      return;
    }
    const add = (type: string, desc: string) => out.push({ type, field: fieldOf(path), desc });

    const t = s.getStr('type');
    if (t !== undefined) {
      const ts = (Array.isArray(t) ? t : [t]).filter((x): x is string => typeof x === 'string');
      if (!ts.some((x) => typeMatches(x, v))) {
        add('invalid_type', `Invalid type. Expected: ${ts.join(', ')}, given: ${jsonType(v)}`);
        return;
      }
    }
    const en = s.getStr('enum');
    if (Array.isArray(en) && !en.some((x) => equal(x, v))) add('enum', `${fieldOf(path)} must be one of the following: ${en.map(fmtVal).join(', ')}`);
    const cst = s.getStr('const');
    if (cst !== undefined && !equal(cst, v)) add('const', `${fieldOf(path)} does not match: ${fmtVal(cst)}`);

    if (typeof v === 'string') {
      const len = [...v].length;
      const minL = s.getStr('minLength');
      if (isNumber(minL) && len < toFloat(minL)) add('string_gte', `String length must be greater than or equal to ${fmtVal(minL)}`);
      const maxL = s.getStr('maxLength');
      if (isNumber(maxL) && len > toFloat(maxL)) add('string_lte', `String length must be less than or equal to ${fmtVal(maxL)}`);
      const pat = s.getStr('pattern');
      if (typeof pat === 'string' && !compileRe('json.match_schema', pat).test(v)) add('pattern', `Does not match pattern '${pat}'`);
    }
    if (isNumber(v)) {
      const n = v;
      const min = s.getStr('minimum');
      const max = s.getStr('maximum');
      const exMin = s.getStr('exclusiveMinimum');
      const exMax = s.getStr('exclusiveMaximum');
      if (isNumber(min)) {
        if (exMin === true ? compare(n, min) <= 0 : compare(n, min) < 0) add(exMin === true ? 'number_gt' : 'number_gte', exMin === true ? `Must be greater than ${fmtVal(min)}` : `Must be greater than or equal to ${fmtVal(min)}`);
      }
      if (isNumber(max)) {
        if (exMax === true ? compare(n, max) >= 0 : compare(n, max) > 0) add(exMax === true ? 'number_lt' : 'number_lte', exMax === true ? `Must be less than ${fmtVal(max)}` : `Must be less than or equal to ${fmtVal(max)}`);
      }
      if (isNumber(exMin) && compare(n, exMin) <= 0) add('number_gt', `Must be greater than ${fmtVal(exMin)}`);
      if (isNumber(exMax) && compare(n, exMax) >= 0) add('number_lt', `Must be less than ${fmtVal(exMax)}`);
      const mul = s.getStr('multipleOf');
      if (isNumber(mul)) {
        const ok = typeof n === 'bigint' && typeof mul === 'bigint' ? mul !== 0n && n % mul === 0n : Number.isInteger(toFloat(n) / toFloat(mul));
        if (!ok) add('multiple_of', `Must be a multiple of ${fmtVal(mul)}`);
      }
    }
    if (Array.isArray(v) || v instanceof RSet) {
      const items = Array.isArray(v) ? v : v.sorted();
      const minI = s.getStr('minItems');
      if (isNumber(minI) && items.length < toFloat(minI)) add('array_min_items', `Array must have at least ${fmtVal(minI)} items`);
      const maxI = s.getStr('maxItems');
      if (isNumber(maxI) && items.length > toFloat(maxI)) add('array_max_items', `Array must have at most ${fmtVal(maxI)} items`);
      if (s.getStr('uniqueItems') === true) {
        outer: for (let i = 0; i < items.length; i++)
          for (let j = i + 1; j < items.length; j++)
            if (equal(items[i], items[j])) {
              add('unique', `array items[${i},${j}] must be unique`);
              break outer;
            }
      }
      const it = s.getStr('items');
      if (Array.isArray(it)) {
        it.forEach((sub, i) => {
          if (i < items.length) this.validate(sub, items[i], [...path, String(i)], out);
        });
        const addl = s.getStr('additionalItems');
        if (addl === false && items.length > it.length) add('array_no_additional_items', `No additional items allowed on array`);
        else if (addl instanceof RObject) for (let i = it.length; i < items.length; i++) this.validate(addl, items[i], [...path, String(i)], out);
      } else if (it !== undefined) items.forEach((x, i) => this.validate(it, x, [...path, String(i)], out));
      const cont = s.getStr('contains');
      if (cont !== undefined && !items.some((x) => this.ok(cont, x))) add('contains', `At least one of the items must match`);
    }
    if (v instanceof RObject) {
      const req = s.getStr('required');
      if (Array.isArray(req)) for (const r of req) if (typeof r === 'string' && v.getStr(r) === undefined) add('required', `${r} is required`);
      const props = s.getStr('properties');
      const pprops = s.getStr('patternProperties');
      const addl = s.getStr('additionalProperties');
      for (const [k, x] of v.sortedEntries()) {
        const key = typeof k === 'string' ? k : toJSONText(k);
        let matched = false;
        if (props instanceof RObject) {
          const sub = props.getStr(key);
          if (sub !== undefined) {
            matched = true;
            this.validate(sub, x, [...path, key], out);
          }
        }
        if (pprops instanceof RObject) {
          for (const [pat, sub] of pprops.entries()) {
            if (typeof pat === 'string' && compileRe('json.match_schema', pat).test(key)) {
              matched = true;
              this.validate(sub, x, [...path, key], out);
            }
          }
        }
        if (!matched) {
          if (addl === false) add('additional_property_not_allowed', `Additional property ${key} is not allowed`);
          else if (addl instanceof RObject) this.validate(addl, x, [...path, key], out);
        }
      }
      const minP = s.getStr('minProperties');
      if (isNumber(minP) && v.size < toFloat(minP)) add('array_min_properties', `Must have at least ${fmtVal(minP)} properties`);
      const maxP = s.getStr('maxProperties');
      if (isNumber(maxP) && v.size > toFloat(maxP)) add('array_max_properties', `Must have at most ${fmtVal(maxP)} properties`);
      const deps = s.getStr('dependencies');
      if (deps instanceof RObject) {
        for (const [k, d] of deps.entries()) {
          if (typeof k !== 'string' || v.getStr(k) === undefined) continue;
          if (Array.isArray(d)) {
            for (const r of d) if (typeof r === 'string' && v.getStr(r) === undefined) add('missing_dependency', `Has a dependency on ${r}`);
          } else this.validate(d, v, path, out);
        }
      }
    }
    const allOf = s.getStr('allOf');
    if (Array.isArray(allOf) && !allOf.every((x) => this.ok(x, v))) {
      add('number_all_of', 'Must validate all the schemas (allOf)');
      for (const x of allOf) this.validate(x, v, path, out);
    }
    const anyOf = s.getStr('anyOf');
    if (Array.isArray(anyOf) && !anyOf.some((x) => this.ok(x, v))) add('number_any_of', 'Must validate at least one schema (anyOf)');
    const oneOf = s.getStr('oneOf');
    if (Array.isArray(oneOf) && oneOf.filter((x) => this.ok(x, v)).length !== 1) add('number_one_of', 'Must validate one and only one schema (oneOf)');
    const not = s.getStr('not');
    if (not !== undefined && this.ok(not, v)) add('number_not', 'Must not validate the schema (not)');
    const iff = s.getStr('if');
    if (iff !== undefined) {
      const branch = this.ok(iff, v) ? s.getStr('then') : s.getStr('else');
      if (branch !== undefined && !this.ok(branch, v)) {
        add(this.ok(iff, v) ? 'condition_then' : 'condition_else', `Must validate "${this.ok(iff, v) ? 'then' : 'else'}" as "if" was ${this.ok(iff, v) ? 'valid' : 'not valid'}`);
        this.validate(branch, v, path, out);
      }
    }
  }

  ok(s: Value, v: Value): boolean {
    const errs: SchemaError[] = [];
    this.validate(s, v, [], errs);
    return errs.length === 0;
  }
}

reg('json.verify_schema', 1, ([s]) => {
  let schema: Value;
  try {
    schema = schemaArg('json.verify_schema', s, 1);
  } catch (e) {
    return [false, (e as Error).message];
  }
  const err = checkSchema(schema, '(root)');
  return err ? [false, err] : [true, null];
});

reg('json.match_schema', 2, ([doc, s]) => {
  const docV = typeof doc === 'string' ? schemaArg('json.match_schema', doc, 1) : doc;
  const schema = schemaArg('json.match_schema', s, 2);
  const bad = checkSchema(schema, '(root)');
  if (bad) throw builtinErr('json.match_schema', `operand 2: ${bad}`);
  const errs: SchemaError[] = [];
  new Validator(schema).validate(schema, docV, [], errs);
  return [
    errs.length === 0,
    errs.map((e) => RObject.fromRecord({ error: `${e.field}: ${e.desc}`, type: e.type, field: e.field, desc: e.desc })),
  ];
});
