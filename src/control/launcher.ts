/**
 * Run a mesh of real processes on loopback: a control plane and sidecars, each a
 * `ztmesh` child process with its own data directory. Used by `ztmesh demo`, the
 * integration tests and the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

export const ZTMESH_BIN = resolve(fileURLToPath(new URL('../../../bin/ztmesh.js', import.meta.url)));

export interface ControlInfo {
  port: number;
  adminPort: number;
  spiffeId: string;
  trustDomain: string;
  bundlePath: string;
}

export interface SidecarSpec {
  service: string;
  namespace: string;
  serviceAccount: string;
  labels?: Record<string, string>;
  appPort: number;
  servicePort?: number;
  /** localhost port → host (per-upstream listeners). */
  upstreams?: Record<number, string>;
  extraArgs?: string[];
  /** Reuse an existing data dir (fail-static restarts) instead of a fresh one. */
  dataDir?: string;
}

export type { SidecarPorts } from '../proxy/sidecar.js';
import type { SidecarPorts } from '../proxy/sidecar.js';

export class ManagedProcess {
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    readonly logFile: string,
  ) {}

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs = 3000): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((r) => {
      const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
      this.proc.once('exit', () => {
        clearTimeout(t);
        r();
      });
      this.proc.kill('SIGTERM');
    });
  }

  kill(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((r) => {
      this.proc.once('exit', () => r());
      this.proc.kill('SIGKILL');
    });
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}

export interface SidecarHandle extends ManagedProcess {
  ports: SidecarPorts;
  spec: SidecarSpec;
  dataDir: string;
}

export interface GatewayLaunchSpec {
  /** The HTTPS certificate from files (with keyFile); or `dnsNames`. */
  certFile?: string;
  keyFile?: string;
  /** Have the mesh CA issue the HTTPS certificate for these DNS names (`--dns-names`). */
  dnsNames?: string[];
  /** Reuse an existing data dir (fail-static restarts: no join token when it holds an SVID). */
  dataDir?: string;
  /** Also serve plaintext HTTP (on a free port). */
  http?: boolean;
  labels?: Record<string, string>;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface GatewayHandle extends ManagedProcess {
  ports: import('../gateway/gateway.js').GatewayPorts;
  dataDir: string;
}

export class LocalMesh {
  readonly gateways: GatewayHandle[] = [];
  readonly passphrase = randomBytes(18).toString('base64url');
  control?: ManagedProcess & { info: ControlInfo };
  readonly sidecars: SidecarHandle[] = [];
  private seq = 0;
  private controlPort = 0;
  private controlAdminPort = 0;

  constructor(
    readonly dir: string,
    readonly configPaths: string[],
    private readonly o: { env?: NodeJS.ProcessEnv; accessLog?: boolean; svidTtl?: string } = {},
  ) {
    mkdirSync(dir, { recursive: true });
  }

