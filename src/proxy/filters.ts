/**
 * The request pipeline: small filters with one interface, built once per applied
 * configuration and run in order. A filter either lets the request continue or
 * answers it (a denial, a bad request). Adding a concern means adding a filter.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalizePath } from '../policy/path.js';
import { authorizeAsync, authorizeFor } from '../policy/engine.js';
import type { Decision } from '../policy/engine.js';
import type { ProxyState } from './state.js';
import type { AuthzInput } from '../policy/request.js';
import { clientAddress } from '../policy/client-address.js';
import { requestAuthnFilter } from './authn-filter.js';

export interface PeerInfo {
  /** Verified SPIFFE ID from the peer's certificate, or null for plaintext. */
  spiffeId: string | null;
  mtls: boolean;
  /** SHA-256 of the peer's leaf certificate (hex), for x-forwarded-client-cert. */
  certHash: string | null;
  remoteAddress: string;
}

export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  peer: PeerInfo;
  state: ProxyState;
  /** Normalized path and the query string (with its `?`), set by the path filter. */
  path: string;
  query: string;
  decision?: Decision;
  /** The verified end-user JWT (set by request authentication), for authorization. */
  auth?: AuthzInput['auth'];
  startedAt: number;
}

export interface LocalReply {
  status: number;
  body: string;
  decision: 'DENY' | 'ERROR';
  reason: string;
  policy?: string | null;
  headers?: Record<string, string>;
}

export type FilterResult = LocalReply | undefined;

export interface Filter {
  readonly name: string;
  /** Synchronous on the hot path; a filter that must wait (an external OPA) returns a promise. */
  onRequest(x: Exchange): FilterResult | Promise<FilterResult>;
}

/** Run filters in order until one answers; stays synchronous unless a filter returns a promise. */
export function runFilters(filters: readonly Filter[], x: Exchange, from = 0): FilterResult | Promise<FilterResult> {
  for (let i = from; i < filters.length; i++) {
    const r = filters[i].onRequest(x);
    if (r instanceof Promise) return r.then((v) => (v ? v : runFilters(filters, x, i + 1)));
    if (r) return r;
  }
  return undefined;
}

export const RBAC_DENIED = 'RBAC: access denied';

/** Refuse quarantined identities before anything else looks at the request. */
export const quarantineFilter: Filter = {
  name: 'quarantine',
  onRequest(x) {
    if (x.peer.spiffeId && x.state.quarantined.has(x.peer.spiffeId)) {
      return { status: 403, body: RBAC_DENIED, decision: 'DENY', reason: `${x.peer.spiffeId} is quarantined`, policy: 'quarantine' };
    }
    return undefined;
  },
};

/** Normalize the request-target per MeshConfig pathNormalization; what policies match is what the app gets. */
export const pathFilter: Filter = {
  name: 'path-normalization',
  onRequest(x) {
    const n = normalizePath(x.req.url ?? '', x.state.snapshot.mesh.pathNormalization);
    if (!n.ok) return { status: 400, body: 'Bad Request', decision: 'DENY', reason: `bad request path: ${n.reason}` };
    x.path = n.path;
    x.query = n.query;
    return undefined;
  },
};

/** Authorization against the workload's compiled policies (CUSTOM providers included). */
export function authzFilter(workload: { namespace: string; labels: Record<string, string> }, servicePort: number, ownId: () => string): Filter {
  const toReply = (x: Exchange, d: Decision): FilterResult => {
    x.decision = d;
    if (d.decision === 'ALLOW') return undefined;
    if (d.action === 'CUSTOM' && d.custom) {
      return { status: d.status, body: d.custom.body ?? RBAC_DENIED, decision: 'DENY', reason: d.reason, policy: d.policy, headers: d.custom.headers };
    }
    return { status: d.status, body: d.status === 403 ? RBAC_DENIED : 'Bad Request', decision: 'DENY', reason: d.reason, policy: d.policy };
  };
  return {
    name: 'authorization',
    onRequest(x) {
      const h = x.req.headers;
      // remote.ip: behind MeshConfig numTrustedProxies proxies, the client named in X-Forwarded-For.
      const trusted = x.state.snapshot.mesh.numTrustedProxies;
      let remoteIp: string | undefined;
      if (trusted > 0) {
        const a = clientAddress(x.peer.remoteAddress, h['x-forwarded-for'], trusted);
        if (!a.ok) return { status: 400, body: 'Bad Request', decision: 'DENY', reason: a.reason };
        remoteIp = a.address;
      }
      const input: AuthzInput = {
        workload,
        port: servicePort,
        remoteIp,
        source: { principal: x.peer.spiffeId ?? undefined, ip: x.peer.remoteAddress, mtls: x.peer.mtls },
        request: { method: x.req.method ?? 'GET', path: x.path + x.query, host: h.host, headers: h as Record<string, string | string[]> },
        destination: { port: servicePort, principal: ownId() },
        auth: x.auth,
      };
      const custom = x.state.snapshot.custom;
      if (custom.hasAsync && x.state.policies.custom.length) {
        return authorizeAsync(x.state.policies, input, { pathIsNormalized: true, custom: custom.async }).then((d) => toReply(x, d));
      }
      return toReply(x, authorizeFor(x.state.policies, input, { pathIsNormalized: true, custom: custom.sync }));
    },
  };
}

export function inboundFilters(workload: { namespace: string; labels: Record<string, string> }, servicePort: number, ownId: () => string = () => ''): Filter[] {
  return [quarantineFilter, pathFilter, requestAuthnFilter(workload), authzFilter(workload, servicePort, ownId)];
}
