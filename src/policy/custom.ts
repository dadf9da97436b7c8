/**
 * CUSTOM authorization providers (MeshConfig `extensionProviders`), Istio's CUSTOM action
 * with two kinds: `rego` (modules evaluated in-process by ztmesh's Rego engine) and `opa`
 * (an external OPA server through its REST Data API, with a timeout, failing closed).
 * The input document follows the opa-envoy-plugin shape, so OPA policies written for
 * Envoy's external authorization work unchanged.
 */
import { ZtmError } from '../errors.js';
import type { ExtensionProvider, MeshSettings } from '../config/types.js';
import type * as RegoEngine from '../rego/index.js';
import type { CompiledPolicy as RegoPolicy } from '../rego/index.js';
import type { AsyncCustomAuthorizer, CustomAuthorizer, CustomResult } from './engine.js';
import type { AuthzInput, RequestContext } from './request.js';

/*
 * The Rego engine is loaded on demand: a sidecar whose mesh has no Rego provider never
 * loads it (a sizeable part of a sidecar's memory). Code that reads configuration files
 * has it already (config/rego-bundle.ts provides it); a sidecar awaits loadRegoEngine()
 * before applying a slice that needs it.
 */
let rego: typeof RegoEngine | undefined;

export function provideRegoEngine(m: typeof RegoEngine): void {
  rego = m;
}

export async function loadRegoEngine(): Promise<void> {
  rego ??= await import('../rego/index.js');
}

export function needsRegoEngine(mesh: Pick<MeshSettings, 'extensionProviders'>): boolean {
  return !rego && mesh.extensionProviders.some((p) => p.rego);
}

/** The opa-envoy-plugin input document (plus ztmesh's `attributes.auth` with verified JWT claims). */
export function opaInput(input: AuthzInput, ctx: RequestContext): Record<string, unknown> {
  const q = input.request.path.indexOf('?');
  const query = q >= 0 ? input.request.path.slice(q + 1).split('#')[0] : '';
  const parsedQuery: Record<string, string[]> = {};
  if (query) {
    for (const [k, v] of new URLSearchParams(query)) (parsedQuery[k] ??= []).push(v);
  }
  const spiffe = (p: string) => (p ? (p.startsWith('spiffe://') ? p : `spiffe://${p}`) : '');
  const body = input.request.body;
  let parsedBody: unknown;
  if (typeof body === 'string' && /json/i.test(String(ctx.headers['content-type'] ?? ''))) {
    try {
      parsedBody = JSON.parse(body);
    } catch {
      parsedBody = undefined;
    }
  }
  return {
    attributes: {
      source: { principal: spiffe(ctx.principal), address: { socketAddress: { address: ctx.sourceIp ?? '' } } },
      destination: { principal: input.destination?.principal ?? '', address: { socketAddress: { address: ctx.destinationIp ?? '', portValue: ctx.destinationPort ?? 0 } } },
      request: {
        http: {
          method: ctx.method,
          path: ctx.path + (query ? `?${query}` : ''),
          host: ctx.host,
          headers: ctx.headers,
          scheme: ctx.principal ? 'https' : 'http',
          protocol: 'HTTP/1.1',
          ...(typeof body === 'string' ? { body } : {}),
        },
      },
      ...(ctx.requestPrincipal || ctx.claims ? { auth: { principal: ctx.requestPrincipal, audiences: ctx.audiences, presenter: ctx.presenter, claims: ctx.claims ?? {} } } : {}),
    },
    parsed_path: ctx.path.split('/').filter((s) => s !== ''),
    parsed_query: parsedQuery,
    ...(parsedBody !== undefined ? { parsed_body: parsedBody } : {}),
    truncated_body: false,
  };
}

