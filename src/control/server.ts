/**
 * `ztmesh control`: the control plane. It owns the CA (issuing SVIDs from CSR + join
 * token, and renewals over mTLS), the config store (validated, last good kept), the
 * workload registry and the quarantine list, and streams each sidecar its slice over
 * mutual TLS. An admin JSON API listens on loopback.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { ZtmError } from '../errors.js';
import { BundleSet, IdentityAuthority, JoinTokenStore, SvidRotator, caPaths, checkCsr, initCa, loadCa, normalizeDnsNames, parseDuration, parseSpiffeId, parseWorkloadId, peerIdentity, IntermediateCache, workloadSpiffeId } from '../identity/index.js';
import type { CertificateAuthority } from '../identity/index.js';
import { writeFileAtomic } from '../identity/ca.js';
import type { PolicySnapshot } from '../policy/snapshot.js';
import { ConfigStore } from './config-store.js';
import { CONTROL_PLANE_SA, XDS_ALPN, onMessages, send } from './protocol.js';
import type { Registration, ToControl, WorkloadSlice } from './protocol.js';
import { Registry } from './registry.js';
import type { WorkloadRecord } from './registry.js';
import { servicesOf, sliceFor, sliceVersion } from './slice.js';
import { TokenService } from './token-exchange.js';
import { authorizeServerCertificate } from './server-cert.js';
import { HttpError, handleJson, readJson, sendJson } from '../util/http.js';
import type { Logger } from '../telemetry/log.js';
import { silentLogger } from '../telemetry/log.js';

export interface ControlPlaneOptions {
  configPaths: string[];
  dataDir: string;
  passphrase: string;
  /** Trust domain for a new CA (an existing CA keeps its own). */
  trustDomain?: string;
  host?: string;
  port?: number;
  adminPort?: number;
  /** Lifetime of issued workload SVIDs (default 1 h). */
  svidTtlMs?: number;
  /** A sidecar silent for this long is dropped (default 15 s). */
  heartbeatTimeoutMs?: number;
  /**
   * After a restart, endpoints registered before it keep being served for this long
   * unless their sidecars re-register sooner (default 10 s, above the sidecars' 6 s
   * worst-case reconnect backoff).
   */
  reconnectGraceMs?: number;
  watch?: boolean;
  log?: Logger;
}

