/**
 * The sidecar's end of the snapshot stream: register, receive versioned slices, apply
 * or refuse each (ACK/NACK), heartbeat, and reconnect with backoff when the control
 * plane is away (the sidecar keeps serving its last applied slice meanwhile).
 */
import tls from 'node:tls';
import { EventEmitter } from 'node:events';
import type { BundleSet, SvidRotator } from '../identity/index.js';
import { XDS_ALPN, onMessages, send } from '../control/protocol.js';
import type { Registration, ToSidecar, WorkloadSlice } from '../control/protocol.js';
import type { Logger } from '../telemetry/log.js';
import { spiffeServerCheck } from './tls.js';
import { loadRegoEngine, needsRegoEngine } from '../policy/custom.js';

export interface XdsClientOptions {
  controlPlane: { host: string; port: number };
  controlPlaneId: string;
  rotator: SvidRotator;
  bundles: BundleSet;
  registration: () => Registration;
  /** Apply a slice; return an error message to NACK it. */
  apply: (slice: WorkloadSlice) => string | null;
  log: Logger;
  heartbeatMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export interface XdsEvents {
  connected: [];
  disconnected: [string];
  applied: [string];
  rejected: [string, string];
}

export class XdsClient extends EventEmitter<XdsEvents> {
  private socket?: tls.TLSSocket;
  private stopped = false;
  private attempt = 0;
  private retry?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private queue: Promise<void> = Promise.resolve();
  connected = false;

  constructor(private readonly o: XdsClientOptions) {
    super();
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.heartbeat);
    this.socket?.destroy();
  }

  private connect(): void {
    if (this.stopped) return;
    const socket = tls.connect({
      host: this.o.controlPlane.host,
      port: this.o.controlPlane.port,
      secureContext: this.o.rotator.secureContext(),
      ALPNProtocols: [XDS_ALPN],
      checkServerIdentity: spiffeServerCheck(this.o.bundles, (id) => id === this.o.controlPlaneId, this.o.controlPlaneId),
    });
    this.socket = socket;
    let why = 'connection closed';
    socket.on('secureConnect', () => {
      if (socket.alpnProtocol !== XDS_ALPN) {
        why = 'the server does not speak the ztmesh stream protocol';
        socket.destroy();
        return;
      }
      this.attempt = 0;
      this.connected = true;
      this.emit('connected');
      this.o.log.info({ controlPlane: `${this.o.controlPlane.host}:${this.o.controlPlane.port}` }, 'connected to the control plane');
      send(socket, { type: 'hello', registration: this.o.registration() });
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => send(socket, { type: 'heartbeat' }), this.o.heartbeatMs ?? 5000);
      this.heartbeat.unref();
    });
    onMessages<ToSidecar>(
      socket,
      (msg) => {
        if (msg.type === 'slice') {
          // In arrival order, even when one must first load the Rego engine.
          this.queue = this.queue.then(async () => {
            if (msg.slice?.mesh && needsRegoEngine(msg.slice.mesh)) await loadRegoEngine();
            const err = this.o.apply(msg.slice);
            if (err) {
              send(socket, { type: 'nack', version: msg.slice?.version ?? '?', error: err });
              this.emit('rejected', msg.slice?.version ?? '?', err);
            } else {
              send(socket, { type: 'ack', version: msg.slice.version });
              this.emit('applied', msg.slice.version);
            }
          });
        } else if (msg.type === 'error') {
          why = `control plane refused the stream: ${msg.message}`;
          this.o.log.error({ error: msg.message }, 'control plane refused the stream');
        }
      },
      (e) => (why = e.message),
    );
    socket.on('error', (e) => (why = e.message));
    socket.on('close', () => {
      clearInterval(this.heartbeat);
      const was = this.connected;
      this.connected = false;
      if (was) this.emit('disconnected', why);
      if (this.stopped) return;
      const base = Math.min(this.o.backoffMaxMs ?? 5000, (this.o.backoffInitialMs ?? 200) * 2 ** this.attempt);
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      this.attempt++;
      this.o.log.warn({ reason: why, retryInMs: delay }, 'control plane stream down; serving the last applied configuration');
      this.retry = setTimeout(() => this.connect(), delay);
      this.retry.unref();
    });
  }
}
