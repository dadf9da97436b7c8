/**
 * The inbound listener: the effective PeerAuthentication mode decides per connection
 * (STRICT: mTLS only; PERMISSIVE: mTLS or plaintext on the same port, told apart by the
 * first byte; DISABLE: plaintext). Every request runs the inbound filters and, when
 * allowed, goes to the app on loopback with the caller's verified identity in
 * x-forwarded-client-cert (any client-supplied copy is removed first).
 */
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { Duplex } from 'node:stream';
import { peerIdentity, IntermediateCache } from '../identity/index.js';
import type { BundleSet, SvidRotator } from '../identity/index.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import { runFilters } from './filters.js';
import type { Exchange, Filter, LocalReply, PeerInfo } from './filters.js';
import { forwardHeaders, forwardRawHeaders, keepAliveFromRawHeaders } from './hop.js';
import type { ProxyState } from './state.js';

export interface InboundOptions {
  host: string;
  port: number;
  servicePort: number;
  app: { host: string; port: number };
  workload: { namespace: string; labels: Record<string, string> };
  rotator: SvidRotator;
  bundles: BundleSet;
  getState: () => ProxyState | null;
  getFilters: () => readonly Filter[];
  metrics: ProxyMetrics;
  accessLog: AccessLog;
  log: Logger;
}

const DROP_INBOUND = new Set(['x-forwarded-client-cert']);
const TLS_HANDSHAKE = 0x16;

export class InboundListener {
  private readonly server: net.Server;
  private readonly tlsServer: tls.Server;
  private readonly http: http.Server;
  private readonly peers = new WeakMap<object, PeerInfo>();
  private readonly agent: http.Agent;
  private readonly intermediates = new IntermediateCache();
  private detach?: () => void;
  private ownId = '';
  private modeState: ProxyState | null = null;
  private modeCached: 'STRICT' | 'PERMISSIVE' | 'DISABLE' = 'STRICT';

