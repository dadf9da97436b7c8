/**
 * The control plane ↔ sidecar protocol: newline-delimited JSON messages over one mutual-TLS
 * connection (ALPN `ztmesh-xds/1`), in the spirit of xDS: the sidecar says hello with its
 * registration, the control plane pushes versioned slices, the sidecar ACKs or NACKs each.
 */
import type { Socket } from 'node:net';
import type { Resource, MeshSettings, ServiceEntrySpec, DestinationRuleSpec } from '../config/types.js';

export const XDS_ALPN = 'ztmesh-xds/1';
/** The control plane's own workload identity (checked by every sidecar). */
export const CONTROL_PLANE_SA = 'ztmesh-control';
/** Largest message either side accepts (a slice with many policies fits easily). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface Registration {
  service: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  /** Where peers reach this workload's inbound listener. */
  address: string;
  port: number;
  /** The port clients name in URLs (http://service:servicePort/). */
  servicePort: number;
  /** Last version the sidecar applied (fail-static resume). */
  lastVersion?: string;
}

export interface EndpointInfo {
  address: string;
  port: number;
  spiffeId: string;
}

export interface ServiceInfo {
  name: string;
  namespace: string;
  servicePort: number;
  /** Every SPIFFE ID an endpoint of this service may present (secure naming). */
  spiffeIds: string[];
  endpoints: EndpointInfo[];
  /** ROUND_ROBIN or LEAST_REQUEST (from a DestinationRule; default LEAST_REQUEST as in Istio). */
  loadBalancer: 'ROUND_ROBIN' | 'LEAST_REQUEST';
}

export interface EgressEntry {
  name: string;
  namespace: string;
  spec: ServiceEntrySpec;
}

export interface WorkloadSlice {
  version: string;
  mesh: MeshSettings;
  /** AuthorizationPolicy, PeerAuthentication, RequestAuthentication that can apply to this workload. */
  resources: Pick<Resource, 'apiVersion' | 'kind' | 'metadata' | 'spec'>[];
  services: ServiceInfo[];
  egress: EgressEntry[];
  destinationRules: { name: string; namespace: string; spec: DestinationRuleSpec }[];
  /** SPIFFE IDs every sidecar refuses, whatever the policies say. */
  quarantined: string[];
}

export type ToControl =
  | { type: 'hello'; registration: Registration }
  | { type: 'ack'; version: string }
  | { type: 'nack'; version: string; error: string }
  | { type: 'heartbeat' };

export type ToSidecar =
  | { type: 'welcome'; spiffeId: string }
  | { type: 'slice'; slice: WorkloadSlice }
  | { type: 'error'; message: string };

/** Write one message. */
export function send(socket: Socket, msg: ToControl | ToSidecar): boolean {
  if (socket.destroyed) return false;
  return socket.write(JSON.stringify(msg) + '\n');
}

/** Read newline-delimited JSON messages; a malformed or oversized message closes the connection. */
export function onMessages<T>(socket: Socket, handler: (msg: T) => void, onError: (e: Error) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_MESSAGE_BYTES) {
      onError(new Error(`message larger than ${MAX_MESSAGE_BYTES} bytes`));
      socket.destroy();
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line) continue;
      let msg: T;
      try {
        msg = JSON.parse(line) as T;
      } catch (e) {
        onError(new Error(`malformed message: ${(e as Error).message}`));
        socket.destroy();
        return;
      }
      handler(msg);
    }
  });
}
