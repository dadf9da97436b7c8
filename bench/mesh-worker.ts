/**
 * Child processes for bench/mesh.ts (started with `fork`, talking over IPC):
 *   node dist/bench/mesh-worker.js app    — the app: reads the request body, answers 200 with a small JSON body.
 *   node dist/bench/mesh-worker.js load   — an open-loop, constant-rate HTTP/1.1 load generator.
 *   node dist/bench/mesh-worker.js floor-client|floor-server <json> — a bare node:http(s) proxy pair (see runFloorServer).
 *
 * The load generator works like wrk2: request i is *scheduled* at t0 + i/rate whatever
 * happened to earlier requests, and its latency is measured from that scheduled time (so a
 * stall shows up in every request it delays: no coordinated omission). It also records
 * the latency from the moment the bytes were actually written ("service time"). Sends
 * are driven by a 1 ms timer (no busy spinning: the machine is shared with the sidecars),
 * so scheduled-time latencies include up to ~1 ms of timer lateness on both paths alike.
 * Connections are keep-alive, opened lazily up to `maxConns`; a request that finds no idle
 * connection and no room for a new one waits in a FIFO (its wait counts). The client is a
 * minimal HTTP/1.1 implementation over net.Socket (Content-Length and chunked responses),
 * much cheaper per request than node:http, so the generator is not what saturates first.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';

export interface LoadSpec {
  port: number;
  /** Request target (origin-form path, or an absolute URL for an HTTP proxy port). */
  target: string;
  hostHeader: string;
  rate: number;
  warmupMs: number;
  durationMs: number;
  bodyBytes: number;
  maxConns: number;
  /** Give up on requests still outstanding this long after the last send. */
  drainMs: number;
}

export interface LoadResult {
  rate: number;
  sent: number;
  ok: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  errorSamples: string[];
  achievedRps: number;
  connections: number;
  maxQueued: number;
  /** Latency from the scheduled send time, ms. */
  sched: Pct;
  /** Latency from the actual write, ms. */
  service: Pct;
  /** Generator CPU (user+system) seconds during the measured phase. */
  cpuSeconds: number;
}

