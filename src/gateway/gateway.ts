/**
 * `ztmesh gateway`: the edge. A sidecar whose inbound side faces the outside world: it
 * bootstraps its own workload identity and receives its slice like any sidecar, serves
 * HTTPS (and optionally HTTP) to clients, and runs the edge pipeline:
 *
 *   hygiene (smuggling, header limits, strip identity headers) → path normalization →
 *   client address + IP allow/deny → size limits → JWT (RequestAuthentication) → route
 *   (Gateway + VirtualService) → authorization → rate limit → token exchange →
 *   the sidecar's outbound path into the mesh (mTLS, secure naming), the body counted as
 *   it streams.
 */
import http from 'node:http';
import { serveAdmin } from '../proxy/admin.js';
import https from 'node:https';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { Transform } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import { Redis } from 'ioredis';
import { BundleSet, normalizeDnsNames, parseCertificate, pemCertificates } from '../identity/index.js';
import { ZtmError } from '../errors.js';
import type { Registration, WorkloadSlice } from '../control/protocol.js';
import { AccessLog } from '../telemetry/access-log.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import { IdentityClient } from '../proxy/identity-client.js';
import { ServerCertClient } from './server-cert.js';
import { OutboundProxy } from '../proxy/outbound.js';
import { pathFilter, runFilters, RBAC_DENIED } from '../proxy/filters.js';
import type { Exchange, Filter, FilterResult, LocalReply, PeerInfo } from '../proxy/filters.js';
import { requestAuthnFilter } from '../proxy/authn-filter.js';
import { SliceApplier } from '../proxy/state.js';
import type { ProxyState } from '../proxy/state.js';
import { XdsClient } from '../proxy/xds-client.js';
import { authorizeFor } from '../policy/engine.js';
import { selectorMatches } from '../policy/select.js';
import type { AuthzInput } from '../policy/request.js';
import type { GatewayPolicy, GatewayPolicySpec, RateLimitPolicy, RequestMatch } from '../config/kinds/gateway.js';
import { compileRoutes, hostMatches, matchRoute, type RouteMatch, type RouteTable } from './routes.js';
import { compileHttpsRedirectHosts, httpsRedirectLocation } from './https-redirect.js';
import { clientAddress, compileIpAccess, ipAllowed, sizeCheck, smugglingProblem, type IpAccess, type SizeLimit } from './edge.js';
import { identifierFor, LocalLimiter, policyLimits, rateLimitHeaders, RedisLimiter, type Limiter, type Verdict } from './rate-limit.js';
import { splitHostPort } from '../proxy/outbound.js';
import { spiffeServerCheck } from '../proxy/tls.js';
import type { Resource } from '../config/types.js';

export interface GatewayLimits {
  /** Largest request head (request line + headers), bytes (431 above). */
  maxHeaderBytes: number;
  /** Most header fields per request (431 above). */
  maxHeaders: number;
  /** Time a client has to send the whole request head (408 after). */
  headersTimeoutMs: number;
  /** Time a client has to send the whole request (408 after). */
  requestTimeoutMs: number;
  /** A connection with no traffic is closed after this. */
  idleTimeoutMs: number;
}

export const DEFAULT_GATEWAY_LIMITS: GatewayLimits = { maxHeaderBytes: 16 * 1024, maxHeaders: 100, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, idleTimeoutMs: 60_000 };

export interface GatewayOptions {
  service?: string;
  namespace?: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  bindHost?: string;
  /** HTTPS listener (0 = any free port). */
  httpsPort: number;
  /** Optional plaintext HTTP listener. */
  httpPort?: number | null;
  /** The HTTPS listener's certificate from files; or, instead, `dnsNames`. */
  tls?: { certPem: string; keyPem: string };
  /**
   * Have the mesh CA issue the HTTPS certificate for these DNS names (normalized; each must
   * be in the hosts of a Gateway selecting this gateway), renewed at half its lifetime.
   */
  dnsNames?: string[];
  adminPort?: number;
  controlPlane: { host: string; port: number };
  caPem: string;
  trustDomain?: string;
  token?: string;
  dataDir: string;
  limits?: Partial<GatewayLimits>;
  accessLog?: Writable | null;
  log: Logger;
  now?: () => number;
}

export interface GatewayPorts {
  https: number;
  http: number | null;
  admin: number;
  spiffeId: string;
}

