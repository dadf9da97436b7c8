/**
 * Gateway test harness: a LocalMesh (real control plane, sidecars and `ztmesh gateway`
 * processes on 127.0.0.1) with one backend service `api.shop` behind a sidecar, a Gateway
 * and VirtualService routing `shop.example.com/api/` to it, and a test identity provider
 * (ES256 and RSA keys) whose JWKS is inlined into RequestAuthentications or served over HTTPS.
 */
import https from 'node:https';
import http from 'node:http';
import tls from 'node:tls';
import { generateKeyPairSync, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { signCompactJws } from '../../src/identity/jws.js';
import { devServerCert } from '../../src/gateway/dev-cert.js';
import type { GatewayHandle } from '../../src/control/launcher.js';
import { App, LocalMesh, SERVICE_PORT, configDir, rawExchange, tempDir, teardown, waitFor, writeConfig, type Reply, type SidecarHandle } from '../mesh/harness.js';

export * from '../mesh/harness.js';
export type { GatewayHandle };

export const ISSUER = 'https://idp.test';
export const HOST = 'shop.example.com';

export class TestIdp {
  readonly es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  readonly kid = 'es-1';
  readonly rsaKid = 'rsa-1';

  jwks(): { keys: Record<string, unknown>[] } {
    return {
      keys: [
        { ...(createPublicKey(this.es.privateKey).export({ format: 'jwk' }) as object), kid: this.kid, use: 'sig', alg: 'ES256' },
        { ...(createPublicKey(this.rsa.privateKey).export({ format: 'jwk' }) as object), kid: this.rsaKid, use: 'sig', alg: 'RS256' },
      ],
    };
  }

  /** A valid ES256 token (override claims or header fields). */
  token(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key: KeyObject = this.es.privateKey): string {
    const now = Math.floor(Date.now() / 1000);
    return signCompactJws({ alg: 'ES256', kid: this.kid, typ: 'JWT', ...header } as never, { iss: ISSUER, sub: 'alice', aud: 'shop', iat: now, exp: now + 300, ...claims }, key);
  }

  rsaToken(claims: Record<string, unknown> = {}): string {
    const now = Math.floor(Date.now() / 1000);
    return signCompactJws({ alg: 'RS256', kid: this.rsaKid, typ: 'JWT' }, { iss: ISSUER, sub: 'bob', aud: 'shop', iat: now, exp: now + 300, ...claims }, this.rsa.privateKey);
  }
}

export const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * The mesh's routing config: Gateway (`gatewayHosts`, default every host), VirtualService
 * (`vsHosts`, default the shop's host), STRICT mTLS for shop, api allows the gateway.
 */
export function baseConfig(extra = '', o: { gatewayHosts?: string[]; vsHosts?: string[] } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, protocol: HTTPS, name: https}
    hosts: ${JSON.stringify(o.gatewayHosts ?? ['*'])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: ${JSON.stringify(o.vsHosts ?? [HOST])}
  gateways: ["istio-system/edge"]
  http:
  - match: [{uri: {prefix: /api/}}]
    route: [{destination: {host: api.shop.svc.cluster.local, port: {number: ${SERVICE_PORT}}}}]
  - match: [{uri: {prefix: /v2/}}]
    rewrite: {uri: /api/}
    route: [{destination: {host: api.shop, port: {number: ${SERVICE_PORT}}}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-from-gateway, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/istio-system/sa/ingress-gateway"]}}]
${extra}`;
}

export interface GatewayMesh {
  dir: string;
  cfg: string;
  mesh: LocalMesh;
  app: App;
  api: SidecarHandle;
  gateways: GatewayHandle[];
  cert: { certFile: string; keyFile: string };
}

/** Start control plane, api app + sidecar, and `gateways` gateway processes; wait until routes work. */
export async function startGatewayMesh(name: string, configYaml: string, o: { gateways?: number; env?: NodeJS.ProcessEnv; extraArgs?: string[]; http?: boolean } = {}): Promise<GatewayMesh> {
  const dir = tempDir(`gw-${name}`);
  const cfg = configDir(dir, false);
  writeConfig(cfg, 'gateway.yaml', configYaml);
  const cert = devServerCert(dir, ['localhost', HOST, '127.0.0.1']);
  const mesh = new LocalMesh(dir, [cfg], { accessLog: true });
  await mesh.startControl();
  const app = await new App('api').start();
  const api = await mesh.startSidecar({ service: 'api', namespace: 'shop', serviceAccount: 'api', labels: { app: 'api' }, appPort: app.port, servicePort: SERVICE_PORT });
  const gateways: GatewayHandle[] = [];
  for (let i = 0; i < (o.gateways ?? 1); i++) gateways.push(await mesh.startGateway({ ...cert, env: o.env, extraArgs: o.extraArgs, http: o.http }));
  await mesh.waitInSync();
  for (const g of gateways) {
    await waitFor('gateway routes to api', async () => {
      const r = await gw(g, 'GET', '/api/ready-probe').catch(() => null);
      return r && r.status !== 404 && r.status !== 503 ? r : null;
    }, 15_000, 50);
  }
  app.seen.length = 0;
  return { dir, cfg, mesh, app, api, gateways, cert };
}

export interface GwOptions {
  host?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  timeoutMs?: number;
}

/** One HTTPS request to a gateway (fresh connection, SNI/Host the shop's host). */
export function gw(g: GatewayHandle, method: string, path: string, o: GwOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const opts: https.RequestOptions & tls.ConnectionOptions = {
      host: '127.0.0.1',
      port: g.ports.https,
      method,
      path,
      headers: { host: o.host ?? HOST, ...o.headers },
      servername: 'localhost',
      rejectUnauthorized: false,
      agent: false,
    };
    const req = https.request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Send raw bytes over TLS to the gateway and collect what comes back until it closes. */
export function rawTls(g: GatewayHandle, data: string | Buffer, timeoutMs = 5000): Promise<{ data: string; error?: string }> {
  return rawExchange(g.ports.https, data, timeoutMs, { servername: 'localhost', rejectUnauthorized: false });
}

/** A JWKS over HTTPS (self-signed; the gateway trusts it through NODE_EXTRA_CA_CERTS); `delayMs` holds every answer back. */
export async function jwksServer(dir: string, doc: () => unknown, o: { delayMs?: number } = {}): Promise<{ url: string; caFile: string; hits: () => number; close(): Promise<void> }> {
  const sub = join(dir, 'jwks-server');
  mkdirSync(sub, { recursive: true });
  const cert = devServerCert(sub, ['127.0.0.1']);
  const caFile = join(dir, 'jwks-ca.pem');
  const { readFileSync } = await import('node:fs');
  writeFileSync(caFile, readFileSync(cert.certFile));
  let hits = 0;
  const s = https.createServer({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) }, (_req, res) => {
    hits++;
    const body = JSON.stringify(doc());
    const answer = () => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (o.delayMs) setTimeout(answer, o.delayMs).unref();
    else answer();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(s.address() as AddressInfo).port}/jwks.json`,
    caFile,
    hits: () => hits,
    close: () => new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    }),
  };
}

export async function gatewayMetrics(g: GatewayHandle): Promise<string> {
  return (await fetch(`http://127.0.0.1:${g.ports.admin}/metrics`)).text();
}

/** Stop every process of the mesh and close the test's own servers. */
export async function stopGatewayMesh(m: GatewayMesh | undefined): Promise<void> {
  if (!m) return;
  await m.app.close();
  await teardown(m.mesh, m.dir, m.mesh.gateways);
}
