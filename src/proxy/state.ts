/**
 * A slice from the control plane, validated and compiled into what the request path
 * reads: the workload's selected policies, its mTLS modes, the service table keyed by
 * every host alias, egress entries and the quarantine set. Built once per version.
 */
import { validateObjects } from '../config/validate.js';
import type { ServiceEntrySpec } from '../config/types.js';
import { compile } from '../policy/snapshot.js';
import type { PolicySnapshot } from '../policy/snapshot.js';
import type { WorkloadPolicies } from '../policy/engine.js';
import type { WorkloadRef } from '../policy/request.js';
import type { EgressEntry, ServiceInfo, WorkloadSlice } from '../control/protocol.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';

export interface ProxyState {
  version: string;
  slice: WorkloadSlice;
  snapshot: PolicySnapshot;
  policies: WorkloadPolicies;
  services: Map<string, ServiceInfo>;
  egress: EgressEntry[];
  quarantined: ReadonlySet<string>;
}

export class SliceError extends Error {}

/** Validate and compile a slice; throws SliceError (the sidecar NACKs with its message). */
export function applySlice(slice: WorkloadSlice, workload: WorkloadRef): ProxyState {
  if (!slice || typeof slice.version !== 'string' || !Array.isArray(slice.resources) || !Array.isArray(slice.services) || !slice.mesh) {
    throw new SliceError('malformed slice: version, mesh, resources and services are required');
  }
  const docs = [
    ...slice.resources,
    ...(slice.egress ?? []).map((e) => ({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: e.name, namespace: e.namespace }, spec: e.spec })),
    ...(slice.destinationRules ?? []).map((d) => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: d.name, namespace: d.namespace }, spec: d.spec })),
  ];
  // The same validation as the control plane's, on the objects as received (no YAML round trip).
  const res = validateObjects(`slice ${slice.version}`, docs);
  if (!res.ok) throw new SliceError(res.errors.map((e) => e.format()).join('; '));
  if (res.notices.length) throw new SliceError(`slice carries kinds this sidecar does not read: ${res.notices.map((n) => n.message).join('; ')}`);
  const snapshot = compile({ ...res.config, mesh: slice.mesh });
  const services = new Map<string, ServiceInfo>();
  for (const s of slice.services) {
    for (const alias of hostAliases(s, workload.namespace, slice.mesh.trustDomain)) services.set(alias, s);
  }
  return {
    version: slice.version,
    slice,
    snapshot,
    policies: snapshot.authz.forWorkload(workload),
    services,
    egress: slice.egress ?? [],
    quarantined: new Set(slice.quarantined ?? []),
  };
}

/** Kubernetes-style names: `svc` within the caller's namespace, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`. */
export function hostAliases(s: ServiceInfo, callerNamespace: string, _trustDomain: string): string[] {
  const out = [`${s.name}.${s.namespace}`, `${s.name}.${s.namespace}.svc`, `${s.name}.${s.namespace}.svc.cluster.local`];
  if (s.namespace === callerNamespace) out.push(s.name);
  return out;
}

/** The ServiceEntry that admits `host:port`, if any (exact hosts, or `*.suffix` wildcards). */
export function egressFor(entries: EgressEntry[], host: string, port: number): { entry: EgressEntry; spec: ServiceEntrySpec } | null {
  const h = host.toLowerCase();
  for (const entry of entries) {
    const spec = entry.spec;
    const hostOk = spec.hosts.some((x) => {
      const pat = x.toLowerCase();
      return pat === h || (pat.startsWith('*.') && h.endsWith(pat.slice(1)) && h.length > pat.length - 1);
    });
    if (!hostOk) continue;
    if (spec.ports?.length && !spec.ports.some((p) => p.number === port)) continue;
    return { entry, spec };
  }
  return null;
}

export interface Nack {
  version: string;
  error: string;
  at: string;
}

/**
 * ACK/NACK bookkeeping shared by the sidecar and the gateway: validate a slice into a
 * ProxyState, let `install` put it in place (each builds its own state around it and returns
 * what to log), count the result, remember the last refusal, and log it. Returns the error
 * (NACK) or null (ACK); a refused slice never replaces the applied one.
 */
export class SliceApplier {
  lastNack: Nack | null = null;

  constructor(private readonly o: { workload: WorkloadRef; metrics: ProxyMetrics; log: Logger }) {}

  apply(slice: WorkloadSlice, install: (next: ProxyState) => Record<string, unknown>): string | null {
    const { metrics, log } = this.o;
    try {
      const next = applySlice(slice, this.o.workload);
      const fields = install(next);
      metrics.configVersion.reset();
      metrics.configVersion.set({ version: next.version }, 1);
      metrics.configUpdates.inc({ result: 'ack' });
      this.lastNack = null;
      log.info({ version: next.version, ...fields }, 'configuration applied');
      return null;
    } catch (e) {
      const msg = e instanceof SliceError ? e.message : `cannot apply: ${(e as Error).message}`;
      metrics.configUpdates.inc({ result: 'nack' });
      this.lastNack = { version: slice?.version ?? '?', error: msg, at: new Date().toISOString() };
      log.error({ version: slice?.version, error: msg }, 'configuration refused (NACK); keeping the previous version');
      return msg;
    }
  }
}