/** Headers a client may never set: the mesh's identity and forwarding headers. */
const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'x-ztmesh-principal', 'x-ztmesh-request-principal', 'x-ztmesh-spiffe-id', 'x-envoy-external-address', 'x-envoy-peer-metadata', 'x-envoy-peer-metadata-id'];

interface Compiled {
  routes: RouteTable;
  /** Hosts of Gateway servers with tls.httpsRedirect: plaintext requests for them get 301 to https. */
  httpsRedirectHosts: string[];
  ip: IpAccess;
  trustedProxies: number;
  size: SizeLimit;
  rateLimits: RateLimitPolicy[];
  tokenExchange: NonNullable<GatewayPolicySpec['tokenExchange']>;
}

interface GatewayExchange extends Exchange {
  clientIp: string;
  /** Arrived on the HTTPS listener (false: the plain HTTP one). */
  secure: boolean;
  route?: RouteMatch;
  token?: string;
  rlHeaders?: Record<string, string>;
}

export class GatewayServer {
  readonly metrics: ProxyMetrics;
  readonly bundles: BundleSet;
  private readonly rlDecisions: Counter<'result'>;
  private readonly rlStoreErrors: Counter<'policy'>;
  private readonly refused: Counter<'reason'>;
  private state: ProxyState | null = null;
  private compiled = new WeakMap<ProxyState, Compiled>();
  private identity!: IdentityClient;
  private outbound!: OutboundProxy;
  private xds!: XdsClient;
  private admin!: http.Server;
  private servers: http.Server[] = [];
  private readonly applier: SliceApplier;
  private ports!: GatewayPorts;
  private readonly workload: { namespace: string; labels: Record<string, string> };
  private readonly limits: GatewayLimits;
  private readonly local = new LocalLimiter();
  private readonly redis = new Map<string, RedisLimiter>();
  private readonly filters: Filter[];
  private readonly accessLog: AccessLog;
  private readonly now: () => number;
  private ownId = '';
  private serverCert?: ServerCertClient;
  /** Registered at the control plane on the current stream (a slice arrived since connecting). */
  private registered = false;
  private readonly registeredWaiters = new Set<() => void>();
  private readonly poisoned = new WeakSet<object>();

  constructor(private readonly o: GatewayOptions) {
    const service = o.service ?? 'ingress-gateway';
    const namespace = o.namespace ?? 'istio-system';
    this.metrics = new ProxyMetrics({ service, namespace });
    const registers = [this.metrics.registry];
    this.rlDecisions = new Counter({ name: 'ztmesh_gateway_ratelimit_decisions_total', help: 'Rate-limit decisions, by result (allowed, limited, fail_open, fail_closed)', labelNames: ['result'], registers });
    this.rlStoreErrors = new Counter({ name: 'ztmesh_gateway_ratelimit_store_errors_total', help: 'Rate-limit counter store (Redis) errors, by policy', labelNames: ['policy'], registers });
    this.refused = new Counter({ name: 'ztmesh_gateway_refused_total', help: 'Requests the gateway answered itself, by reason', labelNames: ['reason'], registers });
    const td = o.trustDomain ?? 'cluster.local';
    const roots = pemCertificates(o.caPem);
    if (!roots.length) throw new ZtmError('ZTM_USAGE', 'the CA bundle has no certificates');
    this.bundles = BundleSet.of(td, roots);
    this.workload = Object.freeze({ namespace, labels: Object.freeze({ istio: 'ingressgateway', ...(o.labels ?? {}) }) }) as { namespace: string; labels: Record<string, string> };
    this.applier = new SliceApplier({ workload: this.workload, metrics: this.metrics, log: o.log });
    this.limits = { ...DEFAULT_GATEWAY_LIMITS, ...(o.limits ?? {}) };
    this.now = o.now ?? Date.now;
    this.accessLog = new AccessLog(o.accessLog === undefined ? process.stdout : o.accessLog);
    this.filters = [pathFilter, this.ipFilter, this.sizeFilter, requestAuthnFilter(this.workload, { now: this.now }), this.routeFilter, this.authzFilter, this.rateLimitFilter, this.exchangeFilter];
  }

  current(): ProxyState | null {
    return this.state;
  }

