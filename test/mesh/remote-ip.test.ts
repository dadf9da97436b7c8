/**
 * remote.ip behind trusted proxies: with MeshConfig numTrustedProxies = 1 a sidecar takes the
 * original client from the right-most X-Forwarded-For entry (as Envoy's xff_num_trusted_hops),
 * so remoteIpBlocks policies see the client rather than the last proxy; a malformed entry is 400.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { App, LocalMesh, SERVICE_PORT, configDir, teardown, tempDir, viaSidecar, workload, writeConfig , startMesh } from './harness.js';
import type { SidecarHandle } from './harness.js';

const dir = tempDir('remote-ip');
let mesh: LocalMesh;
const apps = { order: new App('order'), payment: new App('payment') };
let order: SidecarHandle;

before(async () => {
  const cfg = configDir(dir);
  writeConfig(cfg, 'mesh.yaml', 'apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {numTrustedProxies: 1}\n');
  writeConfig(
    cfg,
    'deny-range.yaml',
    'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-range, namespace: production}\nspec:\n  selector: {matchLabels: {app: payment-service}}\n  action: DENY\n  rules:\n  - from: [{source: {remoteIpBlocks: ["198.51.100.0/24", "2001:db8::/32"]}}]\n',
  );
  ({ mesh, sidecars: [order] } = await startMesh(dir, cfg, apps, () => [workload('order-service', apps.order), workload('payment-service', apps.payment)]));
});

after(async () => {
  await teardown(mesh, dir, Object.values(apps).map((a) => ({ stop: () => a.close() })));
});

test('remoteIpBlocks match the client named by the trusted proxy in X-Forwarded-For', async () => {
  const charge = (xff?: string) => viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/charges`, { headers: xff ? { 'x-forwarded-for': xff } : {} });
  assert.equal((await charge()).status, 200, 'no XFF: the peer address, outside the denied ranges');
  assert.equal((await charge('203.0.113.7')).status, 200);
  assert.equal((await charge('203.0.113.7, 198.51.100.9')).status, 403, 'the right-most entry is the client');
  assert.equal((await charge('198.51.100.9, 203.0.113.7')).status, 200, 'entries left of the trusted one are the client’s own claims');
  assert.equal((await charge('2001:db8::5')).status, 403);
  assert.equal((await charge('not-an-ip')).status, 400);
});
