/**
 * The outbound side: the app speaks plain HTTP to its sidecar, as to an HTTP proxy
 * (absolute-form URL or Host header; CONNECT for TLS egress) or on a per-upstream
 * localhost port. Mesh services go over mTLS to an endpoint whose certificate carries
 * the identity that service must have (secure naming); hosts outside the mesh need a
 * ServiceEntry unless the mesh allows any egress.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import type { BundleSet, SvidRotator } from '../identity/index.js';
import type { EndpointInfo, ServiceInfo } from '../control/protocol.js';
import type { ServiceEntrySpec } from '../config/types.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import { forwardHeaders, forwardRawHeaders, keepAliveFromRawHeaders, serverNameOf } from './hop.js';
import { forwardBody } from './forward-body.js';
import { egressFor } from './state.js';
import type { ProxyState } from './state.js';
import { PeerIdentityError, spiffeServerCheck } from './tls.js';

export interface OutboundOptions {
  host: string;
  port: number;
  /** Extra listeners: localhost port → service host name (e.g. 15101 → payment-service). */
  upstreams?: Record<number, string>;
  rotator: SvidRotator;
  bundles: BundleSet;
  getState: () => ProxyState | null;
  metrics: ProxyMetrics;
  accessLog: AccessLog;
  log: Logger;
  connectTimeoutMs?: number;
}

interface Target {
  host: string;
  port: number;
  path: string;
}

const DROP_OUTBOUND = new Set(['x-forwarded-client-cert', 'proxy-authorization']);
const ALPN = ['http/1.1'];

/** What a request to one mesh service needs, built once per service per applied configuration. */
interface MeshService {
  name: string;
  /** Secure naming: the server must present an SVID with one of the service's identities. */
  checkServerIdentity: ReturnType<typeof spiffeServerCheck>;
  ids: string;
}

/** An endpoint's pool and the key of its in-flight count, resolved once per endpoint object. */
interface MeshEndpoint {
  key: string;
  ids: string;
  agent: https.Agent;
}

export class OutboundProxy {
  private readonly servers: net.Server[] = [];
  private readonly agents = new Map<string, https.Agent>();
  private readonly plainAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private readonly active = new Map<string, number>();
  private readonly rr = new Map<string, number>();
  private readonly meshServices = new WeakMap<ServiceInfo, MeshService>();
  private readonly meshEndpoints = new WeakMap<EndpointInfo, MeshEndpoint>();
  private ownId = '';

  constructor(private readonly o: OutboundOptions) {}

  async listen(): Promise<{ port: number; upstreams: Record<string, number> }> {
    const main = http.createServer((req, res) => this.onRequest(req, res, null));
    main.on('connect', (req, socket, head) => this.onConnect(req, socket as net.Socket, head));
    main.on('clientError', (_e, s) => s.destroy());
    const port = await listenOn(main, this.o.port, this.o.host);
    this.servers.push(main);
    const ups: Record<string, number> = {};
    for (const [p, hostName] of Object.entries(this.o.upstreams ?? {})) {
      const [h, hp] = splitHostPort(hostName, 80);
      const fixed = { host: h, port: hp };
      const s = http.createServer((req, res) => this.onRequest(req, res, fixed));
      s.on('clientError', (_e, sock) => sock.destroy());
      ups[hostName] = await listenOn(s, Number(p), this.o.host);
      this.servers.push(s);
    }
    return { port, upstreams: ups };
  }

