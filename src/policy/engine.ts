/**
 * The authorization decision: a pure function of the compiled policies and one
 * request. Sidecar, gateway, `ztmesh authz check` and the tests all call this.
 */
import type { AuthorizationPolicy, AuthzAction, PathNormalizationMode } from '../config/types.js';
import { compilePolicy, describeContext, explainMiss, matchPolicy } from './authz.js';
import type { CompiledPolicy } from './authz.js';
import { normalizePath } from './path.js';
import type { AuthzInput, RequestContext, WorkloadRef } from './request.js';
import { lowerCaseHeaders, principalParts, toIstioPrincipal } from './request.js';
import { selectorMatches, workloadKey } from './select.js';

export interface WorkloadPolicies {
  custom: CompiledPolicy[];
  deny: CompiledPolicy[];
  allow: CompiledPolicy[];
  audit: CompiledPolicy[];
  dryRun: CompiledPolicy[];
  /** DENY and ALLOW policies indexed by the exact source principal they require. */
  denyByPrincipal: PrincipalIndex;
  allowByPrincipal: PrincipalIndex;
}

/**
 * Policies that can only match given principals are listed under each of them, merged
 * (in policy order) with the policies that can match anyone; a request walks one list.
 */
export class PrincipalIndex {
  private readonly map = new Map<string, CompiledPolicy[]>();
  readonly generic: CompiledPolicy[];

  constructor(policies: CompiledPolicy[]) {
    this.generic = policies.filter((p) => p.principals === null);
    const keyed = new Map<string, CompiledPolicy[]>();
    for (const p of policies) {
      if (!p.principals) continue;
      for (const k of p.principals) {
        const l = keyed.get(k) ?? [];
        l.push(p);
        keyed.set(k, l);
      }
    }
    for (const [k, l] of keyed) this.map.set(k, [...l, ...this.generic].sort((a, b) => a.rank - b.rank));
  }

  candidates(principal: string): readonly CompiledPolicy[] {
    return (principal && this.map.get(principal)) || this.generic;
  }
}

const CACHE_LIMIT = 10_000;

/** All AuthorizationPolicies of a snapshot, compiled once; per-workload selections are memoized. */
export class PolicyIndex {
  readonly rootNamespace: string;
  readonly policies: readonly CompiledPolicy[];
  private readonly byNamespace = new Map<string, CompiledPolicy[]>();
  private readonly cache = new Map<string, WorkloadPolicies>();

  constructor(policies: AuthorizationPolicy[], rootNamespace: string) {
    this.rootNamespace = rootNamespace;
    const compiled = policies.map(compilePolicy);
    // Deterministic order for attribution: root namespace first, then oldest first.
    compiled.sort((a, b) => {
      const ra = a.namespace === rootNamespace ? 0 : 1;
      const rb = b.namespace === rootNamespace ? 0 : 1;
      if (ra !== rb) return ra - rb;
      if (a.order[0] !== b.order[0]) return a.order[0] < b.order[0] ? -1 : 1;
      return a.order[1] - b.order[1];
    });
    this.policies = compiled;
    compiled.forEach((p, i) => (p.rank = i));
    for (const p of compiled) {
      const list = this.byNamespace.get(p.namespace) ?? [];
      list.push(p);
      this.byNamespace.set(p.namespace, list);
    }
  }

  /** Policies that select a workload: its namespace's, plus the root namespace's (mesh-wide). */
  forWorkload(w: WorkloadRef): WorkloadPolicies {
    const key = workloadKey(w.namespace, w.labels);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const out = { custom: [], deny: [], allow: [], audit: [], dryRun: [] } as unknown as WorkloadPolicies;
    const scopes = w.namespace === this.rootNamespace ? [this.rootNamespace] : [this.rootNamespace, w.namespace];
    for (const ns of scopes) {
      for (const p of this.byNamespace.get(ns) ?? []) {
        if (!selectorMatches(p.selector, w.labels)) continue;
        if (p.dryRun) out.dryRun.push(p);
        else if (p.action === 'CUSTOM') out.custom.push(p);
        else if (p.action === 'DENY') out.deny.push(p);
        else if (p.action === 'AUDIT') out.audit.push(p);
        else out.allow.push(p);
      }
    }
    out.denyByPrincipal = new PrincipalIndex(out.deny);
    out.allowByPrincipal = new PrincipalIndex(out.allow);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(key, out);
    return out;
  }
}

export interface CustomResult {
  allowed: boolean;
  /** HTTP status for a denial (default 403). */
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  reason?: string;
}

export type CustomAuthorizer = (provider: string, input: AuthzInput, ctx: RequestContext) => CustomResult;
export type AsyncCustomAuthorizer = (provider: string, input: AuthzInput, ctx: RequestContext) => CustomResult | Promise<CustomResult>;

export interface PolicyRef {
  policy: string;
  rule: number;
}