export interface Pct {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

type Msg = { type: 'run'; spec: LoadSpec } | { type: 'exit' };
export type LoadMsg = { type: 'measuring' } | { type: 'result'; result: LoadResult } | { type: 'error'; message: string };

const mode = process.argv[2];
if (mode === 'app') runApp();
else if (mode === 'load') runLoadWorker();
else if (mode === 'floor-server') runFloorServer(JSON.parse(process.argv[3]) as FloorOpts);
else if (mode === 'floor-client') runFloorClient(JSON.parse(process.argv[3]) as FloorOpts);
else {
  console.error('usage: mesh-worker.js app|load|floor-server|floor-client (started by bench/mesh.ts)');
  process.exit(2);
}

/**
 * The floor: the least a Node sidecar pair built on node:http/https can cost. A plain
 * HTTP listener → https.request (keep-alive agent, mTLS, TLS 1.3, P-256) → an HTTPS
 * server that requires and verifies the client certificate → http.request to the app,
 * piping bodies both ways. No routing, authorization, header hygiene, metrics or ids.
 */
export interface FloorOpts {
  keyPem: string;
  certPem: string;
  /** floor-server: the app port; floor-client: the floor server's port. */
  port: number;
}

function runFloorServer(o: FloorOpts): void {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo' });
  const server = https.createServer({ key: o.keyPem, cert: o.certPem, ca: o.certPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'], keepAliveTimeout: 60_000 }, (req, res) => {
    const up = http.request({ host: '127.0.0.1', port: o.port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.listen(0, '127.0.0.1', () => process.send!({ type: 'listening', port: (server.address() as AddressInfo).port }));
  process.on('message', (m: { type: string }) => m?.type === 'exit' && process.exit(0));
  process.on('disconnect', () => process.exit(0));
}

function runFloorClient(o: FloorOpts): void {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo', key: o.keyPem, cert: o.certPem, ca: o.certPem });
  const server = http.createServer((req, res) => {
    const opts: https.RequestOptions & tls.ConnectionOptions = { host: '127.0.0.1', port: o.port, method: req.method, path: req.url, headers: req.headers, agent, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] };
    const up = https.request(opts, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.listen(0, '127.0.0.1', () => process.send!({ type: 'listening', port: (server.address() as AddressInfo).port }));
  process.on('message', (m: { type: string }) => m?.type === 'exit' && process.exit(0));
  process.on('disconnect', () => process.exit(0));
}

function runApp(): void {
  const reply = Buffer.from('{"ok":true,"app":"bench"}');
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length, 'x-request-bytes': String(n) });
      res.end(reply);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    process.send!({ type: 'listening', port: (server.address() as AddressInfo).port });
  });
  process.on('message', (m: { type: string }) => {
    if (m?.type === 'exit') process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));
}

function runLoadWorker(): void {
  process.on('message', (m: Msg) => {
    if (m.type === 'exit') process.exit(0);
    if (m.type === 'run') {
      runLoad(m.spec, () => process.send!({ type: 'measuring' } satisfies LoadMsg)).then(
        (result) => process.send!({ type: 'result', result } satisfies LoadMsg),
        (e: Error) => process.send!({ type: 'error', message: e.stack ?? e.message } satisfies LoadMsg),
      );
    }
  });
  process.on('disconnect', () => process.exit(0));
}

interface Pending {
  sched: number;
  measured: boolean;
}

class Conn {
  readonly socket: net.Socket;
  busy: Pending | null = null;
  writtenAt = 0;
  private buf: Buffer = Buffer.alloc(0);
  dead = false;

  constructor(
    port: number,
    private readonly onDone: (c: Conn, p: Pending, writtenAt: number, status: number | string) => void,
  ) {
    this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', (e) => this.fail((e as NodeJS.ErrnoException).code ?? e.message));
    this.socket.on('close', () => this.fail('connection closed'));
  }

  send(p: Pending, bytes: Buffer): void {
    this.busy = p;
    this.writtenAt = performance.now();
    this.socket.write(bytes);
  }

  private fail(why: string): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    const p = this.busy;
    this.busy = null;
    if (p) this.onDone(this, p, this.writtenAt, why);
    else this.onDone(this, { sched: -1, measured: false }, 0, 'idle-close');
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const r = parseResponse(this.buf);
      if (r === null) return;
      if (r === 'bad') return this.fail('malformed response');
      this.buf = this.buf.subarray(r.consumed);
      const p = this.busy;
      this.busy = null;
      if (!p) return this.fail('unsolicited response');
      if (r.close) {
        this.dead = true;
        this.socket.destroy();
      }
      this.onDone(this, p, this.writtenAt, r.status);
      if (!this.buf.length) return;
    }
  }
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** One complete response at the start of `b`, or null if more bytes are needed. */
function parseResponse(b: Buffer): { status: number; consumed: number; close: boolean } | null | 'bad' {
  const he = b.indexOf(CRLF2);
  if (he < 0) return b.length > 65536 ? 'bad' : null;
  const head = b.toString('latin1', 0, he);
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return 'bad';
  let len = -1;
  let chunked = false;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i];
    const c = l.indexOf(':');
    const k = l.slice(0, c).trim().toLowerCase();
    const v = l.slice(c + 1).trim().toLowerCase();
    if (k === 'content-length') len = Number(v);
    else if (k === 'transfer-encoding' && v.includes('chunked')) chunked = true;
    else if (k === 'connection' && v === 'close') close = true;
  }
  let pos = he + 4;
  if (chunked) {
    for (;;) {
      const eol = b.indexOf('\r\n', pos, 'latin1');
      if (eol < 0) return null;
      const size = parseInt(b.toString('latin1', pos, eol), 16);
      if (Number.isNaN(size)) return 'bad';
      pos = eol + 2;
      if (size === 0) {
        // no trailers expected: the final CRLF
        if (b.length < pos + 2) return null;
        return { status: Number(m[1]), consumed: pos + 2, close };
      }
      if (b.length < pos + size + 2) return null;
      pos += size + 2;
    }
  }
  if (len < 0) len = 0;
  if (b.length < pos + len) return null;
  return { status: Number(m[1]), consumed: pos + len, close };
}

