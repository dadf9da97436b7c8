/**
 * `ztmesh proxy`: the sidecar. Bootstraps its identity, keeps the last applied slice
 * and certificate on disk (fail-static), serves inbound mTLS and the outbound proxy,
 * and exposes /metrics and status on a loopback admin port.
 */
import http from 'node:http';
import { serveAdmin } from './admin.js';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { BundleSet, pemCertificates } from '../identity/index.js';
import { writeFileAtomic } from '../identity/ca.js';
import { ZtmError } from '../errors.js';
import type { Registration, WorkloadSlice } from '../control/protocol.js';
import { AccessLog } from '../telemetry/access-log.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import { IdentityClient } from './identity-client.js';
import { InboundListener } from './inbound.js';
import { OutboundProxy } from './outbound.js';
import { inboundFilters } from './filters.js';
import type { Filter } from './filters.js';
import { applySlice, SliceApplier } from './state.js';
import type { ProxyState } from './state.js';
import { XdsClient } from './xds-client.js';
import { loadRegoEngine, needsRegoEngine } from '../policy/custom.js';

export interface SidecarOptions {
  service: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  /** The app behind this sidecar, on loopback. */
  appPort: number;
  appHost?: string;
  /** Inbound listener (the workload's mesh port); 0 picks a free port. */
  port: number;
  /** The port clients name in URLs (default: the inbound port). */
  servicePort?: number;
  bindHost?: string;
  /** Address peers use to reach the inbound listener (default: bindHost). */
  advertiseAddress?: string;
  outboundPort?: number;
  adminPort?: number;
  upstreams?: Record<number, string>;
  controlPlane: { host: string; port: number };
  /** Root certificates of the trust domain (PEM). */
  caPem: string;
  trustDomain?: string;
  token?: string;
  dataDir: string;
  accessLog?: Writable | null;
  log: Logger;
}

export interface SidecarPorts {
  inbound: number;
  outbound: number;
  admin: number;
  upstreams: Record<string, number>;
  spiffeId: string;
}

export class Sidecar {
  readonly metrics: ProxyMetrics;
  readonly bundles: BundleSet;
  private state: ProxyState | null = null;
  private filters: readonly Filter[] = [];
  private identity!: IdentityClient;
  private inbound!: InboundListener;
  private outbound!: OutboundProxy;
  private xds!: XdsClient;
  private admin!: http.Server;
  private readonly applier: SliceApplier;
  private ports!: SidecarPorts;
  private readonly workload: { namespace: string; labels: Record<string, string> };

  constructor(private readonly o: SidecarOptions) {
    this.metrics = new ProxyMetrics({ service: o.service, namespace: o.namespace });
    const td = o.trustDomain ?? 'cluster.local';
    const roots = pemCertificates(o.caPem);
    if (!roots.length) throw new ZtmError('ZTM_USAGE', 'the CA bundle has no certificates');
    this.bundles = BundleSet.of(td, roots);
    this.workload = Object.freeze({ namespace: o.namespace, labels: Object.freeze({ ...o.labels }) }) as { namespace: string; labels: Record<string, string> };
    this.applier = new SliceApplier({ workload: this.workload, metrics: this.metrics, log: o.log });
  }

  current(): ProxyState | null {
    return this.state;
  }

  async start(): Promise<SidecarPorts> {
    const o = this.o;
    await mkdir(o.dataDir, { recursive: true, mode: 0o700 });
    await this.loadPersistedSlice();
    this.identity = new IdentityClient({ controlPlane: o.controlPlane, bundles: this.bundles, trustDomain: o.trustDomain ?? 'cluster.local', dataDir: o.dataDir, token: o.token, log: o.log });
    const svid = await this.identity.start();
    const rotator = this.identity.rotator;
    const tick = () => this.metrics.svidExpiry.set(Math.floor(rotator.timeToExpiryMs() / 1000));
    tick();
    setInterval(tick, 5000).unref();
    const accessLog = new AccessLog(o.accessLog === undefined ? process.stdout : o.accessLog);

    this.inbound = new InboundListener({
      host: o.bindHost ?? '127.0.0.1',
      port: o.port,
      servicePort: o.servicePort ?? o.port,
      app: { host: o.appHost ?? '127.0.0.1', port: o.appPort },
      workload: this.workload,
      rotator,
      bundles: this.bundles,
      getState: () => this.state,
      getFilters: () => this.filters,
      metrics: this.metrics,
      accessLog,
      log: o.log,
    });
    const inboundPort = await this.inbound.listen();
    const servicePort = o.servicePort ?? inboundPort;
    // The inbound filters name the service port; rebuild them now that it is known.
    this.servicePort = servicePort;
    if (this.state) this.filters = inboundFilters(this.workload, servicePort, this.ownId);

    this.outbound = new OutboundProxy({ host: '127.0.0.1', port: o.outboundPort ?? 15001, upstreams: o.upstreams, rotator, bundles: this.bundles, getState: () => this.state, metrics: this.metrics, accessLog, log: o.log });
    const out = await this.outbound.listen();

    const registration = (): Registration => ({
      service: o.service,
      namespace: o.namespace,
      serviceAccount: o.serviceAccount,
      labels: o.labels,
      address: o.advertiseAddress ?? o.bindHost ?? '127.0.0.1',
      port: inboundPort,
      servicePort,
      lastVersion: this.state?.version,
    });
    this.xds = new XdsClient({
      controlPlane: o.controlPlane,
      controlPlaneId: this.identity.controlPlaneId,
      rotator,
      bundles: this.bundles,
      registration,
      apply: (slice) => this.apply(slice),
      log: o.log,
    });
    this.xds.start();

    this.admin = http.createServer((req, res) => void this.onAdmin(req, res));
    await new Promise<void>((r) => this.admin.listen(o.adminPort ?? 15000, '127.0.0.1', () => r()));
    this.ports = { inbound: inboundPort, outbound: out.port, admin: (this.admin.address() as AddressInfo).port, upstreams: out.upstreams, spiffeId: svid.spiffeId };
    o.log.info({ ...this.ports, version: this.state?.version ?? null }, 'sidecar ready');
    return this.ports;
  }

