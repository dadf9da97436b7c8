/**
 * Authorization with Istio's semantics: CUSTOM, then DENY, then ALLOW; AUDIT is
 * reported but never decides; `istio.io/dry-run` policies are evaluated in shadow.
 * Policies compile once into closures; a request builds one RequestContext and
 * walks the compiled rules of the policies that select its workload.
 */
import type { AuthorizationPolicy, AuthzAction, IstioCondition, IstioOperation, IstioRule, IstioSource } from '../config/types.js';
import { compileCidrList, compileHostList, compilePathList, compileStringList, parseIp } from './match.js';
import type { ParsedIp, StringTest } from './match.js';
import type { RequestContext } from './request.js';

/** One test inside a rule, named by its field path so a denial can say what failed. */
interface Clause {
  field: string;
  test(ctx: RequestContext): boolean;
}

interface CompiledRule {
  index: number;
  /** OR of sources, each an AND of clauses; null when the rule has no `from`. */
  from: Clause[][] | null;
  to: Clause[][] | null;
  when: Clause[];
}

export interface CompiledPolicy {
  id: string; // namespace/name
  namespace: string;
  name: string;
  action: AuthzAction;
  provider?: string;
  dryRun: boolean;
  selector?: Record<string, string>;
  rules: CompiledRule[];
  /** ordering key: creation time then load order */
  order: [number, number];
  /** Position in the index's sorted order (set by PolicyIndex). */
  rank: number;
  /**
   * The exact source principals this policy can match, when every rule requires one
   * (every rule has `from`, every source lists only exact `principals`); otherwise null.
   * Used to index policies by principal.
   */
  principals: ReadonlySet<string> | null;
  source: { file: string; line: number };
}

export interface RuleMatch {
  rule: number;
}

function ip(ctx: RequestContext, key: 'sourceIp' | 'remoteIp' | 'destinationIp'): ParsedIp | undefined {
  const cache = (ctx._ips ??= {});
  if (key in cache) return cache[key] as ParsedIp | undefined;
  const p = parseIp(ctx[key]);
  cache[key] = p;
  return p;
}

function negate(c: Clause): Clause {
  return { field: c.field, test: (ctx) => !c.test(ctx) };
}

function stringClause(field: string, values: string[] | undefined, get: (ctx: RequestContext) => string, negated: boolean, compile: (v: string[]) => StringTest = (v) => compileStringList(v)): Clause | null {
  if (!values?.length) return null;
  const t = compile(values);
  const c: Clause = { field, test: (ctx) => t(get(ctx)) };
  return negated ? negate(c) : c;
}

function cidrClause(field: string, values: string[] | undefined, key: 'sourceIp' | 'remoteIp' | 'destinationIp', negated: boolean): Clause | null {
  if (!values?.length) return null;
  const t = compileCidrList(values);
  const c: Clause = { field, test: (ctx) => t(ip(ctx, key)) };
  return negated ? negate(c) : c;
}

function portClause(field: string, values: string[] | undefined, get: (ctx: RequestContext) => number | undefined, negated: boolean): Clause | null {
  if (!values?.length) return null;
  const set = new Set(values.map(Number));
  const c: Clause = { field, test: (ctx) => { const p = get(ctx); return p !== undefined && set.has(p); } };
  return negated ? negate(c) : c;
}

function serviceAccountTest(values: string[], policyNamespace: string): StringTest {
  const full = values.map((v) => (v.includes('/') ? v : `${policyNamespace}/${v}`));
  return compileStringList(full);
}

function compileSource(src: IstioSource, base: string, policyNs: string): Clause[] {
  const f = (k: string) => `${base}.${k}`;
  const list = [
    stringClause(f('principals'), src.principals, (c) => c.principal, false),
    stringClause(f('notPrincipals'), src.notPrincipals, (c) => c.principal, true),
    stringClause(f('requestPrincipals'), src.requestPrincipals, (c) => c.requestPrincipal, false),
    stringClause(f('notRequestPrincipals'), src.notRequestPrincipals, (c) => c.requestPrincipal, true),
    stringClause(f('namespaces'), src.namespaces, (c) => c.sourceNamespace, false),
    stringClause(f('notNamespaces'), src.notNamespaces, (c) => c.sourceNamespace, true),
    stringClause(f('serviceAccounts'), src.serviceAccounts, (c) => c.sourceServiceAccount, false, (v) => serviceAccountTest(v, policyNs)),
    stringClause(f('notServiceAccounts'), src.notServiceAccounts, (c) => c.sourceServiceAccount, true, (v) => serviceAccountTest(v, policyNs)),
    cidrClause(f('ipBlocks'), src.ipBlocks, 'sourceIp', false),
    cidrClause(f('notIpBlocks'), src.notIpBlocks, 'sourceIp', true),
    cidrClause(f('remoteIpBlocks'), src.remoteIpBlocks, 'remoteIp', false),
    cidrClause(f('notRemoteIpBlocks'), src.notRemoteIpBlocks, 'remoteIp', true),
  ];
  return list.filter((c): c is Clause => c !== null);
}

