/**
 * CUSTOM authorization in the sidecar, with real processes: a Rego provider whose modules
 * the control plane read with the config and shipped in the slice (evaluated in-process by
 * the sidecar; its denial status, headers and body reach the caller), and an external OPA
 * server consulted asynchronously (failing closed when it does not answer in time).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { App, LocalMesh, SERVICE_PORT, configDir, logsOf, teardown, tempDir, viaSidecar, writeConfig , workload } from './harness.js';
import type { SidecarHandle } from './harness.js';

const dir = tempDir('custom');
let cfg: string;
let mesh: LocalMesh;
const apps = { order: new App('order'), payment: new App('payment') };
let order: SidecarHandle;
let opaDelayMs = 0;
const opaSeen: { path: string; principal: string }[] = [];
const opa = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const input = JSON.parse(body).input;
    opaSeen.push({ path: input.attributes.request.http.path, principal: input.attributes.source.principal });
    setTimeout(() => res.end(JSON.stringify({ result: input.attributes.request.http.headers['x-opa'] === 'yes' })), opaDelayMs);
  });
});

before(async () => {
  cfg = configDir(dir);
  for (const a of Object.values(apps)) await a.start();
  await new Promise<void>((r) => opa.listen(0, '127.0.0.1', r));
  writeFileSync(
    join(dir, 'refunds.rego'),
    [
      'package ztmesh.refunds',
      'import rego.v1',
      'default decision := {"allowed": false, "http_status": 402, "headers": {"x-why": "refund-limit"}, "body": "refund over the limit"}',
      'decision := {"allowed": true} if {',
      '  input.attributes.source.principal == "spiffe://cluster.local/ns/production/sa/order-service"',
      '  input.attributes.destination.principal == "spiffe://cluster.local/ns/production/sa/payment-service"',
      '  to_number(input.parsed_query.amount[0]) <= data.limits.refund',
      '}',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'limits.yaml'), 'limits: {refund: 100}\n');
  writeConfig(
    cfg,
    'mesh.yaml',
    `apiVersion: ztmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: refunds
    rego: {modules: ["../refunds.rego"], decision: ztmesh/refunds/decision, data: ../limits.yaml}
  - name: opa
    opa: {url: "http://127.0.0.1:${(opa.address() as AddressInfo).port}", path: envoy/authz/allow, timeout: 300ms}
`,
  );
  writeConfig(
    cfg,
    'custom.yaml',
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: refunds-limit, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  action: CUSTOM
  provider: {name: refunds}
  rules:
  - to: [{operation: {paths: ["/api/v1/refunds"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: charges-opa, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  action: CUSTOM
  provider: {name: opa}
  rules:
  - to: [{operation: {paths: ["/api/v1/charges"]}}]
`,
  );
  mesh = new LocalMesh(dir, [cfg]);
  await mesh.startControl();
  [order] = await Promise.all([
    mesh.startSidecar(workload('order-service', apps.order)),
    mesh.startSidecar(workload('payment-service', apps.payment)),
  ]);
  await mesh.waitInSync();
});

after(async () => {
  await teardown(mesh, dir, [...Object.values(apps).map((a) => ({ stop: () => a.close() })), { stop: () => new Promise<void>((r) => opa.close(() => r())) }]);
});

test('Rego CUSTOM provider in the sidecar: allows within the limit, denies with its own status, headers and body', async () => {
  const ok = await viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/refunds?amount=40`);
  assert.equal(ok.status, 200, ok.body + logsOf(dir));
  const before = apps.payment.count((r) => r.url.startsWith('/api/v1/refunds'));
  const over = await viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/refunds?amount=400`);
  assert.equal(over.status, 402);
  assert.equal(over.headers['x-why'], 'refund-limit');
  assert.equal(over.body, 'refund over the limit');
  assert.equal(apps.payment.count((r) => r.url.startsWith('/api/v1/refunds')), before, 'the denied request never reached the app');
  // CUSTOM allowing does not bypass ALLOW policies: GET refunds is still not allowed for order-service.
  const get = await viaSidecar(order, 'GET', `http://payment-service:${SERVICE_PORT}/api/v1/refunds?amount=1`);
  assert.equal(get.status, 403);
});

test('external OPA provider in the sidecar: asked asynchronously with the opa-envoy input, fails closed on timeout', async () => {
  const yes = await viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/charges`, { headers: { 'x-opa': 'yes' } });
  assert.equal(yes.status, 200, yes.body);
  const no = await viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/charges`, { headers: { 'x-opa': 'no' } });
  assert.equal(no.status, 403);
  assert.deepEqual(opaSeen.at(-1), { path: '/api/v1/charges', principal: 'spiffe://cluster.local/ns/production/sa/order-service' });
  opaDelayMs = 1000;
  const slow = await viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/charges`, { headers: { 'x-opa': 'yes' } });
  assert.equal(slow.status, 403, 'OPA too slow: fail closed');
  opaDelayMs = 0;
});
