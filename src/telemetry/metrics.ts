/** Prometheus metrics of a sidecar (one registry per process, served on the admin port). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'direction' | 'source_principal' | 'destination_principal' | 'response_code' | 'decision'>;
  readonly duration: Histogram<'direction' | 'source_principal' | 'destination_principal' | 'decision'>;
  readonly mtlsFailures: Counter<'direction' | 'reason'>;
  readonly svidExpiry: Gauge;
  readonly configVersion: Gauge<'version'>;
  readonly configUpdates: Counter<'result'>;
  readonly egressDenied: Counter<'host'>;
  readonly upstreamHandshakes: Counter<'resumed'>;

  constructor(labels: Record<string, string> = {}) {
    this.registry.setDefaultLabels(labels);
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'ztmesh_requests_total',
      help: 'HTTP requests handled by the sidecar',
      labelNames: ['direction', 'source_principal', 'destination_principal', 'response_code', 'decision'],
      registers,
    });
    this.duration = new Histogram({
      name: 'ztmesh_request_duration_seconds',
      help: 'Time from request received to response finished',
      labelNames: ['direction', 'source_principal', 'destination_principal', 'decision'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.mtlsFailures = new Counter({ name: 'ztmesh_mtls_handshake_failures_total', help: 'Connections refused at the mTLS layer, by reason', labelNames: ['direction', 'reason'], registers });
    this.svidExpiry = new Gauge({ name: 'ztmesh_svid_expiry_seconds', help: 'Seconds until the workload certificate expires', registers });
    this.configVersion = new Gauge({ name: 'ztmesh_config_version_info', help: 'The configuration version applied (value 1)', labelNames: ['version'], registers });
    this.configUpdates = new Counter({ name: 'ztmesh_config_updates_total', help: 'Configuration versions received, by result (ack or nack)', labelNames: ['result'], registers });
    this.upstreamHandshakes = new Counter({ name: 'ztmesh_upstream_tls_handshakes_total', help: 'mTLS connections opened to peer sidecars, by whether the TLS session was resumed', labelNames: ['resumed'], registers });
    this.egressDenied = new Counter({ name: 'ztmesh_egress_denied_total', help: 'Outbound requests to hosts outside the mesh refused (no ServiceEntry)', labelNames: ['host'], registers });
  }
}