function compileOperation(op: IstioOperation, base: string): Clause[] {
  const f = (k: string) => `${base}.${k}`;
  const list = [
    stringClause(f('hosts'), op.hosts, (c) => c.host, false, compileHostList),
    stringClause(f('notHosts'), op.notHosts, (c) => c.host, true, compileHostList),
    portClause(f('ports'), op.ports, (c) => c.port, false),
    portClause(f('notPorts'), op.notPorts, (c) => c.port, true),
    stringClause(f('methods'), op.methods, (c) => c.method, false),
    stringClause(f('notMethods'), op.notMethods, (c) => c.method, true),
    stringClause(f('paths'), op.paths, (c) => c.path, false, compilePathList),
    stringClause(f('notPaths'), op.notPaths, (c) => c.path, true, compilePathList),
  ];
  return list.filter((c): c is Clause => c !== null);
}

/** Claim lookup for `request.auth.claims[a][b]`: nested objects; lists of strings match if any element matches. */
function claimValues(claims: Record<string, unknown> | undefined, keys: string[]): string[] {
  let cur: unknown = claims;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return [];
    cur = (cur as Record<string, unknown>)[k];
  }
  if (typeof cur === 'string') return [cur];
  if (typeof cur === 'number' || typeof cur === 'boolean') return [String(cur)];
  if (Array.isArray(cur)) return cur.filter((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean').map(String);
  return [];
}

function compileCondition(cond: IstioCondition, base: string, policyNs: string): Clause {
  const key = cond.key;
  type Getter = { one?: (c: RequestContext) => string; many?: (c: RequestContext) => readonly string[]; ip?: 'sourceIp' | 'remoteIp' | 'destinationIp'; port?: (c: RequestContext) => number | undefined; header?: string };
  let g: Getter;
  if (key.startsWith('request.headers[')) g = { header: key.slice('request.headers['.length, -1).toLowerCase() };
  else if (key.startsWith('request.auth.claims[')) {
    const keys = key.slice('request.auth.claims'.length).slice(1, -1).split('][');
    g = { many: (c) => claimValues(c.claims, keys) };
  } else {
    switch (key) {
      case 'source.ip': g = { ip: 'sourceIp' }; break;
      case 'remote.ip': g = { ip: 'remoteIp' }; break;
      case 'destination.ip': g = { ip: 'destinationIp' }; break;
      case 'destination.port': g = { port: (c) => c.destinationPort ?? c.port }; break;
      case 'source.namespace': g = { one: (c) => c.sourceNamespace }; break;
      case 'source.principal': g = { one: (c) => c.principal }; break;
      case 'source.serviceAccount': g = { one: (c) => c.sourceServiceAccount }; break;
      case 'request.auth.principal': g = { one: (c) => c.requestPrincipal }; break;
      case 'request.auth.audiences': g = { many: (c) => c.audiences }; break;
      case 'request.auth.presenter': g = { one: (c) => c.presenter }; break;
      case 'connection.sni': g = { one: (c) => c.sni }; break;
      default: throw new Error(`unvalidated condition key ${key}`);
    }
  }
  const build = (values: string[]): (ctx: RequestContext) => boolean => {
    if (g.ip) {
      const t = compileCidrList(values);
      const k = g.ip;
      return (ctx) => t(ip(ctx, k));
    }
    if (g.port) {
      const set = new Set(values.map(Number));
      const get = g.port;
      return (ctx) => { const p = get(ctx); return p !== undefined && set.has(p); };
    }
    if (g.header !== undefined) {
      const h = g.header;
      const presenceOnly = values.includes('*');
      const t = compileStringList(values);
      // `*` on a header means "present", even with an empty value.
      return (ctx) => { const v = ctx.headers[h]; return v !== undefined && (presenceOnly || t(v)); };
    }
    const t = key === 'source.serviceAccount' ? serviceAccountTest(values, policyNs) : compileStringList(values);
    if (g.many) {
      const many = g.many;
      return (ctx) => { const vs = many(ctx); for (let i = 0; i < vs.length; i++) if (t(vs[i])) return true; return false; };
    }
    const one = g.one!;
    return (ctx) => t(one(ctx));
  };
  const pos = cond.values?.length ? build(cond.values) : null;
  const neg = cond.notValues?.length ? build(cond.notValues) : null;
  return { field: `${base}[${JSON.stringify(key)}]`, test: (ctx) => (pos === null || pos(ctx)) && (neg === null || !neg(ctx)) };
}

function compileRule(rule: IstioRule, index: number, policyNs: string): CompiledRule {
  const base = `rules[${index}]`;
  const from = rule.from?.length ? rule.from.map((f, j) => compileSource(f.source ?? {}, `${base}.from[${j}].source`, policyNs)) : null;
  const to = rule.to?.length ? rule.to.map((t, j) => compileOperation(t.operation ?? {}, `${base}.to[${j}].operation`)) : null;
  const when = (rule.when ?? []).map((c, j) => compileCondition(c, `${base}.when[${j}]`, policyNs));
  return { index, from, to, when };
}

export function compilePolicy(p: AuthorizationPolicy): CompiledPolicy {
  const spec = p.spec ?? {};
  const ts = p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : Number.POSITIVE_INFINITY;
  const labels = spec.selector?.matchLabels;
  return {
    id: `${p.metadata.namespace}/${p.metadata.name}`,
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    action: spec.action ?? 'ALLOW',
    provider: spec.provider?.name,
    dryRun: p.metadata.annotations['istio.io/dry-run'] === 'true',
    selector: labels && Object.keys(labels).length ? labels : undefined,
    rules: (spec.rules ?? []).map((r, i) => compileRule(r ?? {}, i, p.metadata.namespace)),
    order: [ts, p.seq],
    rank: 0,
    principals: requiredPrincipals(spec.rules ?? []),
    source: { file: p.source.file, line: p.source.line },
  };
}

function requiredPrincipals(rules: IstioRule[]): Set<string> | null {
  if (rules.length === 0) return new Set();
  const out = new Set<string>();
  for (const r of rules) {
    if (!r?.from?.length) return null;
    for (const f of r.from) {
      const ps = f.source?.principals;
      if (!ps?.length || ps.some((v) => v.includes('*'))) return null;
      for (const v of ps) out.add(v);
    }
  }
  return out;
}

function allOf(clauses: Clause[], ctx: RequestContext): boolean {
  for (let i = 0; i < clauses.length; i++) if (!clauses[i].test(ctx)) return false;
  return true;
}

function anyOf(groups: Clause[][] | null, ctx: RequestContext): boolean {
  if (groups === null) return true;
  for (let i = 0; i < groups.length; i++) if (allOf(groups[i], ctx)) return true;
  return false;
}

/** The index of the first rule that matches, or -1. */
export function matchPolicy(p: CompiledPolicy, ctx: RequestContext): number {
  const rules = p.rules;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if (anyOf(r.from, ctx) && anyOf(r.to, ctx) && allOf(r.when, ctx)) return r.index;
  }
  return -1;
}

/** Why a policy did not match: the first failing clause of each rule (cold path, for explanations). */
export function explainMiss(p: CompiledPolicy, ctx: RequestContext): string {
  if (p.rules.length === 0) return 'it has no rules, so it matches no request';
  const why = p.rules.map((r) => {
    const fail = (groups: Clause[][] | null): string | null => {
      if (groups === null || anyOf(groups, ctx)) return null;
      const names = groups.map((g) => g.find((c) => !c.test(ctx))?.field).filter(Boolean);
      return names.join(' / ');
    };
    const f = fail(r.from) ?? fail(r.to) ?? r.when.find((c) => !c.test(ctx))?.field ?? '?';
    return `${f} did not match`;
  });
  return why.join('; ');
}

/** Describe the request attribute a field path reads, for explanations. */
export function describeContext(ctx: RequestContext): string {
  const parts = [
    `principal=${ctx.principal || '(none: plaintext)'}`,
    `method=${ctx.method}`,
    `path=${ctx.path}`,
  ];
  if (ctx.host) parts.push(`host=${ctx.host}`);
  if (ctx.requestPrincipal) parts.push(`requestPrincipal=${ctx.requestPrincipal}`);
  return parts.join(' ');
}