  async close(): Promise<void> {
    for (const a of this.agents.values()) a.destroy();
    this.plainAgent.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => { (s as http.Server).closeAllConnections?.(); s.close(() => r()); })));
  }

  private target(req: http.IncomingMessage, fixedHost: { host: string; port: number } | null): Target | string {
    const url = req.url ?? '/';
    if (fixedHost) return { host: fixedHost.host, port: fixedHost.port, path: url };
    if (/^https?:\/\//i.test(url)) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return `malformed absolute URL ${url}`;
      }
      if (u.protocol === 'https:') return 'https:// URLs must use CONNECT (the sidecar does not terminate your TLS)';
      return { host: u.hostname.toLowerCase(), port: u.port ? Number(u.port) : 80, path: u.pathname + u.search };
    }
    const hostHeader = req.headers.host;
    if (!hostHeader) return 'no Host header';
    const [h, p] = splitHostPort(hostHeader, 80);
    return { host: h.toLowerCase(), port: p, path: url };
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse, fixedHost: { host: string; port: number } | null): void {
    const started = performance.now();
    const t = this.target(req, fixedHost);
    if (typeof t === 'string') return this.reply(req, res, started, 400, t, null, 'ERROR');
    this.routeFrom(req, res, t, started, true);
  }

  /**
   * Send a request to `host:port` + `path` as this workload: a mesh service over mTLS with
   * secure naming, or an egress host a ServiceEntry admits. The gateway routes through this.
   */
  route(req: http.IncomingMessage, res: http.ServerResponse, t: { host: string; port: number; path: string }, started = performance.now()): void {
    this.routeFrom(req, res, t, started, false);
  }

  /**
   * fromRaw: the request came from the app through this sidecar's own listener, untouched, so
   * its headers are forwarded from rawHeaders; a caller of route() (the gateway) may have
   * rewritten `req.headers` (claims, X-Forwarded-For, stripped identity headers), which are then
   * what is forwarded.
   */
  private routeFrom(req: http.IncomingMessage, res: http.ServerResponse, t: { host: string; port: number; path: string }, started: number, fromRaw: boolean): void {
    this.ownId ||= this.o.rotator.current()?.spiffeId ?? '';
    const state = this.o.getState();
    if (!state) return this.reply(req, res, started, 503, 'no configuration yet', null, 'ERROR');
    const svc = state.services.get(t.host);
    if (svc) {
      if (t.port !== svc.servicePort && t.port !== 80) return this.reply(req, res, started, 502, `service ${svc.name}.${svc.namespace} has no port ${t.port} (it serves ${svc.servicePort})`, null, 'ERROR');
      return this.toMesh(req, res, started, svc, t, fromRaw);
    }
    const eg = egressFor(state.egress, t.host, t.port);
    if (eg) return this.toPlain(req, res, started, t, egressDestination(eg.spec, t.host, t.port), `ServiceEntry ${eg.entry.namespace}/${eg.entry.name}`);
    if (state.snapshot.mesh.outboundTrafficPolicy === 'ALLOW_ANY') return this.toPlain(req, res, started, t, { host: t.host, port: t.port }, 'ALLOW_ANY');
    this.o.metrics.egressDenied.inc({ host: t.host });
    return this.reply(req, res, started, 502, `egress to ${t.host}:${t.port} is not allowed: it is not a mesh service and no ServiceEntry admits it (outboundTrafficPolicy REGISTRY_ONLY)`, null, 'DENY');
  }

  private pick(svc: ServiceInfo): EndpointInfo | undefined {
    const eps = svc.endpoints;
    if (eps.length <= 1) return eps[0];
    const key = `${svc.namespace}/${svc.name}`;
    if (svc.loadBalancer === 'ROUND_ROBIN') {
      const i = (this.rr.get(key) ?? 0) % eps.length;
      this.rr.set(key, i + 1);
      return eps[i];
    }
    // LEAST_REQUEST: the better of two random choices (as Envoy does).
    const a = eps[Math.floor(Math.random() * eps.length)];
    const b = eps[Math.floor(Math.random() * eps.length)];
    return (this.active.get(epKey(a)) ?? 0) <= (this.active.get(epKey(b)) ?? 0) ? a : b;
  }

  private meshService(svc: ServiceInfo): MeshService {
    let m = this.meshServices.get(svc);
    if (!m) {
      const name = `${svc.name}.${svc.namespace}`;
      const allowed = new Set(svc.spiffeIds);
      m = { name, ids: svc.spiffeIds.join(','), checkServerIdentity: spiffeServerCheck(this.o.bundles, (id) => allowed.has(id), `an identity of ${name} (${svc.spiffeIds.join(', ')})`) };
      this.meshServices.set(svc, m);
    }
    return m;
  }

  private meshEndpoint(ep: EndpointInfo, ids: string): MeshEndpoint {
    let e = this.meshEndpoints.get(ep);
    // An endpoint object belongs to one service of one slice, so its identity set is fixed;
    // the check keeps a stale entry from ever pairing a pool with other identities.
    if (!e || e.ids !== ids) {
      const key = epKey(ep);
      e = { key, ids, agent: this.agentFor(key, ids) };
      this.meshEndpoints.set(ep, e);
    }
    return e;
  }

  private agentFor(endpoint: string, ids: string): https.Agent {
    const key = `${endpoint}|${ids}`;
    let a = this.agents.get(key);
    if (!a) {
      // One agent per endpoint and identity set: connections are pooled, and TLS sessions
      // are resumed only with the endpoint whose certificate was checked for exactly these
      // identities on the full handshake that created the session (Node skips
      // checkServerIdentity on a resumed session; the session key proves it is the same
      // peer). The server side re-verifies our certificate on every resumption.
      a = keepAliveFromRawHeaders(new https.Agent({ keepAlive: true, maxSockets: 256, maxCachedSessions: 64, scheduling: 'lifo' }));
      const counter = this.o.metrics.upstreamHandshakes;
      const create = a.createConnection.bind(a);
      (a as unknown as { createConnection: typeof create }).createConnection = ((opts: tls.ConnectionOptions, cb?: () => void) => {
        const sock = create(opts, cb) as tls.TLSSocket;
        sock.once('secureConnect', () => counter.inc({ resumed: String(sock.isSessionReused()) }));
        return sock;
      }) as unknown as typeof create;
      this.agents.set(key, a);
    }
    return a;
  }

  private toMesh(req: http.IncomingMessage, res: http.ServerResponse, started: number, svc: ServiceInfo, t: Target, fromRaw: boolean): void {
    const ep = this.pick(svc);
    const ms = this.meshService(svc);
    const name = ms.name;
    if (!ep) return this.reply(req, res, started, 503, `no healthy endpoints for ${name}`, null, 'ERROR');
    let ctx: tls.SecureContext;
    try {
      ctx = this.o.rotator.secureContext();
    } catch {
      return this.reply(req, res, started, 503, 'the sidecar has no certificate yet', null, 'ERROR');
    }
    const me = this.meshEndpoint(ep, ms.ids);
    // The headers go as a flat [name, value, …] list built from rawHeaders: the app's request
    // never has its `headers` object built here, and node:http writes the list as it is
    // (validating each line) instead of setHeader per header into an object first.
    const headers = fromRaw ? outboundHeaderList(req.rawHeaders, t.host) : undefined;
    let objectHeaders: http.OutgoingHttpHeaders | undefined;
    if (!headers) {
      objectHeaders = forwardHeaders(req.headers, DROP_OUTBOUND);
      objectHeaders.host = req.headers.host ?? t.host;
      if (!objectHeaders['x-request-id']) objectHeaders['x-request-id'] = randomUUID();
    }
    const k = me.key;
    this.active.set(k, (this.active.get(k) ?? 0) + 1);
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      this.active.set(k, (this.active.get(k) ?? 1) - 1);
    };
    const opts: https.RequestOptions & tls.ConnectionOptions = {
      host: ep.address,
      port: ep.port,
      method: req.method,
      path: t.path,
      headers: headers ? headers.list : objectHeaders,
      // What node:http would derive from a Host header given in an object (it does not read a list's).
      ...(headers ? { servername: headers.servername } : {}),
      agent: me.agent,
      secureContext: ctx,
      ALPNProtocols: ALPN,
      checkServerIdentity: ms.checkServerIdentity,
      timeout: this.o.connectTimeoutMs ?? 10_000,
    };
    const up = https.request(opts, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.statusMessage, forwardRawHeaders(ur.rawHeaders));
      ur.pipe(res);
      ur.on('error', () => res.destroy());
      res.on('close', release);
      res.on('finish', () => this.log(req, started, ur.statusCode ?? 0, ep.spiffeId, `${ep.address}:${ep.port}`, 'ALLOW', t.path));
    });
    up.on('timeout', () => up.destroy(new Error('upstream timeout')));
    up.on('error', (e) => {
      release();
      if (e instanceof PeerIdentityError || (e as { code?: string }).code === 'ERR_ZTMESH_PEER_IDENTITY') {
        this.o.metrics.mtlsFailures.inc({ direction: 'outbound', reason: (e as PeerIdentityError).reason ?? 'wrong_identity' });
        this.o.log.warn({ service: name, endpoint: k, err: e.message }, 'refused to send a request: the peer is not who the service must be');
        if (!res.headersSent) return this.reply(req, res, started, 502, `upstream identity check failed: ${e.message}`, null, 'DENY');
      } else if (!res.headersSent) {
        this.o.metrics.mtlsFailures.inc({ direction: 'outbound', reason: 'connect_error' });
        return this.reply(req, res, started, 503, `upstream connect error: ${e.message}`, null, 'ERROR');
      }
      res.destroy();
    });
    forwardBody(req, up, fromRaw);
  }

  private toPlain(req: http.IncomingMessage, res: http.ServerResponse, started: number, t: Target, dest: { host: string; port: number }, via: string): void {
    const headers = forwardHeaders(req.headers, DROP_OUTBOUND);
    headers.host = req.headers.host ?? `${t.host}:${t.port}`;
    const up = http.request({ host: dest.host, port: dest.port, method: req.method, path: t.path, headers, agent: this.plainAgent, timeout: this.o.connectTimeoutMs ?? 10_000 }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.statusMessage, forwardRawHeaders(ur.rawHeaders));
      ur.pipe(res);
      res.on('finish', () => this.log(req, started, ur.statusCode ?? 0, null, `${dest.host}:${dest.port} (${via})`, 'EGRESS', t.path));
    });
    up.on('timeout', () => up.destroy(new Error('upstream timeout')));
    up.on('error', (e) => {
      if (!res.headersSent) this.reply(req, res, started, 503, `upstream connect error: ${e.message}`, null, 'ERROR');
      else res.destroy();
    });
    req.pipe(up);
  }

  /** CONNECT host:port — a TLS tunnel for egress to a ServiceEntry host (never into the mesh). */
  private onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const started = performance.now();
    const state = this.o.getState();
    const [host, port] = splitHostPort(req.url ?? '', 443);
    const refuse = (status: number, msg: string) => {
      socket.end(`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Bad Gateway'}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(msg)}\r\nconnection: close\r\n\r\n${msg}`);
      this.log(req, started, status, null, `${host}:${port}`, status === 403 ? 'DENY' : 'ERROR', req.url ?? '');
    };
    if (!state) return refuse(502, 'no configuration yet');
    const eg = egressFor(state.egress, host.toLowerCase(), port);
    if (!eg && state.snapshot.mesh.outboundTrafficPolicy !== 'ALLOW_ANY') {
      this.o.metrics.egressDenied.inc({ host });
      return refuse(403, `egress to ${host}:${port} is not allowed: no ServiceEntry admits it`);
    }
    const dest = eg ? egressDestination(eg.spec, host, port) : { host, port };
    const up = net.connect(dest);
    up.on('connect', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
      this.log(req, started, 200, null, `${host}:${port}`, 'EGRESS', req.url ?? '');
    });
    up.on('error', () => refuse(502, `cannot reach ${host}:${port}`));
    socket.on('error', () => up.destroy());
  }

  private reply(req: http.IncomingMessage, res: http.ServerResponse, started: number, status: number, body: string, dst: string | null, decision: 'DENY' | 'ERROR'): void {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) + 1 });
    res.end(body + '\n');
    req.resume();
    this.log(req, started, status, dst, null, decision, req.url ?? '', body);
  }

  private log(req: http.IncomingMessage, started: number, status: number, dst: string | null, upstream: string | null, decision: 'ALLOW' | 'DENY' | 'ERROR' | 'EGRESS', path: string, reason?: string): void {
    const ms = performance.now() - started;
    const d = decision === 'EGRESS' ? 'ALLOW' : decision;
    this.o.metrics.request('outbound', this.ownId, dst ?? 'external', status, d, ms / 1000);
    if (this.o.accessLog.enabled) this.o.accessLog.write({
      time: new Date().toISOString(),
      direction: 'outbound',
      source_principal: this.ownId,
      destination_principal: dst,
      method: req.method ?? '',
      path,
      status,
      decision,
      policy: null,
      ...(reason ? { reason } : {}),
      mtls: dst !== null,
      duration_ms: Math.round(ms * 1000) / 1000,
      ...(upstream ? { upstream } : {}),
    });
  }
}

