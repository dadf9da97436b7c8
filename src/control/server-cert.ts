/**
 * Who may get a TLS server certificate for which DNS names (POST /v1/sign-server): a pure
 * decision over the current configuration and the caller's registered workloads.
 *
 * Every requested name must be covered by a `hosts` entry of a server of an Istio Gateway
 * whose selector picks the caller's workload (the same selection as the gateway's routes,
 * src/gateway/routes.ts). An entry covers a name when it is the same name, or `*.suffix`
 * and the name is one label under the suffix; a requested wildcard name is covered only by
 * the same wildcard entry. `*` (every host) is fine for routing but never authorizes a
 * certificate: it would let any selected workload mint one for any name.
 *
 * When several live registrations carry the caller's SPIFFE ID (replicas), every one of
 * them must be entitled to the names.
 *
 * Only Gateways in the caller's own namespace count (as Istio with
 * PILOT_SCOPE_GATEWAY_TO_NAMESPACE): the namespace is attested by the caller's SVID, its
 * labels are only its own claim at registration, so a workload elsewhere that registers with
 * `istio: ingressgateway` cannot mint certificates for the edge's hosts.
 */
import { gatewayServerHosts, gatewaysSelecting, hostMatches } from '../gateway/routes.js';

export interface CallerWorkload {
  /** Registry id, `ns/service@address:port`. */
  id: string;
  namespace: string;
  labels: Record<string, string>;
}

export type ServerCertDecision =
  | { ok: true; names: string[]; coveredBy: Record<string, string> }
  | { ok: false; status: 403; error: string; name?: string };

/** Does Gateway host entry `pattern` (namespace part removed) authorize a certificate for `name`? */
export function hostCoversCertName(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  if (p === '*') return false;
  if (name.startsWith('*.')) return p === name;
  if (!hostMatches(p, name)) return false;
  // `*.example.com` covers `a.example.com`, not `a.b.example.com` (as a TLS wildcard would).
  return !p.startsWith('*.') || !name.slice(0, name.length - (p.length - 1)).includes('.');
}

/**
 * `names` must already be normalized (lower case, RFC 1123, see normalizeDnsNames).
 * `resources` is the current snapshot's resources; `workloads` the live registrations of
 * the caller's SPIFFE ID.
 */
export function authorizeServerCertificate(resources: readonly { kind: string }[], spiffeId: string, workloads: readonly CallerWorkload[], names: readonly string[]): ServerCertDecision {
  if (workloads.length === 0) {
    return { ok: false, status: 403, error: `${spiffeId} has no registered workload: a server certificate is issued only to a gateway connected to the control plane (its labels decide which Gateways select it)` };
  }
  const coveredBy: Record<string, string> = {};
  for (const w of workloads) {
    const selecting = gatewaysSelecting(resources, w.labels);
    const gws = selecting.filter((g) => g.metadata.namespace === w.namespace);
    const labels = Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',');
    if (gws.length === 0) {
      const elsewhere = selecting.length ? `; Gateways in other namespaces (${selecting.map((g) => `${g.metadata.namespace}/${g.metadata.name}`).join(', ')}) grant certificates only to workloads in their own namespace` : '';
      return { ok: false, status: 403, name: names[0], error: `no Gateway in namespace ${w.namespace} selects workload ${w.id} (labels ${labels || 'none'}): it may not get a certificate for ${names[0]}${elsewhere}` };
    }
    for (const name of names) {
      let by: string | undefined;
      let everything: string | undefined;
      for (const g of gws) {
        for (const h of gatewayServerHosts(g)) {
          if (h === '*') everything ??= `${g.metadata.namespace}/${g.metadata.name}`;
          else if (!by && hostCoversCertName(h, name)) by = `${g.metadata.namespace}/${g.metadata.name} host ${h}`;
        }
      }
      if (!by && everything) {
        return { ok: false, status: 403, name, error: `${name} is covered only by the wildcard-everything host "*" of Gateway ${everything}: a "*" Gateway host cannot be used to mint certificates; list ${name}${name.startsWith('*.') ? '' : ` (or *.${name.split('.').slice(1).join('.')})`} in the Gateway's hosts` };
      }
      if (!by) {
        return { ok: false, status: 403, name, error: `${name} is not covered by the hosts of any Gateway selecting workload ${w.id} (${gws.map((g) => `${g.metadata.namespace}/${g.metadata.name}`).join(', ')})` };
      }
      coveredBy[name] ??= by;
    }
  }
  return { ok: true, names: [...names], coveredBy };
}
