/** The request attributes authorization decides on (the JSONL shape of `ztmesh authz check`). */

export interface WorkloadRef {
  namespace: string;
  labels: Record<string, string>;
}

export interface AuthzInput {
  workload: WorkloadRef;
  /** The inbound port the request arrived on (the workload's port). */
  port?: number;
  source?: {
    /** Istio form `td/ns/x/sa/y` or a SPIFFE ID; taken only from a verified peer certificate. */
    principal?: string;
    namespace?: string;
    ip?: string;
    /** Whether the connection was mutual TLS. Without it the source has no principal or namespace. */
    mtls?: boolean;
  };
  /** The original client address (X-Forwarded-For with trusted proxies), `remote.ip`. */
  remoteIp?: string;
  request: {
    method: string;
    /** The request-target as received; normalized by the mesh's pathNormalization before matching. */
    path: string;
    host?: string;
    headers?: Record<string, string | string[]>;
    /** Request body, when a CUSTOM provider needs it (parsed_body for JSON). */
    body?: string;
  };
  /** The verified end-user JWT (RequestAuthentication), if any. */
  auth?: {
    principal?: string;
    audiences?: string[];
    presenter?: string;
    claims?: Record<string, unknown>;
  };
  /** `principal`: the receiving workload's SPIFFE ID (for CUSTOM providers' input). */
  destination?: { ip?: string; port?: number; principal?: string };
  sni?: string;
}

/** A request after normalization: what compiled matchers read. Built once per request. */
export interface RequestContext {
  principal: string;
  sourceNamespace: string;
  /** `namespace/serviceAccount` from the principal, or '' */
  sourceServiceAccount: string;
  sourceIp: string | undefined;
  remoteIp: string | undefined;
  method: string;
  path: string;
  host: string;
  headers: Record<string, string>;
  port: number | undefined;
  destinationIp: string | undefined;
  destinationPort: number | undefined;
  sni: string;
  requestPrincipal: string;
  audiences: readonly string[];
  presenter: string;
  claims: Record<string, unknown> | undefined;
  /** Lazily parsed addresses (see match.parseIp). */
  _ips?: Record<string, unknown>;
}

const SPIFFE = 'spiffe://';

/** `spiffe://td/ns/x/sa/y` → `td/ns/x/sa/y` (Istio's principal form). */
export function toIstioPrincipal(p: string): string {
  return p.startsWith(SPIFFE) ? p.slice(SPIFFE.length) : p;
}

/** Namespace and service account from an Istio principal `td/ns/<ns>/sa/<sa>` (no allocation but the results). */
export function principalParts(principal: string): { namespace: string; serviceAccount: string } {
  const a = principal.indexOf('/ns/');
  if (a <= 0 || principal.indexOf('/', 0) !== a) return NO_PARTS;
  const b = principal.indexOf('/sa/', a + 4);
  if (b < 0 || principal.indexOf('/', a + 4) !== b) return NO_PARTS;
  const sa = principal.slice(b + 4);
  if (!sa || sa.includes('/')) return NO_PARTS;
  const ns = principal.slice(a + 4, b);
  return ns ? { namespace: ns, serviceAccount: sa } : NO_PARTS;
}
const NO_PARTS = Object.freeze({ namespace: '', serviceAccount: '' });

export function lowerCaseHeaders(h: Record<string, string | string[]> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    const key = k.toLowerCase();
    const val = typeof v === 'string' ? v : v.join(',');
    const prev = out[key];
    out[key] = prev !== undefined ? `${prev},${val}` : val;
  }
  return out;
}