function pct(xs: Float64Array | number[]): Pct {
  const s = Float64Array.from(xs).sort();
  if (!s.length) return { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  let sum = 0;
  for (const x of s) sum += x;
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: s[s.length - 1], mean: sum / s.length };
}

export async function runLoad(spec: LoadSpec, onMeasuring: () => void): Promise<LoadResult> {
  const body = Buffer.alloc(spec.bodyBytes, 'x');
  const head = `POST ${spec.target} HTTP/1.1\r\nhost: ${spec.hostHeader}\r\ncontent-type: application/octet-stream\r\ncontent-length: ${body.length}\r\n\r\n`;
  const bytes = Buffer.concat([Buffer.from(head, 'latin1'), body]);
  const interval = 1000 / spec.rate;
  const warmN = Math.round((spec.warmupMs / 1000) * spec.rate);
  const totalN = warmN + Math.round((spec.durationMs / 1000) * spec.rate);
  const sched: number[] = [];
  const service: number[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  let ok = 0;
  let errors = 0;
  let outstanding = 0;
  let sent = 0;
  let maxQueued = 0;
  let connections = 0;
  const idle: Conn[] = [];
  const all = new Set<Conn>();
  const queue: Pending[] = [];
  let finish: () => void = () => undefined;
  let measureStartWall = 0;
  let lastMeasuredDone = 0;

  const onDone = (c: Conn, p: Pending, writtenAt: number, status: number | string) => {
    if (c.dead) all.delete(c);
    if (p.sched >= 0) {
      outstanding--;
      const now = performance.now();
      if (p.measured) {
        const key = String(status);
        statuses[key] = (statuses[key] ?? 0) + 1;
        if (typeof status === 'number' && status >= 200 && status < 300) {
          ok++;
          sched.push(now - p.sched);
          service.push(now - writtenAt);
          lastMeasuredDone = now;
        } else {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(key);
        }
      }
    }
    if (!c.dead) {
      const next = queue.shift();
      if (next) c.send(next, bytes);
      else idle.push(c);
    }
    if (sent >= totalN && outstanding === 0) finish();
  };

  const dispatch = (p: Pending) => {
    outstanding++;
    let c = idle.pop();
    while (c && c.dead) c = idle.pop();
    if (c) return c.send(p, bytes);
    if (all.size < spec.maxConns) {
      c = new Conn(spec.port, onDone);
      connections++;
      all.add(c);
      return c.send(p, bytes);
    }
    queue.push(p);
    if (queue.length > maxQueued) maxQueued = queue.length;
  };

  const t0 = performance.now() + 5;
  const measureFrom = t0 + warmN * interval;
  let cpu0: NodeJS.CpuUsage | null = null;
  const done = new Promise<void>((resolve) => (finish = resolve));
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < totalN) {
        const due = t0 + sent * interval;
        if (due > now) break;
        if (sent === warmN) {
          cpu0 = process.cpuUsage();
          measureStartWall = now;
          onMeasuring();
        }
        dispatch({ sched: due, measured: sent >= warmN });
        sent++;
      }
      if (sent >= totalN) return resolve();
      const wait = t0 + sent * interval - performance.now();
      setTimeout(tick, wait > 1 ? Math.floor(wait) : 0);
    };
    setTimeout(tick, 5);
  });
  const sendEnd = performance.now();
  let timeouts = 0;
  const drainTimer = new Promise<void>((r) => setTimeout(r, spec.drainMs).unref());
  if (outstanding > 0) await Promise.race([done, drainTimer]);
  const cpu = process.cpuUsage(cpu0 ?? undefined);
  if (outstanding > 0) timeouts = outstanding;
  for (const c of all) {
    c.dead = true;
    c.socket.destroy();
  }
  const measuredN = totalN - warmN;
  const wall = Math.max(lastMeasuredDone, sendEnd) - (measureStartWall || measureFrom);
  return {
    rate: spec.rate,
    sent: measuredN,
    ok,
    errors,
    timeouts,
    statuses,
    errorSamples,
    achievedRps: ok / (wall / 1000),
    connections,
    maxQueued,
    sched: pct(sched),
    service: pct(service),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}