  async start(): Promise<GatewayPorts> {
    const o = this.o;
    if (!o.tls === !o.dnsNames) throw new ZtmError('ZTM_USAGE', 'the HTTPS listener needs exactly one certificate source: a certificate and key from files, or DNS names for the mesh CA to issue one for');
    const dnsNames = o.dnsNames ? normalizeDnsNames(o.dnsNames) : undefined;
    await mkdir(o.dataDir, { recursive: true, mode: 0o700 });
    this.identity = new IdentityClient({ controlPlane: o.controlPlane, bundles: this.bundles, trustDomain: o.trustDomain ?? 'cluster.local', dataDir: o.dataDir, token: o.token, log: o.log });
    const svid = await this.identity.start();
    this.ownId = svid.spiffeId;
    // The outbound path is the sidecar's; the gateway calls route() and opens no proxy port.
    this.outbound = new OutboundProxy({ host: '127.0.0.1', port: 0, rotator: this.identity.rotator, bundles: this.bundles, getState: () => this.state, metrics: this.metrics, accessLog: this.accessLog, log: o.log });

    const L = this.limits;
    const serverOpts = { maxHeaderSize: L.maxHeaderBytes, headersTimeout: L.headersTimeoutMs, requestTimeout: L.requestTimeoutMs, keepAliveTimeout: Math.min(L.idleTimeoutMs, 5000), connectionsCheckingInterval: 500 };
    // With --dns-names the certificate arrives after registration (below); until then handshakes fail.
    const httpsServer = https.createServer({ ...serverOpts, ...(o.tls ? { cert: o.tls.certPem, key: o.tls.keyPem } : {}), ALPNProtocols: ['http/1.1'] }, (req, res) => this.onRequest(req, res, true));
    // Expect: 100-continue is answered by the pipeline (417 over the size limit), not automatically.
    httpsServer.on('checkContinue', (req, res) => this.onRequest(req, res, true));
    const bind = o.bindHost ?? '127.0.0.1';
    const httpsPort = await this.listen(httpsServer, o.httpsPort, bind);
    let httpPort: number | null = null;
    if (o.httpPort !== undefined && o.httpPort !== null) {
      const plain = http.createServer(serverOpts, (req, res) => this.onRequest(req, res, false));
      plain.on('checkContinue', (req, res) => this.onRequest(req, res, false));
      httpPort = await this.listen(plain, o.httpPort, bind);
    }

    const registration = (): Registration => ({
      service: o.service ?? 'ingress-gateway',
      namespace: this.workload.namespace,
      serviceAccount: o.serviceAccount ?? 'ingress-gateway',
      labels: this.workload.labels,
      address: bind,
      port: httpsPort,
      servicePort: httpsPort,
      lastVersion: this.state?.version,
    });
    this.xds = new XdsClient({ controlPlane: o.controlPlane, controlPlaneId: this.identity.controlPlaneId, rotator: this.identity.rotator, bundles: this.bundles, registration, apply: (s) => this.apply(s), log: o.log });
    const settle = (v: boolean) => {
      this.registered = v;
      if (v) for (const w of [...this.registeredWaiters]) w();
    };
    this.xds.on('connected', () => settle(false));
    this.xds.on('disconnected', () => settle(false));
    this.xds.on('applied', () => settle(true));
    this.xds.on('rejected', () => settle(true));
    this.xds.start();
    if (dnsNames) {
      this.serverCert = new ServerCertClient({ dnsNames, identity: this.identity, bundles: this.bundles, trustDomain: o.trustDomain ?? 'cluster.local', dataDir: o.dataDir, log: o.log, registered: () => this.waitRegistered(10_000) });
      await this.serverCert.start();
      this.serverCert.rotator.attachServer(httpsServer);
    }

    this.admin = http.createServer((req, res) => void this.onAdmin(req, res));
    await new Promise<void>((r) => this.admin.listen(o.adminPort ?? 15000, '127.0.0.1', () => r()));
    this.ports = { https: httpsPort, http: httpPort, admin: (this.admin.address() as AddressInfo).port, spiffeId: svid.spiffeId };
    o.log.info(this.ports, 'gateway ready');
    return this.ports;
  }