export interface DryRunResult {
  policy: string;
  action: AuthzAction;
  matched: boolean;
  rule: number | null;
  /** What enforcing this policy alone would have done to the request. */
  wouldBe: 'ALLOW' | 'DENY' | 'NO_EFFECT';
}

export interface Decision {
  decision: 'ALLOW' | 'DENY';
  status: number;
  normalizedPath: string | null;
  policy: string | null;
  rule: number | null;
  action: AuthzAction | null;
  reason: string;
  dryRun: DryRunResult[];
  audit: PolicyRef[];
  custom?: { provider: string; policy: string; allowed: boolean; status?: number; headers?: Record<string, string>; body?: string; reason?: string };
}

export interface AuthorizeOptions {
  pathNormalization?: PathNormalizationMode;
  /** Set when the path was already normalized (by the proxy's path filter): it is matched as given. */
  pathIsNormalized?: boolean;
  custom?: CustomAuthorizer;
}

/** Build the attributes compiled matchers read. `path` must already be normalized. */
export function requestContext(input: AuthzInput, path: string): RequestContext {
  const src = input.source ?? {};
  const mtls = src.mtls ?? Boolean(src.principal);
  const principal = mtls && src.principal ? toIstioPrincipal(src.principal) : '';
  const parts = principalParts(principal);
  const claims = input.auth?.claims;
  const claimStr = (k: string) => (typeof claims?.[k] === 'string' ? (claims[k] as string) : '');
  const aud = claims?.aud;
  const headers = lowerCaseHeaders(input.request.headers);
  return {
    principal,
    sourceNamespace: mtls ? parts.namespace || src.namespace || '' : '',
    sourceServiceAccount: parts.namespace ? `${parts.namespace}/${parts.serviceAccount}` : '',
    sourceIp: src.ip,
    remoteIp: input.remoteIp ?? src.ip,
    method: input.request.method,
    path,
    host: input.request.host ?? headers.host ?? '',
    headers,
    port: input.port,
    destinationIp: input.destination?.ip,
    destinationPort: input.destination?.port ?? input.port,
    sni: input.sni ?? '',
    requestPrincipal: input.auth?.principal ?? (claimStr('iss') && claimStr('sub') ? `${claimStr('iss')}/${claimStr('sub')}` : ''),
    audiences: input.auth?.audiences ?? (typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : []),
    presenter: input.auth?.presenter ?? claimStr('azp'),
    claims,
  };
}

interface Prepared {
  ctx: RequestContext | null;
  set: WorkloadPolicies;
  early?: Decision;
  customMatches: { policy: CompiledPolicy; rule: number }[];
}

const NONE: never[] = [];
/** A denial explains at most this many ALLOW policies (the rest are counted). */
const MAX_EXPLAINED = 8;

function prepare(set: WorkloadPolicies, input: AuthzInput, opts: Pick<AuthorizeOptions, 'pathNormalization' | 'pathIsNormalized'>): Prepared {
  let path = input.request.path;
  if (opts.pathIsNormalized) {
    // Already normalized; a query string may follow (CUSTOM providers see it), matching does not.
    const q = path.indexOf('?');
    if (q >= 0) path = path.slice(0, q);
  } else {
    const n = normalizePath(input.request.path, opts.pathNormalization ?? 'BASE');
    if (!n.ok) {
      return { ctx: null, set, customMatches: NONE, early: decision('DENY', 400, null, null, null, null, `bad request path: ${n.reason}`, NONE, NONE, undefined) };
    }
    path = n.path;
  }
  const ctx = requestContext(input, path);
  let customMatches: Prepared['customMatches'] = NONE;
  for (const p of set.custom) {
    const rule = matchPolicy(p, ctx);
    if (rule >= 0) (customMatches === NONE ? (customMatches = []) : customMatches).push({ policy: p, rule });
  }
  return { ctx, set, customMatches };
}

/** One fixed object shape for every decision (keeps the hot path monomorphic). */
function decision(
  d: 'ALLOW' | 'DENY',
  status: number,
  normalizedPath: string | null,
  policy: string | null,
  rule: number | null,
  action: AuthzAction | null,
  reason: string,
  dryRun: DryRunResult[],
  audit: PolicyRef[],
  custom: Decision['custom'],
): Decision {
  return { decision: d, status, normalizedPath, policy, rule, action, reason, dryRun, audit, custom };
}

function firstMatch(list: readonly CompiledPolicy[], ctx: RequestContext): { policy: CompiledPolicy; rule: number } | null {
  for (let i = 0; i < list.length; i++) {
    const rule = matchPolicy(list[i], ctx);
    if (rule >= 0) return { policy: list[i], rule };
  }
  return null;
}