  constructor(private readonly o: InboundOptions) {
    this.agent = keepAliveFromRawHeaders(new http.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo' }));
    this.http = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 60_000 }, (req, res) => this.onRequest(req, res));
    this.http.on('clientError', (err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 11\r\n\r\nBad Request');
      else socket.destroy();
      this.o.log.debug({ err: err.message }, 'malformed inbound request');
    });
    // TLS is terminated by a tls.Server fed the accepted sockets: the native fast path
    // for STRICT, and a small stream wrapper for PERMISSIVE (where the first byte was read).
    this.tlsServer = tls.createServer({ requestCert: true, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    this.tlsServer.on('secureConnection', (t) => this.onSecure(t));
    this.tlsServer.on('tlsClientError', (e: Error & { code?: string }, t) => {
      const plaintext = /wrong version number|http request|unknown protocol|packet length too long/i.test(e.message);
      this.o.metrics.mtlsFailures.inc({ direction: 'inbound', reason: plaintext ? 'plaintext_refused' : 'handshake_error' });
      this.o.log.debug({ err: e.message }, 'inbound TLS handshake failed');
      t.destroy();
    });
    // TCP_NODELAY as node:http servers set it: a net.Server does not, and these sockets carry
    // request/response traffic whose small TLS records must not wait for an ACK.
    this.server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
  }

  listen(): Promise<number> {
    this.detach = this.o.rotator.attachServer(this.tlsServer);
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => resolve((this.server.address() as net.AddressInfo).port));
    });
  }

  close(): Promise<void> {
    this.detach?.();
    this.http.closeAllConnections();
    this.agent.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  private mode(): 'STRICT' | 'PERMISSIVE' | 'DISABLE' {
    const s = this.o.getState();
    // Before any configuration arrives, fail closed: mTLS only.
    if (!s) return 'STRICT';
    // Once per applied configuration, not per connection.
    if (s !== this.modeState) {
      this.modeState = s;
      this.modeCached = s.snapshot.peerAuthn.effective(this.o.workload, this.o.servicePort).mode;
    }
    return this.modeCached;
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    const mode = this.mode();
    if (mode === 'STRICT') {
      this.tlsServer.emit('connection', socket);
      return;
    }
    socket.once('data', (first: Buffer) => {
      socket.pause();
      const isTls = first[0] === TLS_HANDSHAKE;
      if (!isTls) {
        socket.unshift(first);
        this.peers.set(socket, { spiffeId: null, mtls: false, certHash: null, remoteAddress: socket.remoteAddress ?? '' });
        this.http.emit('connection', socket);
        socket.resume();
        return;
      }
      if (mode === 'DISABLE') {
        this.o.metrics.mtlsFailures.inc({ direction: 'inbound', reason: 'tls_on_disabled_port' });
        socket.destroy();
        return;
      }
      this.tlsServer.emit('connection', replayStream(socket, first));
    });
  }

  private onSecure(t: tls.TLSSocket): void {
    const v = peerIdentity(t, this.o.bundles, Date.now(), { intermediateCache: this.intermediates });
    const remote = remoteOf(t);
    if (!v.ok) {
      this.o.metrics.mtlsFailures.inc({ direction: 'inbound', reason: v.reason });
      this.o.log.info({ reason: v.reason, remote }, 'refused an inbound connection: no valid SVID');
      t.destroy();
      return;
    }
    const leaf = t.getPeerCertificate(false)?.raw;
    this.peers.set(t, { spiffeId: v.spiffeId, mtls: true, certHash: leaf ? createHash('sha256').update(leaf).digest('hex') : null, remoteAddress: remote });
    this.http.emit('connection', t);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = performance.now();
    const peer = this.peers.get(req.socket) ?? { spiffeId: null, mtls: false, certHash: null, remoteAddress: remoteOf(req.socket) };
    if (!peer.mtls && this.mode() === 'STRICT') {
      // A plaintext keep-alive connection accepted while the port was PERMISSIVE or DISABLE:
      // the mode is chosen per connection, so without this it would go on being served
      // in plaintext after STRICT applied. Refuse it as a new plaintext connection is.
      this.o.metrics.mtlsFailures.inc({ direction: 'inbound', reason: 'plaintext_refused' });
      this.o.log.info({ remote: peer.remoteAddress }, 'closed a plaintext connection opened before STRICT applied');
      req.socket.destroy();
      return;
    }
    const state = this.o.getState();
    this.ownId ||= this.o.rotator.current()?.spiffeId ?? '';
    if (!state) {
      this.finish(req, res, peer, started, { status: 503, body: 'no configuration yet', decision: 'ERROR', reason: 'the sidecar has not received its configuration' }, '');
      return;
    }
    const x: Exchange = { req, res, peer, state, path: '', query: '', startedAt: started };
    const reply = runFilters(this.o.getFilters(), x);
    if (reply instanceof Promise) {
      req.pause();
      reply.then(
        (r) => this.afterFilters(req, res, peer, started, x, r),
        (e: Error) => this.finish(req, res, peer, started, { status: 500, body: 'internal error', decision: 'ERROR', reason: e.message }, x.path),
      );
      return;
    }
    this.afterFilters(req, res, peer, started, x, reply);
  }

  private afterFilters(req: http.IncomingMessage, res: http.ServerResponse, peer: PeerInfo, started: number, x: Exchange, reply: LocalReply | undefined): void {
    if (reply) {
      this.finish(req, res, peer, started, reply, x.path || (req.url ?? ''));
      return;
    }
    const headers = forwardHeaders(req.headers, DROP_INBOUND);
    if (peer.spiffeId) {
      headers['x-forwarded-client-cert'] = `By=${this.ownId};Hash=${peer.certHash ?? ''};URI=${peer.spiffeId}`;
    }
    headers['x-forwarded-proto'] = peer.mtls ? 'https' : 'http';
    if (!headers['x-request-id']) headers['x-request-id'] = randomUUID();
    const upstream = http.request(
      { host: this.o.app.host, port: this.o.app.port, method: req.method, path: x.path + x.query, headers, agent: this.agent },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, forwardRawHeaders(ur.rawHeaders));
        ur.pipe(res);
        ur.on('error', () => res.destroy());
        res.on('finish', () => this.log(req, peer, x, ur.statusCode ?? 0, started, 'ALLOW', null));
      },
    );
    upstream.on('error', (e) => {
      if (!res.headersSent) {
        this.finish(req, res, peer, started, { status: 503, body: 'upstream connect error', decision: 'ERROR', reason: `app unreachable: ${e.message}` }, x.path);
      } else res.destroy();
    });
    req.pipe(upstream);
  }

  private finish(req: http.IncomingMessage, res: http.ServerResponse, peer: PeerInfo, started: number, r: LocalReply, path: string): void {
    res.writeHead(r.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(r.body), ...r.headers });
    res.end(r.body);
    req.resume();
    this.log(req, peer, { path, decision: undefined } as unknown as Exchange, r.status, started, r.decision, r.policy ?? null, r.reason);
  }

  private log(req: http.IncomingMessage, peer: PeerInfo, x: Pick<Exchange, 'path' | 'decision'>, status: number, started: number, decision: 'ALLOW' | 'DENY' | 'ERROR', policy: string | null, reason?: string): void {
    const ms = performance.now() - started;
    const src = peer.spiffeId ?? 'unknown';
    this.o.metrics.request('inbound', src, this.ownId, status, decision, ms / 1000);
    if (this.o.accessLog.enabled) this.o.accessLog.write({
      time: new Date().toISOString(),
      direction: 'inbound',
      source_principal: peer.spiffeId,
      destination_principal: this.ownId,
      method: req.method ?? '',
      path: x.path,
      status,
      decision,
      policy: policy ?? x.decision?.policy ?? null,
      ...(reason ? { reason } : {}),
      mtls: peer.mtls,
      duration_ms: Math.round(ms * 1000) / 1000,
      request_id: String(req.headers['x-request-id'] ?? ''),
    });
  }
}

/** The peer address, through the replay wrapper when there is one. */
function remoteOf(s: net.Socket | tls.TLSSocket): string {
  const inner = (s as { _parent?: { remoteAddress?: string } })._parent;
  return s.remoteAddress ?? inner?.remoteAddress ?? '';
}

/**
 * A duplex over `socket` that first replays `first` (the byte we read to tell TLS from
 * plaintext): TLSSocket reads a net.Socket's handle directly and would miss it.
 */
function replayStream(socket: net.Socket, first: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, enc, cb) {
      socket.write(chunk, enc, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(first);
  socket.on('data', (c) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  Object.defineProperty(d, 'remoteAddress', { value: socket.remoteAddress });
  return d;
}
