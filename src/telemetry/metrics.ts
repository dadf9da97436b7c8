/** Prometheus metrics of a sidecar (one registry per process, served on the admin port). */
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Counter as CounterT, Gauge as GaugeT, Histogram as HistogramT, Registry as RegistryT } from 'prom-client';

// prom-client's index loads every metric kind, the Pushgateway (http, https, zlib), cluster
// aggregation and the default process metrics (with @opentelemetry/api): ~11 MB of RSS in a
// sidecar that uses four classes. Load just those (the same module instances the index
// exports; prom-client 15 has no `exports` map, so its lib/ files are reachable).
const requireCjs = createRequire(import.meta.url);
const Counter = requireCjs('prom-client/lib/counter') as typeof PromClient.Counter;
const Gauge = requireCjs('prom-client/lib/gauge') as typeof PromClient.Gauge;
const Histogram = requireCjs('prom-client/lib/histogram') as typeof PromClient.Histogram;
const Registry = requireCjs('prom-client/lib/registry') as typeof PromClient.Registry;
type Counter<T extends string> = CounterT<T>;
type Gauge<T extends string = string> = GaugeT<T>;
type Histogram<T extends string> = HistogramT<T>;
type Registry = RegistryT;

const DIRECTIONS = ['inbound', 'outbound', 'gateway'] as const;
const DECISIONS = ['ALLOW', 'DENY', 'ERROR'] as const;
export type RequestDirection = (typeof DIRECTIONS)[number];
export type RequestDecision = (typeof DECISIONS)[number];

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The series prom-client keeps per label set (v15): a counter's value, a histogram's buckets, sum and count. */
interface CounterEntry {
  value: number;
}
interface HistogramEntry {
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}
type SeriesMap<E> = Record<string, E | undefined>;

/**
 * One label tuple of ztmesh_requests_total and ztmesh_request_duration_seconds, resolved
 * once: the label objects and prom-client's series keys are built when the tuple is first
 * seen, so a request only bumps numbers. prom-client keys a series by `name:value,` over the
 * sorted label names; when its series is there (created through the public API on first
 * use, and again after a reset) it is updated in place, else the public inc/observe run.
 */
class RequestSeries {
  private readonly counterLabels: Record<string, string>;
  private readonly histogramLabels: Record<string, string>;
  private readonly counterKey: string;
  private readonly histogramKey: string;

  constructor(
    private readonly m: ProxyMetrics,
    direction: string,
    source: string,
    destination: string,
    status: string,
    decision: string,
  ) {
    this.counterLabels = { direction, source_principal: source, destination_principal: destination, response_code: status, decision };
    this.histogramLabels = { direction, source_principal: source, destination_principal: destination, decision };
    this.counterKey = seriesKey(this.counterLabels);
    this.histogramKey = seriesKey(this.histogramLabels);
  }

  record(seconds: number): void {
    const c = (this.m.requests as unknown as { hashMap: SeriesMap<CounterEntry> }).hashMap[this.counterKey];
    if (c !== undefined && typeof c.value === 'number') c.value += 1;
    else this.m.requests.inc(this.counterLabels, 1);
    const h = (this.m.duration as unknown as { hashMap: SeriesMap<HistogramEntry> }).hashMap[this.histogramKey];
    if (h === undefined || typeof h.count !== 'number' || !Number.isFinite(seconds)) {
      this.m.duration.observe(this.histogramLabels, seconds);
      return;
    }
    h.sum += seconds;
    h.count += 1;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      const b = DURATION_BUCKETS[i];
      if (seconds <= b) {
        h.bucketValues[b] += 1;
        return;
      }
    }
  }
}

/** prom-client's series key: `name:value,` for each label, in sorted label-name order. */
function seriesKey(labels: Record<string, string>): string {
  let k = '';
  for (const n of Object.keys(labels).sort()) k += `${n}:${labels[n]},`;
  return k;
}

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
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.mtlsFailures = new Counter({ name: 'ztmesh_mtls_handshake_failures_total', help: 'Connections refused at the mTLS layer, by reason', labelNames: ['direction', 'reason'], registers });
    this.svidExpiry = new Gauge({ name: 'ztmesh_svid_expiry_seconds', help: 'Seconds until the workload certificate expires', registers });
    this.configVersion = new Gauge({ name: 'ztmesh_config_version_info', help: 'The configuration version applied (value 1)', labelNames: ['version'], registers });
    this.configUpdates = new Counter({ name: 'ztmesh_config_updates_total', help: 'Configuration versions received, by result (ack or nack)', labelNames: ['result'], registers });
    this.upstreamHandshakes = new Counter({ name: 'ztmesh_upstream_tls_handshakes_total', help: 'mTLS connections opened to peer sidecars, by whether the TLS session was resumed', labelNames: ['resumed'], registers });
    this.egressDenied = new Counter({ name: 'ztmesh_egress_denied_total', help: 'Outbound requests to hosts outside the mesh refused (no ServiceEntry)', labelNames: ['host'], registers });
  }

  /** source → destination → (status, decision, direction): nested so that a lookup hashes no new string. */
  private readonly series = new Map<string, Map<string, Map<number, RequestSeries>>>();

  /**
   * Count one finished request in ztmesh_requests_total and ztmesh_request_duration_seconds
   * (the same series `requests.inc` and `duration.observe` write), through a series kept
   * per label tuple instead of building and hashing label objects on every request.
   */
  request(direction: RequestDirection, source: string, destination: string, status: number, decision: RequestDecision, seconds: number): void {
    let bySource = this.series.get(source);
    if (bySource === undefined) this.series.set(source, (bySource = new Map()));
    let byDestination = bySource.get(destination);
    if (byDestination === undefined) bySource.set(destination, (byDestination = new Map()));
    const code = (status * 3 + DECISIONS.indexOf(decision)) * 3 + DIRECTIONS.indexOf(direction);
    let s = byDestination.get(code);
    if (s === undefined) {
      s = new RequestSeries(this, direction, source, destination, String(status), decision);
      byDestination.set(code, s);
    }
    s.record(seconds);
  }
}