function finish(p: Prepared, customResults: CustomResult[]): Decision {
  if (p.early) return p.early;
  const ctx = p.ctx!;
  const set = p.set;
  const audit = set.audit.length ? audits(set, ctx) : NONE;
  const dry = set.dryRun.length ? shadow(set, ctx) : NONE;
  let custom: Decision['custom'];
  for (let i = 0; i < p.customMatches.length; i++) {
    const { policy, rule } = p.customMatches[i];
    const r = customResults[i];
    custom = { provider: policy.provider ?? '', policy: policy.id, ...r };
    if (!r.allowed) {
      const why = `denied by CUSTOM policy ${policy.id} rule ${rule}: provider "${policy.provider}" ${r.reason ? `said: ${r.reason}` : 'denied the request'}`;
      return decision('DENY', r.status ?? 403, ctx.path, policy.id, rule, 'CUSTOM', why, dry, audit, custom);
    }
  }
  const deny = firstMatch(set.denyByPrincipal.candidates(ctx.principal), ctx);
  if (deny) return decision('DENY', 403, ctx.path, deny.policy.id, deny.rule, 'DENY', `denied by DENY policy ${deny.policy.id} rule ${deny.rule}`, dry, audit, custom);
  if (set.allow.length === 0) {
    return decision('ALLOW', 200, ctx.path, null, null, null, 'no ALLOW policy applies to this workload, so the request is allowed (add an ALLOW policy or a deny-all `spec: {}` to restrict it)', dry, audit, custom);
  }
  const allow = firstMatch(set.allowByPrincipal.candidates(ctx.principal), ctx);
  if (allow) return decision('ALLOW', 200, ctx.path, allow.policy.id, allow.rule, 'ALLOW', `allowed by ALLOW policy ${allow.policy.id} rule ${allow.rule}`, dry, audit, custom);
  // Cold path: say why each ALLOW policy missed.
  const shown = set.allow.slice(0, MAX_EXPLAINED);
  const misses = shown.map((pol) => `${pol.id}: ${explainMiss(pol, ctx)}`);
  if (set.allow.length > shown.length) misses.push(`… and ${set.allow.length - shown.length} more ALLOW policies`);
  return decision('DENY', 403, ctx.path, null, null, null, `no ALLOW policy matched (${describeContext(ctx)}); ${misses.join('; ')}`, dry, audit, custom);
}

function audits(set: WorkloadPolicies, ctx: RequestContext): PolicyRef[] {
  const out: PolicyRef[] = [];
  for (const p of set.audit) {
    const rule = matchPolicy(p, ctx);
    if (rule >= 0) out.push({ policy: p.id, rule });
  }
  return out;
}

function shadow(set: WorkloadPolicies, ctx: RequestContext): DryRunResult[] {
  return set.dryRun.map((p) => {
    const rule = matchPolicy(p, ctx);
    const matched = rule >= 0;
    let wouldBe: DryRunResult['wouldBe'] = 'NO_EFFECT';
    if (p.action === 'DENY') wouldBe = matched ? 'DENY' : 'NO_EFFECT';
    else if (p.action === 'ALLOW') wouldBe = matched ? 'ALLOW' : 'DENY';
    return { policy: p.id, action: p.action, matched, rule: matched ? rule : null, wouldBe };
  });
}

const NO_PROVIDER: CustomResult = { allowed: false, status: 403, reason: 'no CUSTOM authorizer is available for this provider (failing closed)' };

/** Decide one request. CUSTOM providers are consulted through `opts.custom` (fail closed without one). */
export function authorize(index: PolicyIndex, input: AuthzInput, opts: AuthorizeOptions = {}): Decision {
  return authorizeFor(index.forWorkload(input.workload), input, opts);
}

/**
 * As `authorize`, with the workload's policies already selected: a sidecar serves one
 * workload, so it selects once per snapshot and skips the lookup on every request.
 */
export function authorizeFor(set: WorkloadPolicies, input: AuthzInput, opts: AuthorizeOptions = {}): Decision {
  const p = prepare(set, input, opts);
  if (p.customMatches.length === 0) return finish(p, NONE);
  const results = p.customMatches.map(({ policy }) => (opts.custom ? safeCustom(() => opts.custom!(policy.provider ?? '', input, p.ctx!)) : NO_PROVIDER));
  return finish(p, results);
}

/** As `authorizeFor`, for CUSTOM providers that answer asynchronously (an external OPA server). */
export async function authorizeAsync(set: WorkloadPolicies, input: AuthzInput, opts: Omit<AuthorizeOptions, 'custom'> & { custom?: AsyncCustomAuthorizer } = {}): Promise<Decision> {
  const p = prepare(set, input, opts);
  const results: CustomResult[] = [];
  for (const { policy } of p.customMatches) {
    if (!opts.custom) results.push(NO_PROVIDER);
    else {
      try {
        results.push(await opts.custom(policy.provider ?? '', input, p.ctx!));
      } catch (e) {
        results.push({ allowed: false, status: 403, reason: `provider error: ${(e as Error).message} (failing closed)` });
      }
    }
  }
  return finish(p, results);
}

function safeCustom(f: () => CustomResult): CustomResult {
  try {
    return f();
  } catch (e) {
    return { allowed: false, status: 403, reason: `provider error: ${(e as Error).message} (failing closed)` };
  }
}
