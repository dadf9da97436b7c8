/**
 * Shared pieces of the mesh integration tests: temp dirs and config files the tests
 * edit while the mesh runs, tiny recording apps on loopback, HTTP through a sidecar's
 * outbound proxy, /metrics and /status readers, certificates from the mesh's CA (or a
 * foreign one), and a teardown that leaves no process behind.
 *
 * Every test file starts its own `LocalMesh` (real `ztmesh control` / `ztmesh proxy`
 * child processes on 127.0.0.1) in a fresh temp dir.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync, copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { LocalMesh, ZTMESH_BIN } from '../../src/control/launcher.js';
import type { SidecarHandle, SidecarSpec } from '../../src/control/launcher.js';
import { CertificateAuthority, buildCsr, createIntermediateCa, createRootCa, loadCa, toPem } from '../../src/identity/index.js';
import { repoRoot } from '../helpers.js';

export const TD = 'cluster.local';
export const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
/** Every mesh service in these tests is addressed on this port (`http://name.ns:8080/`). */
export const SERVICE_PORT = 8080;

// ---------------------------------------------------------------- temp dirs, config

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `ztmesh-mesh-${name}-`));
}

/** A config directory seeded with the e-commerce example policies (production: STRICT, deny-all, allows). */
export function configDir(root: string, withExamples = true): string {
  const dir = join(root, 'config');
  mkdirSync(dir, { recursive: true });
  if (withExamples) {
    const src = join(repoRoot, 'examples', 'ecommerce', 'policies');
    for (const f of ['00-mtls.yaml', '01-deny-all.yaml', '10-product-catalog.yaml', '20-payment-service.yaml']) copyFileSync(join(src, f), join(dir, f));
  }
  return dir;
}

/** Write a config file atomically (a dot-named temp file, which the loader ignores, then rename). */
export function writeConfig(dir: string, name: string, yaml: string): void {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  writeFileSync(tmp, yaml);
  renameSync(tmp, join(dir, name));
}

export function removeConfig(dir: string, name: string): void {
  rmSync(join(dir, name), { force: true });
}

// ---------------------------------------------------------------- apps

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Every raw header line (to see duplicates). */
  rawHeaders: string[];
}

/** A tiny app on 127.0.0.1 that records what reaches it and answers 200 with JSON. */
export class App {
  readonly seen: SeenRequest[] = [];
  readonly server: http.Server;
  port = 0;

  constructor(readonly name: string) {
    this.server = http.createServer((req, res) => {
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ app: name, method: req.method, url: req.url, xfcc: req.headers['x-forwarded-client-cert'] ?? null });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  last(): SeenRequest | undefined {
    return this.seen[this.seen.length - 1];
  }

  count(pred: (r: SeenRequest) => boolean = () => true): number {
    return this.seen.filter(pred).length;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------- HTTP

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function collect(res: http.IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    res.on('error', reject);
  });
}

/** One HTTP request on a fresh connection; rejects on a transport error (reset, refused, timeout). */
export function httpRequest(o: http.RequestOptions & { body?: string; timeoutMs?: number }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', agent: false, ...o }, (res) => collect(res).then(resolve, reject));
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The app's view: an HTTP request through its sidecar's outbound proxy (absolute-form URL). */
export function viaSidecar(sc: SidecarHandle, method: string, url: string, o: { headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent } = {}): Promise<Reply> {
  const u = new URL(url);
  return httpRequest({ port: sc.ports.outbound, method, path: url, headers: { host: u.host, ...o.headers }, body: o.body, ...(o.agent ? { agent: o.agent } : {}) });
}

/** An mTLS request straight to a sidecar's inbound port with the given certificate. */
export function mtlsRequest(port: number, cert: { keyPem: string; chainPem: string }, method: string, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const opts: https.RequestOptions & tls.ConnectionOptions = { host: '127.0.0.1', port, method, path, headers, key: cert.keyPem || undefined, cert: cert.chainPem || undefined, rejectUnauthorized: false, agent: false, ALPNProtocols: ['http/1.1'] };
    const req = https.request(opts, (res) => collect(res).then(resolve, reject));
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Send raw bytes and return whatever comes back before the peer closes (or an error). */
export function rawExchange(port: number, data: string | Buffer, timeoutMs = 5000, overTls?: tls.ConnectionOptions): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const s: net.Socket = overTls ? tls.connect({ host: '127.0.0.1', port, ...overTls }) : net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), error: 'timeout' });
    }, timeoutMs);
    s.on(overTls ? 'secureConnect' : 'connect', () => s.write(data));
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e) => {
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks).toString('latin1'), error: (e as NodeJS.ErrnoException).code ?? e.message });
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks).toString('latin1') });
    });
  });
}

