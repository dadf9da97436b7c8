/**
 * The request pipeline: small filters with one interface, built once per applied
 * configuration and run in order. A filter either lets the request continue or
 * answers it (a denial, a bad request). Adding a concern means adding a filter.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalizePath } from '../policy/path.js';
import { authorizeFor } from '../policy/engine.js';
import type { Decision } from '../policy/engine.js';
import type { ProxyState } from './state.js';

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

export interface Filter {
  readonly name: string;
  onRequest(x: Exchange): LocalReply | undefined;
}

export function runFilters(filters: readonly Filter[], x: Exchange): LocalReply | undefined {
  for (let i = 0; i < filters.length; i++) {
    const r = filters[i].onRequest(x);
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

/** Authorization against the workload's compiled policies. */
export function authzFilter(workload: { namespace: string; labels: Record<string, string> }, servicePort: number): Filter {
  return {
    name: 'authorization',
    onRequest(x) {
      const h = x.req.headers;
      const d = authorizeFor(
        x.state.policies,
        {
          workload,
          port: servicePort,
          source: { principal: x.peer.spiffeId ?? undefined, ip: x.peer.remoteAddress, mtls: x.peer.mtls },
          request: { method: x.req.method ?? 'GET', path: x.path, host: h.host, headers: h as Record<string, string | string[]> },
          destination: { port: servicePort },
        },
        { pathIsNormalized: true },
      );
      x.decision = d;
      if (d.decision === 'DENY') return { status: d.status, body: d.status === 403 ? RBAC_DENIED : 'Bad Request', decision: 'DENY', reason: d.reason, policy: d.policy };
      return undefined;
    },
  };
}

export function inboundFilters(workload: { namespace: string; labels: Record<string, string> }, servicePort: number): Filter[] {
  return [quarantineFilter, pathFilter, authzFilter(workload, servicePort)];
}
