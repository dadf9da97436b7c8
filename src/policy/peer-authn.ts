/**
 * PeerAuthentication: the effective mTLS mode for a workload and port.
 * Workload-selector policy > namespace policy > mesh (root namespace) policy;
 * UNSET inherits from the level above; port-level settings override the
 * workload policy's mode; the oldest policy wins a tie; default PERMISSIVE.
 */
import type { MtlsMode, PeerAuthentication } from '../config/types.js';
import type { WorkloadRef } from './request.js';
import { selectorMatches, olderFirst } from './select.js';

export type EffectiveMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export interface MtlsExplanation {
  mode: EffectiveMtls;
  /** Which policy set the mode (namespace/name), or null for the built-in default. */
  policy: string | null;
  level: 'port' | 'workload' | 'namespace' | 'mesh' | 'default';
}

export interface PeerAuthnIndex {
  effective(workload: WorkloadRef, port?: number): MtlsExplanation;
}

export function compilePeerAuthn(policies: PeerAuthentication[], rootNamespace: string): PeerAuthnIndex {
  const sorted = [...policies].sort(olderFirst);
  const meshPolicy = sorted.find((p) => p.metadata.namespace === rootNamespace && !hasSelector(p));
  const nsPolicies = new Map<string, PeerAuthentication>();
  const selectorPolicies = new Map<string, PeerAuthentication[]>();
  for (const p of sorted) {
    const ns = p.metadata.namespace;
    if (!hasSelector(p)) {
      if (!nsPolicies.has(ns)) nsPolicies.set(ns, p);
    } else {
      const list = selectorPolicies.get(ns) ?? [];
      list.push(p);
      selectorPolicies.set(ns, list);
    }
  }
  const id = (p: PeerAuthentication) => `${p.metadata.namespace}/${p.metadata.name}`;
  return {
    effective(workload, port) {
      let result: MtlsExplanation = { mode: 'PERMISSIVE', policy: null, level: 'default' };
      const apply = (mode: MtlsMode | undefined, p: PeerAuthentication, level: MtlsExplanation['level']) => {
        if (mode && mode !== 'UNSET') result = { mode, policy: id(p), level };
      };
      if (meshPolicy) apply(meshPolicy.spec.mtls?.mode, meshPolicy, 'mesh');
      const nsp = nsPolicies.get(workload.namespace);
      if (nsp && nsp !== meshPolicy) apply(nsp.spec.mtls?.mode, nsp, 'namespace');
      const wp = selectorPolicies.get(workload.namespace)?.find((p) => selectorMatches(p.spec.selector?.matchLabels, workload.labels));
      if (wp) {
        apply(wp.spec.mtls?.mode, wp, 'workload');
        if (port !== undefined) apply(wp.spec.portLevelMtls?.[String(port)]?.mode, wp, 'port');
      }
      return result;
    },
  };
}

function hasSelector(p: PeerAuthentication): boolean {
  const m = p.spec.selector?.matchLabels;
  return !!m && Object.keys(m).length > 0;
}
