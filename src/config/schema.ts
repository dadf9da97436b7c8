/**
 * A small structural schema for resource documents: types, enums, required and
 * unknown fields. The walker reports every problem with its field path; semantic
 * rules (Istio's validation) run afterwards on the typed value.
 */
export type Schema =
  | { t: 'string'; enum?: readonly string[]; hint?: string }
  | { t: 'int'; min?: number; max?: number }
  | { t: 'number' }
  | { t: 'bool' }
  | { t: 'any' }
  | { t: 'array'; items: Schema }
  | { t: 'map'; values: Schema; keys?: 'string' | 'port' }
  | { t: 'object'; fields: Record<string, Schema>; required?: readonly string[]; open?: boolean };

export const str = (opts: { enum?: readonly string[]; hint?: string } = {}): Schema => ({ t: 'string', ...opts });
export const int = (min?: number, max?: number): Schema => ({ t: 'int', min, max });
export const num: Schema = { t: 'number' };
export const bool: Schema = { t: 'bool' };
export const any: Schema = { t: 'any' };
export const arr = (items: Schema): Schema => ({ t: 'array', items });
export const strs: Schema = arr(str());
export const map = (values: Schema, keys: 'string' | 'port' = 'string'): Schema => ({ t: 'map', values, keys });
export const obj = (fields: Record<string, Schema>, required: readonly string[] = [], open = false): Schema => ({
  t: 'object',
  fields,
  required,
  open,
});

export type PathSeg = string | number;

export interface SchemaIssue {
  path: PathSeg[];
  message: string;
  /** Point at the key rather than the value (unknown fields). */
  atKey?: boolean;
}

export function formatPath(path: readonly PathSeg[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) s += s ? `.${seg}` : seg;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

function closest(name: string, options: string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = editDistance(lower, o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** Check `value` against `schema`; push issues. A `null` value counts as absent (as in Kubernetes). */
export function checkSchema(value: unknown, schema: Schema, path: PathSeg[], out: SchemaIssue[]): void {
  if (value === null || value === undefined) return;
  switch (schema.t) {
    case 'any':
      return;
    case 'string':
      if (typeof value !== 'string') {
        const quoted = typeof value === 'number' || typeof value === 'boolean' ? ` (quote it: "${String(value)}")` : '';
        out.push({ path, message: `must be a string, found ${typeName(value)}${quoted}` });
      } else if (schema.enum && !schema.enum.includes(value)) {
        out.push({ path, message: `"${value}" is not one of ${schema.enum.join(', ')}` });
      }
      return;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) out.push({ path, message: `must be an integer, found ${typeName(value)}` });
      else if ((schema.min !== undefined && value < schema.min) || (schema.max !== undefined && value > schema.max))
        out.push({ path, message: `must be in range ${schema.min ?? '-∞'}..${schema.max ?? '∞'}, found ${value}` });
      return;
    case 'number':
      if (typeof value !== 'number') out.push({ path, message: `must be a number, found ${typeName(value)}` });
      return;
    case 'bool':
      if (typeof value !== 'boolean') out.push({ path, message: `must be true or false, found ${typeName(value)}` });
      return;
    case 'array':
      if (!Array.isArray(value)) {
        out.push({ path, message: `must be a list, found ${typeName(value)}` });
        return;
      }
      value.forEach((v, i) => {
        if (v === null || v === undefined) out.push({ path: [...path, i], message: 'list items must not be null' });
        else checkSchema(v, schema.items, [...path, i], out);
      });
      return;
    case 'map':
      if (typeof value !== 'object' || Array.isArray(value)) {
        out.push({ path, message: `must be a mapping, found ${typeName(value)}` });
        return;
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (schema.keys === 'port' && !/^[0-9]+$/.test(k)) out.push({ path: [...path, k], message: `key "${k}" must be a port number`, atKey: true });
        checkSchema(v, schema.values, [...path, k], out);
      }
      return;
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) {
        out.push({ path, message: `must be a mapping, found ${typeName(value)}` });
        return;
      }
      const rec = value as Record<string, unknown>;
      for (const r of schema.required ?? []) {
        if (rec[r] === undefined || rec[r] === null) out.push({ path: [...path, r], message: 'is required' });
      }
      for (const [k, v] of Object.entries(rec)) {
        const fs = schema.fields[k];
        if (!fs) {
          if (schema.open) continue;
          const guess = closest(k, Object.keys(schema.fields));
          out.push({
            path: [...path, k],
            message: `unknown field "${k}"${guess ? ` (did you mean "${guess}"?)` : ''}`,
            atKey: true,
          });
          continue;
        }
        checkSchema(v, fs, [...path, k], out);
      }
      return;
    }
  }
}
