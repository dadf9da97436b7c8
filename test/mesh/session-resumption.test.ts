/**
 * Connections and TLS sessions between sidecars are reused: requests share pooled
 * connections, and when more connections are needed later they resume the TLS session
 * of the endpoint (whose identity was checked on the full handshake) — while the
 * receiving sidecar still verifies the caller's certificate on every resumed connection.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { App, LocalMesh, SERVICE_PORT, configDir, metric, teardown, tempDir, viaSidecar , workload , startMesh } from './harness.js';
import type { SidecarHandle } from './harness.js';
import http from 'node:http';

const dir = tempDir('resume');
let mesh: LocalMesh;
const apps = { order: new App('order'), payment: new App('payment') };
let order: SidecarHandle, payment: SidecarHandle;

before(async () => {
  ({ mesh, sidecars: [order, payment] } = await startMesh(dir, configDir(dir), apps, () => [workload('order-service', apps.order), workload('payment-service', apps.payment)]));
});

after(async () => {
  await teardown(mesh, dir, Object.values(apps).map((a) => ({ stop: () => a.close() })));
});

test('upstream connections are pooled and TLS sessions resumed; the server still verifies each resumed peer', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const charge = () => viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/charges`, { agent });
  const first = await charge();
  assert.equal(first.status, 200);
  assert.equal(await metric(order, 'ztmesh_upstream_tls_handshakes_total', { resumed: 'false' }), 1);
  // Sequential requests reuse the pooled connection: no new handshake.
  for (let i = 0; i < 10; i++) assert.equal((await charge()).status, 200);
  assert.equal(await metric(order, 'ztmesh_upstream_tls_handshakes_total'), 1);
  // A burst needs more connections: they resume the cached session.
  const burst = await Promise.all(Array.from({ length: 24 }, charge));
  for (const r of burst) assert.equal(r.status, 200);
  const resumed = await metric(order, 'ztmesh_upstream_tls_handshakes_total', { resumed: 'true' });
  assert.ok(resumed >= 1, `expected resumed handshakes, got ${resumed}`);
  // Every request reached the app with the verified caller identity, resumed or not.
  for (const r of apps.payment.seen.slice(-24)) assert.match(String(r.headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/production\/sa\/order-service$/);
  assert.equal(await metric(payment, 'ztmesh_mtls_handshake_failures_total'), 0);
  agent.destroy();
});