  private spawn(name: string, args: string[], readyFile: string, env?: NodeJS.ProcessEnv): ManagedProcess {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const proc = spawn(process.execPath, [ZTMESH_BIN, ...args, '--ready-file', readyFile], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ZTMESH_CA_PASSPHRASE: this.passphrase, NO_COLOR: '1', ...this.o.env, ...env },
    });
    closeSync(fd);
    return new ManagedProcess(name, proc, logFile);
  }

  private async waitReady<T>(p: ManagedProcess, file: string, timeoutMs = 20_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (!p.running) throw new Error(`${p.name} exited (${p.proc.exitCode ?? p.proc.signalCode}) before it was ready:\n${p.log().slice(-4000)}`);
      if (existsSync(file)) {
        try {
          return JSON.parse(readFileSync(file, 'utf8')) as T;
        } catch {
          // written but not complete yet
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await p.kill();
    throw new Error(`${p.name} was not ready within ${timeoutMs} ms:\n${p.log().slice(-4000)}`);
  }

  /** Start (or restart, on the same ports) the control plane. */
  async startControl(): Promise<ControlInfo> {
    const readyFile = join(this.dir, `control.ready.${this.seq++}.json`);
    const args = ['control', ...this.configPaths.flatMap((c) => ['-c', c]), '--data-dir', join(this.dir, 'control'), '--listen', `127.0.0.1:${this.controlPort}`, '--admin-port', String(this.controlAdminPort)];
    if (this.o.svidTtl) args.push('--svid-ttl', this.o.svidTtl);
    const p = this.spawn('control', args, readyFile);
    const info = await this.waitReady<ControlInfo>(p, readyFile);
    this.controlPort = info.port;
    this.controlAdminPort = info.adminPort;
    this.control = Object.assign(p, { info });
    return info;
  }

  adminUrl(path = '/'): string {
    if (!this.control) throw new Error('control plane not started');
    return `http://127.0.0.1:${this.control.info.adminPort}${path}`;
  }

  async admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.adminUrl(path), { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    const json = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error ?? ''}`);
    return json;
  }

  async token(namespace: string, serviceAccount: string, ttl = '10m'): Promise<string> {
    return (await this.admin<{ token: string }>('POST', '/v1/tokens', { namespace, serviceAccount, ttl })).token;
  }

  async startSidecar(spec: SidecarSpec): Promise<SidecarHandle> {
    if (!this.control) throw new Error('start the control plane first');
    const n = this.seq++;
    const dataDir = spec.dataDir ?? join(this.dir, `sidecar-${spec.service}-${n}`);
    const readyFile = join(this.dir, `sidecar-${spec.service}-${n}.ready.json`);
    const needToken = !existsSync(join(dataDir, 'svid.pem'));
    const args = [
      'proxy',
      '--service', spec.service,
      '--namespace', spec.namespace,
      '--service-account', spec.serviceAccount,
      '--labels', Object.entries(spec.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
      '--app-port', String(spec.appPort),
      '--port', '0',
      '--outbound-port', '0',
      '--admin-port', '0',
      '--control-plane', `127.0.0.1:${this.control.info.port}`,
      '--ca-file', this.control.info.bundlePath,
      '--data-dir', dataDir,
      '--access-log', this.o.accessLog === false ? 'off' : join(this.dir, `access-${spec.service}.jsonl`),
      ...(spec.servicePort ? ['--service-port', String(spec.servicePort)] : []),
      ...Object.entries(spec.upstreams ?? {}).flatMap(([p, h]) => ['--upstream', `${p}=${h}`]),
      ...(needToken ? ['--token', await this.token(spec.namespace, spec.serviceAccount)] : []),
      ...(spec.extraArgs ?? []),
    ];
    const p = this.spawn(`sidecar-${spec.service}-${n}`, args, readyFile);
    const ports = await this.waitReady<SidecarPorts>(p, readyFile);
    const h = Object.assign(p, { ports, spec, dataDir }) as SidecarHandle;
    this.sidecars.push(h);
    return h;
  }

  /** Start an edge gateway (`ztmesh gateway`) registered as istio-system/ingress-gateway. */
  async startGateway(spec: GatewayLaunchSpec): Promise<GatewayHandle> {
    if (!this.control) throw new Error('start the control plane first');
    const n = this.seq++;
    const dataDir = spec.dataDir ?? join(this.dir, `gateway-${n}`);
    const readyFile = join(this.dir, `gateway-${n}.ready.json`);
    const needToken = !existsSync(join(dataDir, 'svid.pem'));
    const args = [
      'gateway',
      ...(spec.certFile !== undefined ? ['--cert-file', spec.certFile] : []),
      ...(spec.keyFile !== undefined ? ['--key-file', spec.keyFile] : []),
      ...(spec.dnsNames !== undefined ? ['--dns-names', spec.dnsNames.join(',')] : []),
      '--https-port', '0',
      ...(spec.http ? ['--http-port', '0'] : []),
      '--admin-port', '0',
      '--labels', Object.entries(spec.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
      '--control-plane', `127.0.0.1:${this.control.info.port}`,
      '--ca-file', this.control.info.bundlePath,
      '--data-dir', dataDir,
      '--access-log', this.o.accessLog === false ? 'off' : join(this.dir, `access-gateway-${n}.jsonl`),
      ...(needToken ? ['--token', await this.token('istio-system', 'ingress-gateway')] : []),
      ...(spec.extraArgs ?? []),
    ];
    const p = this.spawn(`gateway-${n}`, args, readyFile, spec.env);
    const ports = await this.waitReady<GatewayHandle['ports']>(p, readyFile);
    const h = Object.assign(p, { ports, dataDir }) as GatewayHandle;
    this.gateways.push(h);
    return h;
  }

  /** Wait until every running sidecar has applied the version the control plane sent it. */
  async waitInSync(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.admin<{ sidecars: { inSync: boolean; nack: unknown }[] }>('GET', '/v1/sidecars').catch(() => null);
      const list = s as unknown as { inSync: boolean }[] | null;
      if (list && list.length >= this.sidecars.filter((x) => x.running).length && list.every((x) => x.inSync)) return;
      if (Date.now() > until) throw new Error(`sidecars not in sync after ${timeoutMs} ms: ${JSON.stringify(list)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.gateways, ...this.sidecars].map((s) => s.stop()));
    await this.control?.stop();
  }
}