/**
 * Where a ServiceEntry sends `host:port`: for STATIC resolution one of its endpoints, on the
 * endpoint's port for the matching port name (Istio: endpoint `ports` map port names to
 * endpoint ports), else the port's targetPort, else the port asked for; otherwise the host itself.
 * HTTP egress and CONNECT tunnels both go through here so they agree.
 */
export function egressDestination(spec: ServiceEntrySpec, host: string, port: number): { host: string; port: number } {
  const eps = spec.resolution === 'STATIC' ? (spec.endpoints ?? []).filter((e) => e.address) : [];
  if (!eps.length) return { host, port };
  const ep = eps[Math.floor(Math.random() * eps.length)];
  const sp = spec.ports?.find((p) => p.number === port);
  return { host: ep.address!, port: (sp?.name && ep.ports?.[sp.name]) || sp?.targetPort || port };
}

const SERVER_NAMES = new Map<string, string>();

/**
 * The request headers for a mesh upstream, from the app's rawHeaders: forwardRawHeaders'
 * hygiene (hop-by-hop, Connection-named, x-forwarded-client-cert and proxy-authorization
 * dropped; one Host), the Host kept or set to the service host, and an x-request-id unless
 * the app sent a non-empty one (empty ones are dropped for the new id).
 */
function outboundHeaderList(raw: readonly string[], serviceHost: string): { list: string[]; servername: string } {
  const list = forwardRawHeaders(raw, DROP_OUTBOUND);
  let host: string | undefined;
  let requestId = false;
  let emptyId = false;
  for (let i = 0; i < list.length; i += 2) {
    const k = list[i];
    if (k === 'host') host = list[i + 1];
    else if (k === 'x-request-id') {
      if (list[i + 1]) requestId = true;
      else emptyId = true;
    }
  }
  if (host === undefined) list.push('host', (host = serviceHost));
  if (!requestId) {
    if (emptyId) {
      for (let i = list.length - 2; i >= 0; i -= 2) if (list[i] === 'x-request-id') list.splice(i, 2);
    }
    list.push('x-request-id', randomUUID());
  }
  let servername = SERVER_NAMES.get(host);
  if (servername === undefined) {
    servername = serverNameOf(host);
    if (SERVER_NAMES.size < 1024) SERVER_NAMES.set(host, servername);
  }
  return { list, servername };
}

function epKey(ep: EndpointInfo): string {
  return `${ep.address}:${ep.port}`;
}

export function splitHostPort(s: string, defPort: number): [string, number] {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    const host = s.slice(1, end);
    const rest = s.slice(end + 1);
    return [host, rest.startsWith(':') ? Number(rest.slice(1)) || defPort : defPort];
  }
  const i = s.lastIndexOf(':');
  if (i > 0 && /^[0-9]+$/.test(s.slice(i + 1))) return [s.slice(0, i), Number(s.slice(i + 1))];
  return [s, defPort];
}

function listenOn(s: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => resolve((s.address() as net.AddressInfo).port));
  });
}