// ---------------------------------------------------------------- sidecar admin

export interface SidecarStatus {
  version: string | null;
  spiffeId: string | null;
  certificate: { notBefore: string; notAfter: string } | null;
  controlPlane: { connected: boolean };
  lastNack: { version: string; error: string } | null;
  mtlsMode: { mode: string } | null;
  quarantined: string[];
  services: { name: string; endpoints: number; identities: string[] }[];
}

export async function sidecarStatus(sc: SidecarHandle): Promise<SidecarStatus> {
  const r = await httpRequest({ port: sc.ports.admin, method: 'GET', path: '/status' });
  return JSON.parse(r.body) as SidecarStatus;
}

export async function metricsText(sc: SidecarHandle): Promise<string> {
  return (await httpRequest({ port: sc.ports.admin, method: 'GET', path: '/metrics' })).body;
}

/** Sum of a Prometheus series whose labels include all of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[lm[1]] = lm[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

export async function metric(sc: SidecarHandle, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await metricsText(sc), name, labels);
}

// ---------------------------------------------------------------- waiting

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------- certificates

export interface TestSvid {
  spiffeId: string;
  keyPem: string;
  chainPem: string;
}

function newKey() {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

function issueWith(ca: CertificateAuthority, spiffeId: string, ttlMs?: number): TestSvid {
  const key = newKey();
  const svid = ca.issueFromCsr(buildCsr(key, [spiffeId]), { spiffeId, ttlMs });
  return { spiffeId, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, chainPem: svid.chainPem };
}

/** An SVID from the mesh's own CA (the control plane's data dir, opened with the mesh passphrase). */
export async function meshSvid(mesh: LocalMesh, spiffeId: string): Promise<TestSvid> {
  const ca = await loadCa(join(mesh.dir, 'control'), mesh.passphrase);
  return issueWith(ca, spiffeId);
}

/** A CA nobody in the mesh trusts (same trust domain, so only the roots differ). */
export function foreignCa(trustDomain = TD): { ca: CertificateAuthority; rootsPem: string; issue: (spiffeId: string) => TestSvid } {
  const root = createRootCa({ trustDomain });
  const inter = createIntermediateCa(root, { trustDomain });
  const ca = new CertificateAuthority({ trustDomain, roots: [root.der], chain: [inter.der], signingKey: inter.key });
  return { ca, rootsPem: toPem(root.der), issue: (s) => issueWith(ca, s) };
}

// ---------------------------------------------------------------- CLI, teardown

export function runCliAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ZTMESH_BIN, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Stop every process of the mesh; then, by process id, kill any child of this test
 * process still running whose command line names this test's temp dir (every mesh
 * process gets `--data-dir <dir>/...`); then remove the dir.
 */
export async function teardown(mesh: LocalMesh | undefined, dir: string, extra: { stop(): Promise<void> }[] = []): Promise<void> {
  await Promise.allSettled(extra.map((x) => x.stop()));
  if (mesh) await Promise.allSettled([...mesh.sidecars.map((s) => s.stop()), mesh.control?.stop()]);
  for (const pid of childrenNaming(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (process.env.ZTMESH_KEEP_TEST_DIRS) return;
  rmSync(dir, { recursive: true, force: true });
}

/** Child processes of this process whose command line contains `text` (Linux /proc). */
function childrenNaming(text: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n));
  } catch {
    return out;
  }
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text)) out.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** On failure, the tail of each process log helps more than a bare assertion. */
export function logsOf(dir: string, tail = 3000): string {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').slice(-tail)}`)
    .join('\n');
}

/** A production-namespace workload named like its service account and `app` label, on SERVICE_PORT. */
export function workload(name: string, app: App, extra: Partial<SidecarSpec> = {}): SidecarSpec {
  return { service: name, namespace: 'production', serviceAccount: name, labels: { app: name }, appPort: app.port, servicePort: SERVICE_PORT, ...extra };
}

/**
 * The usual start of a mesh test: the apps, a control plane over `cfg`, a sidecar per spec
 * (started together), and every sidecar in sync. Each test file owns what this returns.
 */
export async function startMesh(dir: string, cfg: string, apps: Record<string, App>, specs: () => SidecarSpec[]): Promise<{ mesh: LocalMesh; sidecars: SidecarHandle[] }> {
  for (const a of Object.values(apps)) await a.start();
  const mesh = new LocalMesh(dir, [cfg]);
  await mesh.startControl();
  const sidecars = await Promise.all(specs().map((s) => mesh.startSidecar(s))); // after the apps: specs name their ports
  await mesh.waitInSync();
  return { mesh, sidecars };
}

export { LocalMesh };
export type { SidecarHandle };