  private servicePort = 0;
  private readonly ownId = () => this.identity?.rotator.current()?.spiffeId ?? '';

  async stop(): Promise<void> {
    this.xds?.stop();
    this.identity?.stop();
    await Promise.all([this.inbound?.close(), this.outbound?.close(), new Promise<void>((r) => (this.admin?.listening ? this.admin.close(() => r()) : r()))]);
    // The last applied slice reaches the disk before the process exits.
    await this.persisting;
  }

  /** Validate and install a slice; returns an error message (NACK) or null (ACK). */
  apply(slice: WorkloadSlice): string | null {
    return this.applier.apply(slice, (next) => {
      this.state = next;
      this.filters = inboundFilters(this.workload, this.servicePort || this.o.servicePort || this.o.port, this.ownId);
      this.persist(slice);
      return { policies: next.policies.allow.length + next.policies.deny.length + next.policies.custom.length, services: slice.services.length };
    });
  }

  /**
   * Keep the applied slice on disk for fail-static restarts. Writes are serialized and
   * always write the latest: concurrent atomic writes (temp file + rename) finish in any
   * order, and slices applied back to back (a startup, a burst of registrations) used to
   * leave an older version on disk than the one being served.
   */
  private persist(slice: WorkloadSlice): void {
    const queued = this.pendingPersist !== null;
    this.pendingPersist = slice;
    if (queued) return;
    this.persisting = this.persisting
      .then(async () => {
        const latest = this.pendingPersist;
        this.pendingPersist = null;
        if (latest) await writeFileAtomic(join(this.o.dataDir, 'slice.json'), JSON.stringify(latest));
      })
      .catch((e) => this.o.log.error({ err: (e as Error).message }, 'could not persist the configuration'));
  }

  private pendingPersist: WorkloadSlice | null = null;
  private persisting: Promise<void> = Promise.resolve();

  private async loadPersistedSlice(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(this.o.dataDir, 'slice.json'), 'utf8');
    } catch {
      return;
    }
    try {
      const slice = JSON.parse(text) as WorkloadSlice;
      if (slice.mesh && needsRegoEngine(slice.mesh)) await loadRegoEngine();
      this.state = applySlice(slice, this.workload);
      this.filters = inboundFilters(this.workload, this.o.servicePort ?? this.o.port, this.ownId);
      this.o.log.info({ version: this.state.version }, 'serving the last applied configuration from disk until the control plane answers');
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'the persisted configuration is unusable; waiting for the control plane');
    }
  }

  status() {
    const svid = this.identity?.rotator.current();
    return {
      service: this.o.service,
      namespace: this.o.namespace,
      spiffeId: svid?.spiffeId ?? null,
      certificate: svid ? { notBefore: svid.notBefore.toISOString(), notAfter: svid.notAfter.toISOString(), expiresInSeconds: Math.floor(this.identity.rotator.timeToExpiryMs() / 1000) } : null,
      controlPlane: { connected: this.xds?.connected ?? false },
      version: this.state?.version ?? null,
      lastNack: this.applier.lastNack,
      mtlsMode: this.state ? this.state.snapshot.peerAuthn.effective(this.workload, this.servicePort) : null,
      ports: this.ports,
      services: this.state?.slice.services.map((s) => ({ name: `${s.name}.${s.namespace}`, port: s.servicePort, endpoints: s.endpoints.length, identities: s.spiffeIds })) ?? [],
      quarantined: this.state ? [...this.state.quarantined] : [],
    };
  }

  private onAdmin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    return serveAdmin({ registry: this.metrics.registry, state: () => this.state, hasCertificate: () => !!this.identity?.rotator.current(), status: () => this.status() }, req, res);
  }

}