interface Conn {
  id: string;
  socket: tls.TLSSocket;
  spiffeId: string;
  record?: WorkloadRecord;
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export class ControlPlane {
  readonly config: ConfigStore;
  readonly registry = new Registry();
  private ca!: CertificateAuthority;
  private authority!: IdentityAuthority;
  private tokens!: JoinTokenStore;
  private bundles!: BundleSet;
  private rotator!: SvidRotator;
  private tlsServer!: tls.Server;
  private httpApi!: HttpServer;
  private admin!: HttpServer;
  private readonly conns = new Map<string, Conn>();
  private quarantined = new Set<string>();
  private readonly issued = new Map<string, { notAfter: string; serial: string; issuedAt: string }>();
  /** TLS server certificates (POST /v1/sign-server), by the caller's SPIFFE ID. */
  private readonly issuedServer = new Map<string, { dnsNames: string[]; notAfter: string; serial: string; issuedAt: string }>();
  private readonly intermediates = new IntermediateCache();
  private sweep?: NodeJS.Timeout;
  /** Endpoints known before a restart whose sidecars have not re-registered yet (see loadEndpoints). */
  private readonly restored = new Map<string, WorkloadRecord>();
  private restoredTimer?: NodeJS.Timeout;
  private saving: Promise<void> = Promise.resolve();
  private quarantineSaving: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly log: Logger;
  readonly spiffeId: string;

  constructor(private readonly o: ControlPlaneOptions) {
    this.config = new ConfigStore(o.configPaths);
    this.log = o.log ?? silentLogger;
    this.spiffeId = '';
  }

  /** RFC 8693 token exchange (POST /token) and the mesh's JWKS. */
  private get exchange(): TokenService {
    return (this.tokenService ??= new TokenService({
      dataDir: this.o.dataDir,
      passphrase: this.o.passphrase,
      trustDomain: this.ca.trustDomain,
      bundles: this.bundles,
      snapshot: () => this.config.snapshot(),
      services: () => [...new Set(this.registry.all().map((r) => `${r.service}.${r.namespace}`))],
    }));
  }
  private tokenService?: TokenService;

  /** Start listening; resolves with the bound ports. */
  async start(): Promise<{ port: number; adminPort: number; spiffeId: string; trustDomain: string; bundlePath: string }> {
    const paths = caPaths(this.o.dataDir);
    try {
      this.ca = await loadCa(this.o.dataDir, this.o.passphrase, { defaultTtlMs: this.o.svidTtlMs });
    } catch (e) {
      if (e instanceof ZtmError && /no CA|not found|ENOENT|does not exist/i.test(e.message)) {
        this.log.info({ dir: paths.dir }, 'no CA in the data directory: creating a root and an intermediate CA');
        await initCa(this.o.dataDir, { trustDomain: this.o.trustDomain ?? 'cluster.local', passphrase: this.o.passphrase });
        this.ca = await loadCa(this.o.dataDir, this.o.passphrase, { defaultTtlMs: this.o.svidTtlMs });
      } else throw e;
    }
    this.tokens = JoinTokenStore.inDataDir(this.o.dataDir);
    this.authority = new IdentityAuthority(this.ca, this.tokens);
    this.bundles = BundleSet.of(this.ca.trustDomain, this.ca.roots);
    await this.loadQuarantine();
    await this.loadEndpoints();

    this.config.reload();
    const first = this.config.snapshot();
    if (!first) {
      const errs = this.config.getStatus().errors;
      throw new ZtmError('ZTM_CONFIG_INVALID', `the initial configuration is invalid (${errs.length} error${errs.length === 1 ? '' : 's'}):\n${errs.map((e) => `  ${e.file ?? ''}:${e.line ?? ''}:${e.col ?? ''} ${e.field ?? ''}: ${e.message}`).join('\n')}`);
    }
    this.checkTrustDomain(first);
    this.config.on('snapshot', (s) => {
      if (s.mesh.trustDomain !== this.ca.trustDomain) this.log.error({ meshTrustDomain: s.mesh.trustDomain, caTrustDomain: this.ca.trustDomain }, 'MeshConfig trust domain differs from the CA');
      this.log.info({ version: s.version }, 'configuration accepted');
      this.pushAll();
    });
    this.config.on('rejected', (errs) => {
      for (const e of errs) this.log.error({ code: e.code, file: e.position.file, line: e.position.line, col: e.position.col, field: e.position.field }, e.message);
      this.log.warn({ serving: this.config.getStatus().version }, 'configuration rejected; the last good version keeps serving');
    });
    if (this.o.watch !== false) this.config.watch();

    // The control plane's own SVID, issued in-process and rotated like any workload's.
    const selfId = workloadSpiffeId(this.ca.trustDomain, 'istio-system', CONTROL_PLANE_SA).toString();
    (this as { spiffeId: string }).spiffeId = selfId;
    this.rotator = new SvidRotator({
      bundles: this.bundles,
      requestedSpiffeId: selfId,
      issuer: async ({ csr }) => ({ chainPem: this.ca.issueFromCsr(csr, { spiffeId: selfId }).chainPem }),
    });
    await this.rotator.start();

    this.httpApi = createHttpServer((req, res) => void this.onApi(req, res));
    this.httpApi.keepAliveTimeout = 5000;
    this.tlsServer = tls.createServer({
      ...this.rotator.serverOptions(),
      requestCert: true,
      rejectUnauthorized: false, // bootstrap (/v1/sign) has no certificate yet; everything else checks peerIdentity
      ALPNProtocols: [XDS_ALPN, 'http/1.1'],
    });
    this.rotator.attachServer(this.tlsServer);
    this.tlsServer.on('secureConnection', (socket) => {
      if (socket.alpnProtocol === XDS_ALPN) this.onXds(socket);
      else this.httpApi.emit('connection', socket);
    });
    this.tlsServer.on('tlsClientError', (e) => this.log.debug({ err: e.message }, 'TLS handshake failed'));
    await listen(this.tlsServer, this.o.port ?? 15010, this.o.host ?? '127.0.0.1');

    this.admin = createHttpServer((req, res) => void this.onAdmin(req, res));
    await listen(this.admin, this.o.adminPort ?? 15014, '127.0.0.1');

    const timeout = this.o.heartbeatTimeoutMs ?? 15_000;
    this.sweep = setInterval(() => {
      for (const c of this.conns.values()) {
        if (c.record && Date.now() - c.record.lastHeartbeat > timeout) {
          this.log.warn({ workload: c.record.id }, 'sidecar missed its heartbeats: dropping it');
          c.socket.destroy();
        }
      }
    }, Math.max(250, Math.floor(timeout / 3)));
    this.sweep.unref();
    const port = (this.tlsServer.address() as AddressInfo).port;
    const adminPort = (this.admin.address() as AddressInfo).port;
    this.log.info({ port, adminPort, trustDomain: this.ca.trustDomain, spiffeId: selfId }, 'control plane ready');
    return { port, adminPort, spiffeId: selfId, trustDomain: this.ca.trustDomain, bundlePath: paths.roots };
  }

  async stop(): Promise<void> {
    // Sidecars dropped by our own shutdown are not gone: keep them in endpoints.json.
    this.stopping = true;
    clearInterval(this.sweep);
    clearTimeout(this.restoredTimer);
    this.config.close();
    this.rotator?.stop();
    for (const c of this.conns.values()) c.socket.destroy();
    await Promise.all([close(this.tlsServer), close(this.admin), close(this.httpApi)]);
  }

  private checkTrustDomain(s: PolicySnapshot): void {
    if (s.mesh.trustDomain !== this.ca.trustDomain) {
      throw new ZtmError('ZTM_CONFIG_INVALID', `MeshConfig trustDomain "${s.mesh.trustDomain}" differs from the CA's trust domain "${this.ca.trustDomain}"`);
    }
  }

  // ---- the snapshot stream ----
  private onXds(socket: tls.TLSSocket): void {
    const v = peerIdentity(socket, this.bundles, Date.now(), { expectedTrustDomain: this.ca.trustDomain, intermediateCache: this.intermediates });
    if (!v.ok) {
      this.log.warn({ reason: v.reason }, 'refused a sidecar stream: no valid SVID');
      send(socket, { type: 'error', message: `a valid X.509-SVID is required (${v.reason})` });
      socket.end();
      return;
    }
    const conn: Conn = { id: randomUUID(), socket, spiffeId: v.spiffeId };
    this.conns.set(conn.id, conn);
    socket.setKeepAlive(true, 5000);
    onMessages<ToControl>(
      socket,
      (msg) => this.onSidecarMessage(conn, msg),
      (e) => this.log.warn({ err: e.message }, 'bad message from a sidecar'),
    );
    const drop = () => {
      if (!this.conns.delete(conn.id)) return;
      // Not when a newer stream of the same workload has replaced this one (same id):
      // removing by id would delete the new registration.
      if (conn.record && !this.stopping && this.registry.get(conn.record.id) === conn.record) {
        this.registry.remove(conn.record.id);
        this.log.info({ workload: conn.record.id }, 'sidecar disconnected');
        this.saveEndpoints();
        this.pushAll();
      }
    };
    socket.on('close', drop);
    socket.on('error', drop);
  }

  private onSidecarMessage(conn: Conn, msg: ToControl): void {
    switch (msg?.type) {
      case 'hello': {
        const reg = msg.registration;
        const problem = this.checkRegistration(conn.spiffeId, reg);
        if (problem) {
          send(conn.socket, { type: 'error', message: problem });
          conn.socket.end();
          this.log.warn({ spiffeId: conn.spiffeId, problem }, 'refused a registration');
          return;
        }
        const id = `${reg.namespace}/${reg.service}@${reg.address}:${reg.port}`;
        // A sidecar that reconnects replaces its older record.
        for (const c of this.conns.values()) if (c !== conn && c.record?.id === id) c.socket.destroy();
        conn.record = this.registry.add(id, conn.spiffeId, reg);
        this.restored.delete(id);
        this.saveEndpoints();
        this.log.info({ workload: id, spiffeId: conn.spiffeId }, 'sidecar registered');
        send(conn.socket, { type: 'welcome', spiffeId: conn.spiffeId });
        this.pushAll();
        return;
      }
      case 'ack':
      case 'nack': {
        const r = conn.record;
        if (!r) return;
        r.lastHeartbeat = Date.now();
        if (msg.type === 'ack') {
          r.appliedVersion = msg.version;
          if (r.nack?.version === msg.version) r.nack = null;
        } else {
          r.nack = { version: msg.version, error: String(msg.error).slice(0, 4000), at: new Date().toISOString() };
          this.log.warn({ workload: r.id, version: msg.version, error: r.nack.error }, 'sidecar NACKed a version; it keeps its previous one');
        }
        return;
      }
      case 'heartbeat':
        if (conn.record) conn.record.lastHeartbeat = Date.now();
        return;
      default:
        this.log.warn({ type: (msg as { type?: unknown })?.type }, 'unknown message from a sidecar');
    }
  }

  private checkRegistration(spiffeId: string, reg: Registration | undefined): string | null {
    if (!reg || typeof reg !== 'object') return 'hello without a registration';
    const w = parseWorkloadId(spiffeId);
    if (!w) return `the certificate's SPIFFE ID ${spiffeId} is not a workload identity (/ns/<ns>/sa/<sa>)`;
    if (reg.namespace !== w.namespace || reg.serviceAccount !== w.serviceAccount) {
      return `registration says ${reg.namespace}/${reg.serviceAccount} but the certificate is ${spiffeId}`;
    }
    if (typeof reg.service !== 'string' || !NAME.test(reg.service)) return `service name "${reg.service}" is not a DNS label`;
    if (typeof reg.address !== 'string' || !reg.address) return 'registration needs an address';
    for (const [k, p] of [['port', reg.port], ['servicePort', reg.servicePort]] as const) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) return `registration ${k} must be 1..65535`;
    }
    if (typeof reg.labels !== 'object' || reg.labels === null || Object.values(reg.labels).some((x) => typeof x !== 'string')) return 'labels must be a map of strings';
    if (this.quarantined.has(spiffeId)) return `${spiffeId} is quarantined`;
    return null;
  }

  /** Compute and send every connected sidecar's slice when its content changed. */
  pushAll(): void {
    const snap = this.config.snapshot();
    if (!snap) return;
    const live = this.registry.all();
    const services = servicesOf(this.restored.size ? [...live, ...[...this.restored.values()].filter((r) => !this.registry.get(r.id))] : live, snap);
    const q = [...this.quarantined];
    for (const c of this.conns.values()) {
      const r = c.record;
      if (!r) continue;
      const body = sliceFor(r, snap, services, q);
      const version = sliceVersion(body);
      if (version === r.sentVersion) continue;
      r.sentVersion = version;
      const slice: WorkloadSlice = { version, ...body };
      send(c.socket, { type: 'slice', slice });
    }
  }

  // ---- CA and bundle over TLS ----
  private async onApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://control');
    if (url.pathname === '/token') return this.exchange.handleToken(req, res).catch((e: Error) => sendJson(res, 500, { error: 'server_error', error_description: e.message }));
    if (req.method === 'GET' && url.pathname === '/.well-known/jwks.json') return sendJson(res, 200, await this.exchange.jwks());
    await handleJson(res, async () => {
      if (req.method === 'GET' && url.pathname === '/v1/bundle') return { trustDomain: this.ca.trustDomain, rootsPem: this.bundles.rootsPem(this.ca.trustDomain) };
      if (req.method === 'POST' && url.pathname === '/v1/sign') {
        const body = (await readJson(req, 64 * 1024)) as { csr?: unknown; token?: unknown };
        if (typeof body.csr !== 'string' || typeof body.token !== 'string') throw new HttpError(400, 'expected {"csr": "<PEM>", "token": "<join token>"}');
        let svid;
        try {
          svid = await this.authority.issueWithJoinToken({ csr: body.csr, token: body.token });
        } catch (e) {
          if (e instanceof ZtmError && e.code === 'ZTM_TOKEN_INVALID') throw new HttpError(401, e.message);
          if (e instanceof ZtmError) throw new HttpError(400, e.message);
          throw e;
        }
        if (this.quarantined.has(svid.spiffeId)) throw new HttpError(403, `${svid.spiffeId} is quarantined`);
        this.recordIssued(svid);
        this.log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter }, 'issued an SVID (join token)');
        return { spiffeId: svid.spiffeId, chainPem: svid.chainPem, bundlePem: this.bundles.rootsPem(this.ca.trustDomain) };
      }
      if (req.method === 'POST' && url.pathname === '/v1/renew') {
        const socket = req.socket as tls.TLSSocket;
        const v = peerIdentity(socket, this.bundles, Date.now(), { expectedTrustDomain: this.ca.trustDomain, intermediateCache: this.intermediates });
        if (!v.ok) throw new HttpError(401, `renewal needs the current SVID as client certificate (${v.reason})`);
        if (this.quarantined.has(v.spiffeId)) throw new HttpError(403, `${v.spiffeId} is quarantined`);
        const body = (await readJson(req, 64 * 1024)) as { csr?: unknown };
        if (typeof body.csr !== 'string') throw new HttpError(400, 'expected {"csr": "<PEM>"}');
        let svid;
        try {
          svid = this.ca.issueFromCsr(body.csr, { spiffeId: v.spiffeId });
        } catch (e) {
          if (e instanceof ZtmError) throw new HttpError(400, e.message);
          throw e;
        }
        this.recordIssued(svid);
        this.log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter }, 'renewed an SVID');
        return { spiffeId: svid.spiffeId, chainPem: svid.chainPem, bundlePem: this.bundles.rootsPem(this.ca.trustDomain) };
      }
      if (req.method === 'POST' && url.pathname === '/v1/sign-server') return this.signServerCertificate(req, res);
      throw new HttpError(404, `no route for ${req.method} ${url.pathname}`);
    });
  }

  /**
   * POST /v1/sign-server `{"csr": "<PEM>", "dnsNames": [...]}`: a TLS server certificate for
   * DNS names (the edge gateway's HTTPS listener). The caller is its SVID (the peer
   * certificate), not quarantined, and every name must be covered by a Gateway selecting
   * its registered workload (control/server-cert.ts). Fails closed: any doubt is a refusal.
   */
  private async signServerCertificate(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const v = peerIdentity(req.socket as tls.TLSSocket, this.bundles, Date.now(), { expectedTrustDomain: this.ca.trustDomain, intermediateCache: this.intermediates });
    if (!v.ok) throw new HttpError(401, `a server certificate needs the caller's SVID as client certificate (${v.reason})`);
    if (this.quarantined.has(v.spiffeId)) throw new HttpError(403, `${v.spiffeId} is quarantined`);
    const body = (await readJson(req, 64 * 1024)) as { csr?: unknown; dnsNames?: unknown };
    if (typeof body.csr !== 'string' || !Array.isArray(body.dnsNames) || !body.dnsNames.every((n) => typeof n === 'string')) {
      throw new HttpError(400, 'expected {"csr": "<PEM>", "dnsNames": ["shop.example.com", ...]}');
    }
    let names: string[];
    let csr;
    try {
      names = normalizeDnsNames(body.dnsNames as string[]);
      csr = checkCsr(body.csr);
    } catch (e) {
      if (e instanceof ZtmError) throw new HttpError(400, e.message);
      throw e;
    }
    const snap = this.config.snapshot();
    if (!snap) throw new HttpError(503, 'no valid configuration yet');
    const workloads = this.registry.all().filter((r) => r.connected && r.spiffeId === v.spiffeId);
    const d = authorizeServerCertificate(snap.config.resources, v.spiffeId, workloads, names);
    if (!d.ok) {
      this.log.warn({ spiffeId: v.spiffeId, dnsNames: names, name: d.name, reason: d.error }, 'refused a server certificate');
      sendJson(res, d.status, { error: d.error, code: 'ZTM_CERT_DENIED', ...(d.name ? { name: d.name } : {}) });
      return undefined;
    }
    let cert;
    try {
      cert = this.ca.issueServerCertificate(csr, { dnsNames: d.names });
    } catch (e) {
      if (e instanceof ZtmError) throw new HttpError(400, e.message);
      throw e;
    }
    this.issuedServer.set(v.spiffeId, { dnsNames: cert.dnsNames, notAfter: cert.notAfter.toISOString(), serial: cert.serialHex, issuedAt: new Date().toISOString() });
    this.log.info({ spiffeId: v.spiffeId, dnsNames: cert.dnsNames, coveredBy: d.coveredBy, notAfter: cert.notAfter, serial: cert.serialHex }, 'issued a server certificate');
    return { dnsNames: cert.dnsNames, chainPem: cert.chainPem, notAfter: cert.notAfter.toISOString(), serial: cert.serialHex, bundlePem: this.bundles.rootsPem(this.ca.trustDomain) };
  }

  private recordIssued(s: { spiffeId: string; notAfter: Date; serialHex: string }): void {
    this.issued.set(s.spiffeId, { notAfter: s.notAfter.toISOString(), serial: s.serialHex, issuedAt: new Date().toISOString() });
  }

  // ---- endpoints across restarts ----
  // The registry is built from live connections, so a restarted control plane starts
  // empty. Without memory, the first sidecar to reconnect would be sent a slice without
  // the services whose sidecars have not reconnected yet, and its app's calls to them
  // would fail (502: "not a mesh service") until they do: a control-plane restart
  // breaking traffic between running sidecars. So the registered endpoints are kept in
  // <data-dir>/endpoints.json, and after a restart they keep being served until their
  // sidecar re-registers or the grace period ends.
  private endpointsPath(): string {
    return join(this.o.dataDir, 'endpoints.json');
  }

  private async loadEndpoints(): Promise<void> {
    let list: unknown;
    try {
      list = JSON.parse(await readFile(this.endpointsPath(), 'utf8'));
    } catch {
      return;
    }
    if (!Array.isArray(list)) return;
    for (const r of list as Partial<WorkloadRecord>[]) {
      if (!r || typeof r.id !== 'string' || typeof r.spiffeId !== 'string' || this.quarantined.has(r.spiffeId)) continue;
      if (this.checkRegistration(r.spiffeId, r as Registration)) continue;
      this.restored.set(r.id, { ...(r as WorkloadRecord), connectedAt: '', lastHeartbeat: 0, sentVersion: null, appliedVersion: null, nack: null, connected: true });
    }
    if (!this.restored.size) return;
    const grace = this.o.reconnectGraceMs ?? 10_000;
    this.log.info({ endpoints: this.restored.size, graceMs: grace }, 'serving the endpoints registered before the restart until their sidecars reconnect');
    this.restoredTimer = setTimeout(() => {
      if (!this.restored.size) return;
      this.log.info({ endpoints: [...this.restored.keys()] }, 'endpoints whose sidecars did not reconnect are dropped');
      this.restored.clear();
      this.pushAll();
    }, grace);
    this.restoredTimer.unref();
  }

  private saveEndpoints(): void {
    if (this.stopping) return;
    this.saving = this.saving
      .then(() => {
        const list = this.registry.all().map((r) => ({ id: r.id, spiffeId: r.spiffeId, service: r.service, namespace: r.namespace, serviceAccount: r.serviceAccount, labels: r.labels, address: r.address, port: r.port, servicePort: r.servicePort }));
        return writeFileAtomic(this.endpointsPath(), JSON.stringify(list, null, 1) + '\n');
      })
      .catch((e) => this.log.error({ err: (e as Error).message }, 'could not persist the registered endpoints'));
  }

  // ---- quarantine ----
  private quarantinePath(): string {
    return join(this.o.dataDir, 'quarantine.json');
  }

  private async loadQuarantine(): Promise<void> {
    try {
      const list = JSON.parse(await readFile(this.quarantinePath(), 'utf8')) as string[];
      this.quarantined = new Set(list);
    } catch {
      this.quarantined = new Set();
    }
  }

  async setQuarantine(spiffeId: string, lift: boolean): Promise<{ quarantined: string[]; changed: boolean }> {
    const id = parseSpiffeId(spiffeId).toString();
    const had = this.quarantined.has(id);
    if (lift) this.quarantined.delete(id);
    else this.quarantined.add(id);
    // Serialized, each write taking the set as it is then: concurrent atomic writes
    // (temp file + rename) finish in any order, and an older set landing last lost
    // quarantine entries across a restart.
    const write = this.quarantineSaving.then(() => writeFileAtomic(this.quarantinePath(), JSON.stringify([...this.quarantined].sort(), null, 2) + '\n'));
    this.quarantineSaving = write.catch(() => undefined);
    await write;
    this.log.warn({ spiffeId: id, lift }, lift ? 'quarantine lifted' : 'identity quarantined');
    this.pushAll();
    return { quarantined: [...this.quarantined].sort(), changed: had === lift };
  }

  // ---- admin API (loopback) ----
  status() {
    const snap = this.config.snapshot();
    return {
      trustDomain: this.ca.trustDomain,
      spiffeId: this.spiffeId,
      config: this.config.getStatus(),
      sidecars: this.registry.all().map((r) => ({
        id: r.id,
        service: r.service,
        namespace: r.namespace,
        spiffeId: r.spiffeId,
        address: `${r.address}:${r.port}`,
        labels: r.labels,
        connectedAt: r.connectedAt,
        sentVersion: r.sentVersion,
        appliedVersion: r.appliedVersion,
        inSync: r.sentVersion !== null && r.sentVersion === r.appliedVersion,
        nack: r.nack,
        certificate: this.issued.get(r.spiffeId) ?? null,
      })),
      quarantined: [...this.quarantined].sort(),
      certificates: {
        controlPlane: { spiffeId: this.spiffeId, notAfter: this.rotator.current()?.notAfter.toISOString() ?? null, expiresInSeconds: Math.floor(this.rotator.timeToExpiryMs() / 1000) },
        ca: { signingNotAfter: this.ca.signing.notAfter.toISOString(), roots: this.ca.roots.length },
        issued: Object.fromEntries(this.issued),
        serverCertificates: Object.fromEntries(this.issuedServer),
      },
      snapshotVersion: snap?.version ?? null,
    };
  }

  private async onAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method === 'GET' && url.pathname === '/.well-known/jwks.json') return sendJson(res, 200, await this.exchange.jwks());
    await handleJson(res, async () => {
      const route = `${req.method} ${url.pathname}`;
      switch (route) {
        case 'GET /healthz':
          return { ok: true };
        case 'GET /v1/status':
          return this.status();
        case 'GET /v1/sidecars':
          return this.status().sidecars;
        case 'GET /v1/config':
          return this.config.getStatus();
        case 'GET /v1/certificates':
          return this.status().certificates;
        case 'POST /v1/quarantine': {
          const b = (await readJson(req)) as { spiffeId?: unknown; lift?: unknown };
          if (typeof b.spiffeId !== 'string') throw new HttpError(400, 'expected {"spiffeId": "spiffe://...", "lift": false}');
          try {
            return await this.setQuarantine(b.spiffeId, b.lift === true);
          } catch (e) {
            if (e instanceof ZtmError) throw new HttpError(400, e.message);
            throw e;
          }
        }
        case 'POST /v1/tokens': {
          const b = (await readJson(req)) as { namespace?: unknown; serviceAccount?: unknown; ttl?: unknown };
          if (typeof b.namespace !== 'string' || typeof b.serviceAccount !== 'string') throw new HttpError(400, 'expected {"namespace": "...", "serviceAccount": "...", "ttl": "10m"}');
          const ttlMs = typeof b.ttl === 'string' ? parseDuration(b.ttl) : undefined;
          const t = await this.tokens.create({ namespace: b.namespace, serviceAccount: b.serviceAccount, ttlMs, trustDomain: this.ca.trustDomain });
          return { token: t.token, id: t.id, namespace: t.namespace, serviceAccount: t.serviceAccount, expiresAt: t.expiresAt.toISOString() };
        }
        default:
          if (req.method === 'GET' && url.pathname === '/') return sendJson(res, 200, { endpoints: ['/healthz', '/v1/status', '/v1/sidecars', '/v1/config', '/v1/certificates', 'POST /v1/quarantine', 'POST /v1/tokens'] });
          throw new HttpError(404, `no route for ${route}`);
      }
    });
  }
}

function listen(server: tls.Server | HttpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: tls.Server | HttpServer | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server?.listening) return resolve();
    server.close(() => resolve());
    (server as HttpServer).closeAllConnections?.();
  });
}