/** Interpret a decision the way opa-envoy-plugin does: a boolean, or `{allowed, headers, http_status, body}`. */
export function interpretDecision(v: unknown, provider: string): CustomResult {
  if (v === true) return { allowed: true };
  if (v === false || v === undefined || v === null) return { allowed: false, status: 403, reason: v === undefined ? `${provider}: decision undefined (deny)` : `${provider}: denied` };
  if (typeof v === 'object' && !Array.isArray(v)) {
    const o = v as { allowed?: unknown; headers?: unknown; http_status?: unknown; body?: unknown };
    const headers: Record<string, string> = {};
    if (o.headers && typeof o.headers === 'object') for (const [k, hv] of Object.entries(o.headers)) headers[k] = String(hv);
    const status = typeof o.http_status === 'number' ? o.http_status : undefined;
    return { allowed: o.allowed === true, status: o.allowed === true ? undefined : status ?? 403, headers, body: typeof o.body === 'string' ? o.body : undefined, reason: `${provider}: ${o.allowed === true ? 'allowed' : 'denied'}` };
  }
  return { allowed: false, status: 403, reason: `${provider}: the decision is neither a boolean nor an object (deny)` };
}

export interface CustomProviders {
  /** In-process providers (rego). */
  sync: CustomAuthorizer;
  /** Every provider, including external OPA servers. */
  async: AsyncCustomAuthorizer;
  /** Whether any provider needs the async path. */
  hasAsync: boolean;
}

/** Compile the mesh's providers once per snapshot. */
export function buildCustomProviders(mesh: MeshSettings, opts: { fetch?: typeof fetch; nowNs?: bigint } = {}): CustomProviders {
  const regoProviders = new Map<string, { policy: RegoPolicy; path: string[]; data?: unknown }>();
  const opa = new Map<string, NonNullable<ExtensionProvider['opa']>>();
  for (const p of mesh.extensionProviders) {
    if (p.rego) {
      if (!p.rego.bundle) throw new ZtmError('ZTM_CONFIG_INVALID', `rego provider "${p.name}" has no modules loaded`);
      const decision = (p.rego.decision ?? 'envoy/authz/allow').replace(/^data[./]/, '');
      if (!rego) throw new ZtmError('ZTM_INTERNAL', 'the Rego engine is not loaded (await loadRegoEngine() before compiling a configuration with Rego providers)');
      regoProviders.set(p.name, { policy: rego.compileModules(p.rego.bundle.modules), path: decision.split(/[./]/).filter(Boolean), data: p.rego.bundle.data });
    } else if (p.opa) opa.set(p.name, p.opa);
  }
  const f = opts.fetch ?? fetch;
  const sync: CustomAuthorizer = (name, input, ctx) => {
    const r = regoProviders.get(name);
    if (!r) {
      if (opa.has(name)) throw new Error(`provider "${name}" is an external OPA server; this caller only evaluates in-process providers`);
      return { allowed: false, status: 403, reason: `no extension provider named "${name}" in MeshConfig (failing closed)` };
    }
    const v = r.policy.evalPath(r.path, { input: opaInput(input, ctx), data: r.data, nowNs: opts.nowNs });
    return interpretDecision(v === undefined ? undefined : rego!.toJSON(v), name);
  };
  const asyncFn: AsyncCustomAuthorizer = async (name, input, ctx) => {
    const o = opa.get(name);
    if (!o) return sync(name, input, ctx);
    const path = (o.path ?? 'envoy/authz/allow').replace(/^\/+|\/+$/g, '').replace(/\./g, '/');
    const timeoutMs = o.timeout ? parseTimeout(o.timeout) : 1000;
    try {
      const res = await f(new URL(`/v1/data/${path}`, o.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: opaInput(input, ctx) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) throw new Error(`OPA answered ${res.status}`);
      const j = (await res.json()) as { result?: unknown };
      return interpretDecision(j.result, name);
    } catch (e) {
      if (o.failOpen) return { allowed: true, reason: `${name}: OPA unavailable (${(e as Error).message}); failOpen is set` };
      return { allowed: false, status: 403, reason: `${name}: OPA unavailable (${(e as Error).message}); failing closed` };
    }
  };
  return { sync, async: asyncFn, hasAsync: opa.size > 0 };
}

function parseTimeout(s: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(s);
  if (!m) return 1000;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}