  /** Resolves once the control plane has this gateway's registration on the current stream. */
  private waitRegistered(timeoutMs: number): Promise<void> {
    if (this.registered) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        this.registeredWaiters.delete(done);
        resolve();
      };
      const t = setTimeout(() => {
        this.registeredWaiters.delete(done);
        reject(new Error(`not registered at the control plane within ${timeoutMs} ms`));
      }, timeoutMs);
      this.registeredWaiters.add(done);
    });
  }

  private listen(s: http.Server, port: number, host: string): Promise<number> {
    s.setTimeout(this.limits.idleTimeoutMs); // idle (no bytes either way) connections are closed
    s.on('clientError', (err: Error & { code?: string }, socket) => {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      this.refused.inc({ reason: status === 431 ? 'header_too_large' : status === 408 ? 'timeout' : 'malformed' });
      const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
      if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: ${text.length}\r\n\r\n${text}`);
      else socket.destroy();
    });
    this.servers.push(s);
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => resolve((s.address() as AddressInfo).port));
    });
  }

  async stop(): Promise<void> {
    this.xds?.stop();
    this.serverCert?.stop();
    this.identity?.stop();
    for (const r of this.redis.values()) await r.close();
    await Promise.all([
      ...this.servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })),
      this.outbound?.close(),
      new Promise<void>((r) => (this.admin?.listening ? this.admin.close(() => r()) : r())),
    ]);
  }

  apply(slice: WorkloadSlice): string | null {
    return this.applier.apply(slice, (next) => {
      const c = this.compile(next); // a configuration that cannot compile is refused here
      this.state = next;
      return { routes: c.routes.routes.length };
    });
  }

  private compile(s: ProxyState): Compiled {
    let c = this.compiled.get(s);
    if (c) return c;
    const res = s.snapshot.config.resources as readonly Resource[];
    const mine = (r: { spec: { selector?: { matchLabels?: Record<string, string> } } }) => selectorMatches(r.spec.selector?.matchLabels, this.workload.labels);
    const gp = res.filter((r): r is GatewayPolicy => r.kind === 'GatewayPolicy').filter(mine).sort((a, b) => a.seq - b.seq);
    const allow = gp.flatMap((p) => p.spec.ipAccess?.allow ?? []);
    const deny = gp.flatMap((p) => p.spec.ipAccess?.deny ?? []);
    const trusted = gp.find((p) => p.spec.numTrustedProxies !== undefined)?.spec.numTrustedProxies ?? s.snapshot.mesh.numTrustedProxies;
    const sizes = gp.map((p) => p.spec.requestSize?.maxBytes).filter((x): x is number => x !== undefined);
    c = {
      routes: compileRoutes(res, this.workload.labels),
      httpsRedirectHosts: compileHttpsRedirectHosts(res, this.workload.labels),
      ip: compileIpAccess({ allow, deny }),
      trustedProxies: trusted,
      size: { maxBytes: sizes.length ? Math.min(...sizes) : null, requireContentLength: gp.some((p) => p.spec.requestSize?.requireContentLength) },
      rateLimits: res.filter((r): r is RateLimitPolicy => r.kind === 'RateLimitPolicy').filter(mine).sort((a, b) => a.seq - b.seq),
      tokenExchange: gp.flatMap((p) => p.spec.tokenExchange ?? []),
    };
    this.compiled.set(s, c);
    for (const p of c.rateLimits) if (p.spec.policy === 'redis') this.limiterFor(p); // connect before the first request
    return c;
  }

  // ------------------------------------------------------------------ filters

  private readonly ipFilter: Filter = {
    name: 'ip-access',
    onRequest: (x) => {
      const gx = x as GatewayExchange;
      const c = this.compile(x.state);
      const a = clientAddress(x.peer.remoteAddress, x.req.headers['x-forwarded-for'], c.trustedProxies);
      if (!a.ok) return { status: 400, body: 'Bad Request', decision: 'DENY', reason: a.reason };
      gx.clientIp = a.address;
      const v = ipAllowed(c.ip, a.address);
      if (!v.ok) return { status: 403, body: 'Your IP address is not allowed', decision: 'DENY', reason: v.reason, policy: 'ip-access' };
      return undefined;
    },
  };

  private readonly sizeFilter: Filter = {
    name: 'request-size',
    onRequest: (x) => {
      const r = sizeCheck(this.compile(x.state).size, { method: x.req.method ?? 'GET', headers: x.req.headers });
      if (!r) return undefined;
      const body = r.status === 411 ? 'Length Required' : r.status === 417 ? 'Expectation Failed' : 'Request size limit exceeded';
      return { status: r.status, body, decision: 'DENY', reason: r.reason, policy: 'request-size', headers: { connection: 'close' } };
    },
  };

  private readonly routeFilter: Filter = {
    name: 'route',
    onRequest: (x) => {
      const gx = x as GatewayExchange;
      const c = this.compile(x.state);
      if (!gx.secure) {
        // Envoy's require_tls (Istio tls.httpsRedirect): 301 to https, path and query as received.
        const location = httpsRedirectLocation(c.httpsRedirectHosts, String(x.req.headers.host ?? ''), x.req.url ?? '/', this.ports?.https ?? 443);
        if (location) return { status: 301, body: '', decision: 'DENY', reason: 'https redirect (Gateway tls.httpsRedirect)', headers: { location } };
      }
      const [host] = splitHostPort(String(x.req.headers.host ?? ''), 0);
      const m = matchRoute(c.routes, { host: host.toLowerCase(), method: x.req.method ?? 'GET', pathOnly: x.path, query: x.query, headers: x.req.headers });
      if (!m) return { status: 404, body: 'no route', decision: 'DENY', reason: `no route for ${host}${x.path}` };
      gx.route = m;
      return undefined;
    },
  };

  private readonly authzFilter: Filter = {
    name: 'authorization',
    onRequest: (x) => {
      const gx = x as GatewayExchange;
      const h = x.req.headers;
      const input: AuthzInput = {
        workload: this.workload,
        port: this.ports?.https,
        source: { ip: x.peer.remoteAddress, mtls: false },
        remoteIp: gx.clientIp,
        request: { method: x.req.method ?? 'GET', path: x.path + x.query, host: h.host, headers: h as Record<string, string | string[]> },
        destination: { port: this.ports?.https, principal: this.ownId },
        auth: x.auth,
      };
      const d = authorizeFor(x.state.policies, input, { pathIsNormalized: true, custom: x.state.snapshot.custom.sync });
      x.decision = d;
      if (d.decision === 'ALLOW') return undefined;
      return { status: d.status, body: d.status === 403 ? RBAC_DENIED : 'Bad Request', decision: 'DENY', reason: d.reason, policy: d.policy };
    },
  };

  private limiterFor(p: RateLimitPolicy): Limiter {
    if (p.spec.policy !== 'redis') return this.local;
    const r = p.spec.redis!;
    const key = `${r.host}:${r.port ?? 6379}/${r.database ?? 0}/${r.keyPrefix ?? ''}`;
    let l = this.redis.get(key);
    if (!l) {
      const timeout = r.timeout ? parseMs(r.timeout) : 2000;
      const client = new Redis({
        host: r.host,
        port: r.port ?? 6379,
        password: r.password,
        db: r.database ?? 0,
        lazyConnect: false,
        // Queued while (re)connecting, failed on the first failed attempt or the timeout.
        enableOfflineQueue: true,
        maxRetriesPerRequest: 0,
        commandTimeout: timeout,
        connectTimeout: timeout,
        retryStrategy: () => 200,
      });
      client.on('error', (e) => this.o.log.debug({ err: e.message }, 'redis error'));
      l = new RedisLimiter(client, r.keyPrefix ?? 'ztmesh:rl:');
      this.redis.set(key, l);
    }
    return l;
  }

  private readonly rateLimitFilter: Filter = {
    name: 'rate-limit',
    onRequest: (x) => {
      const gx = x as GatewayExchange;
      const c = this.compile(x.state);
      const [host] = splitHostPort(String(x.req.headers.host ?? ''), 0);
      const policies = c.rateLimits.filter((p) => requestMatches(p.spec.match, host.toLowerCase(), x.path));
      if (!policies.length) return undefined;
      const step = (i: number): FilterResult | Promise<FilterResult> => {
        for (; i < policies.length; i++) {
          const p = policies[i];
          const id = identifierFor(p.spec, { clientIp: gx.clientIp, principal: x.auth?.principal, token: gx.token, headers: x.req.headers, path: x.path, service: gx.route?.destination?.host });
          const key = `${p.metadata.namespace}/${p.metadata.name}|${id}`;
          let v: Verdict | Promise<Verdict>;
          try {
            v = this.limiterFor(p).take(key, policyLimits(p.spec), this.now());
          } catch (e) {
            const r = this.storeError(p, e as Error);
            if (r) return r;
            continue;
          }
          if (v instanceof Promise) {
            const next = i + 1;
            return v.then(
              (vv) => this.verdict(gx, p, id, vv) ?? step(next),
              (e: Error) => this.storeError(p, e) ?? step(next),
            );
          }
          const r = this.verdict(gx, p, id, v);
          if (r) return r;
        }
        return undefined;
      };
      return step(0);
    },
  };

  private verdict(gx: GatewayExchange, p: RateLimitPolicy, id: string, v: Verdict): FilterResult {
    const name = `${p.metadata.namespace}/${p.metadata.name}`;
    gx.rlHeaders = { ...(gx.rlHeaders ?? {}), ...rateLimitHeaders(v, p.spec.hideClientHeaders ?? false) };
    if (v.allowed) {
      this.rlDecisions.inc({ result: 'allowed' });
      return undefined;
    }
    this.rlDecisions.inc({ result: 'limited' });
    return { status: p.spec.errorCode ?? 429, body: p.spec.errorMessage ?? 'API rate limit exceeded', decision: 'DENY', reason: `rate limit ${name} for ${id}`, policy: name, headers: gx.rlHeaders };
  }

  /** The counter store failed: fail open (counted) unless the policy says faultTolerant: false. */
  private storeError(p: RateLimitPolicy, e: Error): FilterResult {
    const name = `${p.metadata.namespace}/${p.metadata.name}`;
    this.rlStoreErrors.inc({ policy: name });
    this.o.log.warn({ err: e.message, policy: name }, 'rate-limit store unavailable');
    if (p.spec.faultTolerant ?? true) {
      this.rlDecisions.inc({ result: 'fail_open' });
      return undefined;
    }
    this.rlDecisions.inc({ result: 'fail_closed' });
    return { status: 500, body: 'An unexpected error occurred', decision: 'ERROR', reason: `rate-limit store unavailable: ${e.message}`, policy: name };
  }

  /**
   * Per-route token exchange (GatewayPolicy tokenExchange): the verified end-user token is
   * exchanged at the control plane (RFC 8693, this gateway's SVID as the actor) for one
   * minted for the route's audience, which replaces it on the forwarded request.
   */
  private readonly exchangeFilter: Filter = {
    name: 'token-exchange',
    onRequest: (x) => {
      const gx = x as GatewayExchange;
      if (!gx.token) return undefined;
      const [host] = splitHostPort(String(x.req.headers.host ?? ''), 0);
      const te = this.compile(x.state).tokenExchange.find((t) => requestMatches(t.match, host.toLowerCase(), x.path));
      if (!te) return undefined;
      return this.exchangeToken(gx.token, te.audience).then(
        (tok): FilterResult => {
          const h = (te.header ?? 'authorization').toLowerCase();
          x.req.headers[h] = h === 'authorization' ? `Bearer ${tok}` : tok;
          return undefined;
        },
        (e: Error): FilterResult => ({ status: 503, body: 'token exchange failed', decision: 'ERROR', reason: `token exchange for ${te.audience}: ${e.message}` }),
      );
    },
  };

  private exchangeToken(subject: string, audience: string): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', audience }).toString();
    return new Promise((resolve, reject) => {
      const cpId = this.identity.controlPlaneId;
      const req = https.request(
        {
          host: this.o.controlPlane.host,
          port: this.o.controlPlane.port,
          method: 'POST',
          path: '/token',
          agent: false,
          secureContext: this.identity.rotator.secureContext(),
          ALPNProtocols: ['http/1.1'],
          checkServerIdentity: spiffeServerCheck(this.bundles, (id) => id === cpId, cpId),
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
          timeout: 5000,
        } as https.RequestOptions,
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { access_token?: string; error?: string; error_description?: string };
              if (res.statusCode === 200 && typeof j.access_token === 'string') resolve(j.access_token);
              else reject(new Error(`${res.statusCode} ${j.error ?? ''}: ${j.error_description ?? ''}`));
            } catch (e) {
              reject(e as Error);
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('control plane did not answer')));
      req.on('error', reject);
      req.end(body);
    });
  }

  // ------------------------------------------------------------------ request path

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): void {
    const started = performance.now();
    const peer: PeerInfo = { spiffeId: null, mtls: false, certHash: null, remoteAddress: req.socket.remoteAddress ?? '' };
    const state = this.state;
    const early = (status: number, body: string, reason: string, close = false): void => {
      this.refused.inc({ reason: reason.split(':')[0] });
      this.finish(req, res, started, peer.remoteAddress, '', { status, body, decision: 'DENY', reason, headers: close ? { connection: 'close' } : undefined });
    };
    // A connection whose earlier request was refused for its framing serves nothing more
    // (a pipelined request behind it may be the smuggled one).
    if (this.poisoned.has(req.socket)) {
      req.socket.destroy();
      return;
    }
    const smuggle = smugglingProblem(req.rawHeaders);
    if (smuggle) return early(400, 'Bad Request', `ambiguous framing: ${smuggle}`, true);
    if (req.rawHeaders.length / 2 > this.limits.maxHeaders) return early(431, 'Request Header Fields Too Large', `more than ${this.limits.maxHeaders} header fields`, true);
    if (!state) return early(503, 'no configuration yet', 'the gateway has not received its configuration');
    for (const h of IDENTITY_HEADERS) delete req.headers[h];
    const x: GatewayExchange = { req, res, peer, state, path: '', query: '', startedAt: started, clientIp: peer.remoteAddress, secure };
    const r = runFilters(this.filters, x);
    if (r instanceof Promise) {
      req.pause();
      r.then(
        (v) => this.afterFilters(x, secure, v),
        (e: Error) => this.finish(req, res, started, x.clientIp, x.path, { status: 500, body: 'internal error', decision: 'ERROR', reason: e.message }),
      );
      return;
    }
    this.afterFilters(x, secure, r);
  }

  private afterFilters(x: GatewayExchange, secure: boolean, reply: LocalReply | undefined): void {
    const { req, res } = x;
    if (reply) return this.finish(req, res, x.startedAt, x.clientIp, x.path || (req.url ?? ''), reply);
    const m = x.route!;
    if (m.route.directResponse) {
      return this.finish(req, res, x.startedAt, x.clientIp, x.path, { status: m.route.directResponse.status, body: m.route.directResponse.body ?? '', decision: 'DENY', reason: 'direct response', headers: x.rlHeaders });
    }
    if (!m.destination) return this.finish(req, res, x.startedAt, x.clientIp, x.path, { status: 503, body: 'no destination', decision: 'ERROR', reason: `route ${m.route.name} has no destination` });
    const h = req.headers;
    const xff = h['x-forwarded-for'];
    h['x-forwarded-for'] = (xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ` : '') + x.peer.remoteAddress;
    h['x-envoy-external-address'] = x.clientIp;
    h['x-forwarded-proto'] = secure ? 'https' : 'http';
    if (!h['x-request-id']) h['x-request-id'] = randomUUID();
    if (x.rlHeaders) {
      const rl = x.rlHeaders;
      const orig = res.writeHead.bind(res);
      (res as { writeHead: unknown }).writeHead = (status: number, ...rest: unknown[]) => {
        for (const [k, v] of Object.entries(rl)) if (!res.hasHeader(k)) res.setHeader(k, v);
        return (orig as (...a: unknown[]) => http.ServerResponse)(status, ...rest);
      };
    }
    if (String(h.expect ?? '').toLowerCase() === '100-continue') {
      res.writeContinue();
      delete h.expect;
    }
    const body = this.countingBody(x);
    this.outbound.route(body, res, { host: m.destination.host, port: m.destination.port ?? 80, path: m.path }, x.startedAt);
    res.on('finish', () => this.log(req, x.clientIp, x.path, res.statusCode, x.startedAt, 'ALLOW', x.decision?.policy ?? null, m.route.name));
  }

  /**
   * The request body as a stream that counts bytes as they pass: over the limit, the client
   * gets 413 (if nothing was answered yet) and the upstream request is abandoned, so a
   * chunked body is never buffered to be measured.
   */
  private countingBody(x: GatewayExchange): http.IncomingMessage {
    const { req, res } = x;
    const max = this.compile(x.state).size.maxBytes;
    if (max === null) return req;
    let seen = 0;
    let upstream: { destroy(e?: Error): void } | null = null;
    const t = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        seen += chunk.length;
        if (seen > max) {
          this.refused.inc({ reason: 'body_too_large' });
          if (!res.headersSent) {
            this.poisoned.add(req.socket);
            res.writeHead(413, { 'content-type': 'text/plain', connection: 'close', 'content-length': 27 });
            res.end('Request size limit exceeded');
            res.once('finish', () => {
              upstream?.destroy(new Error('request body over the limit'));
              req.socket.destroySoon();
            });
          } else upstream?.destroy(new Error('request body over the limit'));
          req.unpipe(t);
          req.resume();
          this.log(req, x.clientIp, x.path, 413, x.startedAt, 'DENY', 'request-size', x.route?.route.name ?? null, `body over ${max} bytes`);
          return cb();
        }
        cb(null, chunk);
      },
    });
    const origPipe = t.pipe.bind(t);
    t.pipe = (<T extends NodeJS.WritableStream>(dest: T, opts?: { end?: boolean }) => {
      upstream = dest as unknown as { destroy(e?: Error): void };
      return origPipe(dest, opts);
    }) as typeof t.pipe;
    req.pipe(t);
    return Object.assign(t, { headers: req.headers, method: req.method, url: req.url, rawHeaders: req.rawHeaders, socket: req.socket }) as unknown as http.IncomingMessage;
  }

  private finish(req: http.IncomingMessage, res: http.ServerResponse, started: number, clientIp: string, path: string, r: LocalReply): void {
    if (!res.headersSent) {
      res.writeHead(r.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(r.body), ...r.headers });
      res.end(r.body);
    } else res.destroy();
    if (r.headers?.connection === 'close') {
      this.poisoned.add(req.socket);
      res.once('finish', () => req.socket.destroySoon());
    }
    else req.resume();
    this.log(req, clientIp, path, r.status, started, r.decision, r.policy ?? null, null, r.reason);
  }

  private log(req: http.IncomingMessage, clientIp: string, path: string, status: number, started: number, decision: 'ALLOW' | 'DENY' | 'ERROR', policy: string | null, route: string | null, reason?: string): void {
    const ms = performance.now() - started;
    this.metrics.requests.inc({ direction: 'gateway', source_principal: 'external', destination_principal: this.ownId, response_code: String(status), decision });
    this.metrics.duration.observe({ direction: 'gateway', source_principal: 'external', destination_principal: this.ownId, decision }, ms / 1000);
    this.accessLog.write({
      time: new Date().toISOString(),
      direction: 'gateway',
      source_principal: null,
      destination_principal: this.ownId,
      method: req.method ?? '',
      path,
      status,
      decision,
      policy,
      ...(reason ? { reason } : {}),
      mtls: false,
      duration_ms: Math.round(ms * 1000) / 1000,
      request_id: String(req.headers['x-request-id'] ?? ''),
      client_ip: clientIp,
      ...(route ? { route } : {}),
    } as never);
  }

  status() {
    const svid = this.identity?.rotator.current();
    const c = this.state ? this.compile(this.state) : null;
    return {
      service: this.o.service ?? 'ingress-gateway',
      namespace: this.workload.namespace,
      spiffeId: svid?.spiffeId ?? null,
      controlPlane: { connected: this.xds?.connected ?? false },
      version: this.state?.version ?? null,
      lastNack: this.applier.lastNack,
      ports: this.ports,
      routes: c?.routes.routes.map((r) => ({ name: r.name, hosts: r.hosts, destinations: r.destinations })) ?? [],
      rateLimitPolicies: c?.rateLimits.map((p) => `${p.metadata.namespace}/${p.metadata.name}`) ?? [],
      serverCertificate: this.serverCertStatus(),
    };
  }

  private serverCertStatus() {
    if (!this.o.dnsNames) return { source: 'files' as const };
    const cur = this.serverCert?.current();
    return {
      source: 'mesh-ca' as const,
      dnsNames: this.serverCert?.dnsNames ?? this.o.dnsNames,
      serial: cur ? parseCertificate(cur.chain[0]).serialHex : null,
      notAfter: cur?.notAfter.toISOString() ?? null,
      nextRenewalAt: this.serverCert?.rotator.nextRenewalAt ? new Date(this.serverCert.rotator.nextRenewalAt).toISOString() : null,
    };
  }

  private onAdmin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    return serveAdmin({ registry: this.metrics.registry, state: () => this.state, hasCertificate: () => !!this.identity?.rotator.current() && (!this.o.dnsNames || !!this.serverCert?.current()), status: () => this.status() }, req, res);
  }

}

/** A match with hosts and path prefixes (empty lists match everything). */
export function requestMatches(m: RequestMatch | undefined, host: string, path: string): boolean {
  if (!m) return true;
  if (m.hosts?.length && !m.hosts.some((h) => hostMatches(h, host))) return false;
  if (m.paths?.length && !m.paths.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : p + '/') || (p.endsWith('/') && path.startsWith(p)))) return false;
  return true;
}

function parseMs(d: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(d);
  if (!m) return 2000;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
}
