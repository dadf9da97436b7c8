/** Strict parsing of authorization inputs (JSONL lines of `ztmesh authz check --requests`). */
import { ZtmError } from '../errors.js';
import { arr, bool, checkSchema, formatPath, int, map, obj, str, any } from '../config/schema.js';
import type { SchemaIssue } from '../config/schema.js';
import type { AuthzInput } from './request.js';
import { isStrictIp } from '../config/kinds/common.js';

const headerValue = any;
export const authzInputSchema = obj(
  {
    workload: obj({ namespace: str(), labels: map(str()) }, ['namespace']),
    port: int(1, 65535),
    source: obj({ principal: str(), namespace: str(), ip: str(), mtls: bool }),
    remoteIp: str(),
    request: obj({ method: str(), path: str(), host: str(), headers: map(headerValue), body: str() }, ['method', 'path']),
    auth: obj({ principal: str(), audiences: arr(str()), presenter: str(), claims: map(any) }),
    destination: obj({ ip: str(), port: int(1, 65535), principal: str() }),
    sni: str(),
    /** Optional expectation for policy tests: the check fails when the decision differs. */
    expect: str({ enum: ['ALLOW', 'DENY'] }),
    /** A free-form label echoed in the output. */
    name: str(),
  },
  ['workload', 'request'],
);

export interface ParsedInput {
  input: AuthzInput;
  expect?: 'ALLOW' | 'DENY';
  name?: string;
}

export function parseAuthzInput(value: unknown, where: { file?: string; line?: number }): ParsedInput {
  const issues: SchemaIssue[] = [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) issues.push({ path: [], message: 'each request must be a JSON object' });
  else checkSchema(value, authzInputSchema, [], issues);
  const v = value as Record<string, any>;
  if (!issues.length) {
    for (const [k, hv] of Object.entries(v.request.headers ?? {})) {
      if (typeof hv !== 'string' && !(Array.isArray(hv) && hv.every((x) => typeof x === 'string'))) issues.push({ path: ['request', 'headers', k], message: 'must be a string or a list of strings' });
    }
    for (const [path, ip] of [[['source', 'ip'], v.source?.ip], [['remoteIp'], v.remoteIp], [['destination', 'ip'], v.destination?.ip]] as const) {
      if (ip !== undefined && !isStrictIp(ip)) issues.push({ path: [...path], message: `"${ip}" is not an IP address` });
    }
    if (!/^[A-Za-z!#$%&'*+\-.^_`|~0-9]+$/.test(v.request.method)) issues.push({ path: ['request', 'method'], message: `"${v.request.method}" is not an HTTP method token` });
  }
  if (issues.length) {
    throw new ZtmError('ZTM_INPUT_INVALID', issues.map((i) => `${formatPath(i.path) || '(request)'}: ${i.message}`).join('; '), where);
  }
  const { expect, name, ...input } = v;
  return { input: input as AuthzInput, expect, name };
}
