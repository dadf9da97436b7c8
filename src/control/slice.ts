/**
 * Per-workload slices of the snapshot: the policies that can apply to the workload,
 * the services it may call with their endpoints and identities, egress entries,
 * destination rules and the quarantine list. Versioned by content.
 */
import { createHash } from 'node:crypto';
import type { DestinationRule, ServiceEntry, VirtualService } from '../config/types.js';
import { gatewaysSelecting } from '../gateway/routes.js';
import type { PolicySnapshot } from '../policy/snapshot.js';
import type { ServiceInfo, WorkloadSlice } from './protocol.js';
import type { WorkloadRecord } from './registry.js';

const POLICY_KINDS = new Set(['AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication']);

export function servicesOf(records: WorkloadRecord[], snapshot: PolicySnapshot): ServiceInfo[] {
  const drs = snapshot.config.resources.filter((r): r is DestinationRule => r.kind === 'DestinationRule');
  const map = new Map<string, ServiceInfo>();
  for (const w of records) {
    if (!w.connected) continue;
    const key = `${w.namespace}/${w.service}`;
    let s = map.get(key);
    if (!s) {
      const dr = drs.find((d) => hostMatchesService(d.spec.host, w.service, w.namespace, d.metadata.namespace, snapshot.mesh.trustDomain));
      const lb = dr?.spec.trafficPolicy && (dr.spec.trafficPolicy as { loadBalancer?: { simple?: string } }).loadBalancer?.simple;
      s = { name: w.service, namespace: w.namespace, servicePort: w.servicePort, spiffeIds: [], endpoints: [], loadBalancer: lb === 'ROUND_ROBIN' ? 'ROUND_ROBIN' : 'LEAST_REQUEST' };
      map.set(key, s);
    }
    s.endpoints.push({ address: w.address, port: w.port, spiffeId: w.spiffeId });
    if (!s.spiffeIds.includes(w.spiffeId)) s.spiffeIds.push(w.spiffeId);
  }
  const out = [...map.values()];
  for (const s of out) {
    s.endpoints.sort((a, b) => (a.address + a.port < b.address + b.port ? -1 : 1));
    s.spiffeIds.sort();
  }
  return out.sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
}

/** `host` of a DestinationRule: short name (in the rule's namespace) or FQDN `name.ns.svc.<domain>`. */
function hostMatchesService(host: string, name: string, ns: string, ruleNs: string, _td: string): boolean {
  if (host === name) return ns === ruleNs;
  return host === `${name}.${ns}` || host === `${name}.${ns}.svc` || host === `${name}.${ns}.svc.cluster.local`;
}

export function sliceFor(w: { namespace: string; labels?: Record<string, string> }, snapshot: PolicySnapshot, services: ServiceInfo[], quarantined: string[]): Omit<WorkloadSlice, 'version'> {
  const root = snapshot.mesh.rootNamespace;
  const resources = snapshot.config.resources
    .filter((r) => POLICY_KINDS.has(r.kind) && (r.metadata.namespace === w.namespace || r.metadata.namespace === root))
    .concat(gatewayResources(w, snapshot))
    .map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec }));
  const egress = snapshot.config.resources
    .filter((r): r is ServiceEntry => r.kind === 'ServiceEntry')
    .filter((r) => visible(r.spec.exportTo, r.metadata.namespace, w.namespace))
    .map((r) => ({ name: r.metadata.name, namespace: r.metadata.namespace, spec: r.spec }));
  const destinationRules = snapshot.config.resources
    .filter((r): r is DestinationRule => r.kind === 'DestinationRule')
    .filter((r) => visible(r.spec.exportTo, r.metadata.namespace, w.namespace))
    .map((r) => ({ name: r.metadata.name, namespace: r.metadata.namespace, spec: r.spec }));
  return { mesh: snapshot.mesh, resources, services, egress, destinationRules, quarantined: [...quarantined].sort() };
}

const EDGE_KINDS = new Set(['RateLimitPolicy', 'GatewayPolicy']);

/**
 * What a gateway (a workload some Gateway's selector picks) also needs: those Gateways, the
 * VirtualServices bound to them (`gateways: [ns/name]` or a bare name in the VirtualService's
 * namespace), and the edge kinds of its namespace and the root namespace.
 */
function gatewayResources(w: { namespace: string; labels?: Record<string, string> }, snapshot: PolicySnapshot) {
  const labels = w.labels ?? {};
  const gws = gatewaysSelecting(snapshot.config.resources, labels);
  if (gws.length === 0) return [];
  const names = new Set(gws.map((g) => `${g.metadata.namespace}/${g.metadata.name}`));
  const vss = snapshot.config.resources.filter(
    (r): r is VirtualService => r.kind === 'VirtualService' && (r.spec.gateways ?? []).some((g) => names.has(g.includes('/') ? g : `${r.metadata.namespace}/${g}`)),
  );
  const edge = snapshot.config.resources.filter((r) => EDGE_KINDS.has(r.kind) && (r.metadata.namespace === w.namespace || r.metadata.namespace === snapshot.mesh.rootNamespace));
  return [...gws, ...vss, ...edge];
}

/** Istio exportTo: absent or `*` → everywhere; `.` → own namespace; else listed namespaces. */
function visible(exportTo: string[] | undefined, own: string, viewer: string): boolean {
  if (!exportTo?.length) return true;
  return exportTo.some((e) => e === '*' || (e === '.' && own === viewer) || e === viewer);
}

export function sliceVersion(s: Omit<WorkloadSlice, 'version'>): string {
  return createHash('sha256').update(JSON.stringify(s)).digest('hex').slice(0, 12);
}
