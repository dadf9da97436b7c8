/**
 * The control plane is not on the request path: with real processes, stopping it under
 * load fails no request between running sidecars; restarting it (same data dir and
 * ports) brings every sidecar back in sync and new policy applies again. A sidecar
 * restarted while the control plane is down serves from its persisted certificate and
 * configuration (fail-static).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { App, LocalMesh, SERVICE_PORT, configDir, id, logsOf, rawExchange, sidecarStatus, sleep, teardown, tempDir, viaSidecar, waitFor, writeConfig , workload , startMesh } from './harness.js';
import type { Reply, SidecarHandle } from './harness.js';

const dir = tempDir('outage');
let cfg: string;
let mesh: LocalMesh;
const apps = { order: new App('order'), payment: new App('payment') };
let order: SidecarHandle, payment: SidecarHandle;
const ORDER = id('production', 'order-service');
const CHARGES = `http://payment-service:${SERVICE_PORT}/api/v1/charges`;

before(async () => {
  cfg = configDir(dir);
  ({ mesh, sidecars: [order, payment] } = await startMesh(dir, cfg, apps, () => [workload('order-service', apps.order), workload('payment-service', apps.payment)]));
});

after(async () => {
  await teardown(mesh, dir, Object.values(apps).map((a) => ({ stop: () => a.close() })));
});

/** Requests in a loop until stopped: half on a keep-alive agent, half on fresh connections. */
function load(fn: (agent: http.Agent | undefined) => Promise<Reply>) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results: { status: number; error?: string; at: number; phase: string }[] = [];
  let phase = 'start';
  let running = true;
  const workers = [agent, undefined].map(async (a) => {
    while (running) {
      try {
        const r = await fn(a);
        results.push({ status: r.status, at: Date.now(), phase, ...(r.status !== 200 ? { error: r.body.slice(0, 200) } : {}) });
      } catch (e) {
        results.push({ status: 0, error: (e as Error).message, at: Date.now(), phase });
      }
      await sleep(5);
    }
  });
  return {
    results,
    phase(p: string) {
      phase = p;
    },
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
    },
  };
}

test('control plane stopped under load: traffic between sidecars continues; restarted, sidecars resync and new policy applies', async () => {
  const l = load((agent) => viaSidecar(order, 'POST', CHARGES, { body: '{}', agent }));
  try {
    await sleep(300);
    l.phase('control plane down');
    await mesh.control!.stop();
    await waitFor('both sidecars to notice the control plane is gone', async () => {
      const s = await Promise.all([order, payment].map(sidecarStatus));
      return s.every((x) => !x.controlPlane.connected);
    });
    await sleep(1500);
    // Policy still enforced from the last applied version while the control plane is away.
    assert.equal((await viaSidecar(order, 'GET', CHARGES)).status, 403);

    l.phase('control plane restarting');
    const info = await mesh.startControl();
    await mesh.waitInSync(15_000);
    l.phase('control plane back');
    const sidecars = await mesh.admin<{ spiffeId: string; inSync: boolean }[]>('GET', '/v1/sidecars');
    assert.equal(sidecars.length, 2, JSON.stringify(sidecars));
    for (const s of [order, payment]) assert.ok((await sidecarStatus(s)).controlPlane.connected);
    assert.equal(info.port, mesh.control!.info.port);

    // A new policy reaches the reconnected sidecars: order-service may now also GET charges.
    const t0 = Date.now();
    writeConfig(
      cfg,
      '25-payment-read.yaml',
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: payment-service-allow-order-read, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/production/sa/order-service"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/api/v1/charges"]}}]
`,
    );
    await waitFor('the new policy to apply after the restart', async () => (await viaSidecar(order, 'GET', CHARGES)).status === 200, 5000, 20);
    console.log(`# after the control plane restart, a new policy applied in ${Date.now() - t0} ms`);
    await sleep(300);
  } finally {
    await l.stop();
  }
  const byPhase = new Map<string, number>();
  for (const r of l.results) byPhase.set(r.phase, (byPhase.get(r.phase) ?? 0) + 1);
  const failed = l.results.filter((r) => r.status !== 200);
  console.log(`# requests during the outage test: ${[...byPhase].map(([p, n]) => `${p}: ${n}`).join(', ')}; failed: ${failed.length}`);
  assert.ok((byPhase.get('control plane down') ?? 0) >= 20, 'too little traffic while the control plane was down');
  assert.deepEqual(failed, [], `requests failed around the control plane outage\n${logsOf(dir)}`);
});

test('fail-static: a sidecar restarted while the control plane is down serves from its persisted certificate and configuration', async () => {
  await mesh.waitInSync();
  // Stop both sidecars and the control plane; bring the sidecars back from their data dirs only.
  // One at a time: when order-service leaves, the control plane sends payment-service a new
  // slice (without order-service), so payment's last version is read after that.
  const before = { order: await sidecarStatus(order), payment: await sidecarStatus(payment) };
  await order.stop();
  await mesh.waitInSync();
  before.payment = await sidecarStatus(payment);
  assert.ok(before.order.version && before.payment.version);
  assert.ok(before.order.services.some((s) => s.name === 'payment-service.production' && s.endpoints === 1));
  await payment.stop();
  await mesh.control!.stop();
  assert.equal(mesh.control!.running, false);
  const [order2, payment2] = await Promise.all([
    mesh.startSidecar({ ...order.spec, dataDir: order.dataDir }),
    // Same inbound port, so the endpoint in order-service's persisted slice still points at it.
    mesh.startSidecar({ ...payment.spec, dataDir: payment.dataDir, extraArgs: ['--port', String(payment.ports.inbound)] }),
  ]);
  assert.equal(payment2.ports.inbound, payment.ports.inbound);

  for (const [name, sc] of [['order', order2], ['payment', payment2]] as const) {
    const s = await sidecarStatus(sc);
    assert.equal(s.controlPlane.connected, false);
    assert.equal(s.version, before[name].version, `${name} does not serve its persisted configuration`);
    assert.equal(s.certificate?.notBefore, before[name].certificate?.notBefore, `${name} does not serve its persisted certificate`);
    assert.equal(s.spiffeId, before[name].spiffeId);
    assert.equal(s.mtlsMode?.mode, 'STRICT');
  }

  // The persisted slice routes, the persisted certificate authenticates, the persisted policy decides.
  const ok = await viaSidecar(order2, 'POST', CHARGES, { body: '{}' });
  assert.equal(ok.status, 200, `${ok.status} ${ok.body}\n${logsOf(dir)}`);
  assert.match(String(apps.payment.last()?.headers['x-forwarded-client-cert']), new RegExp(`;URI=${ORDER}$`));
  assert.equal((await viaSidecar(order2, 'POST', `http://payment-service:${SERVICE_PORT}/admin/reset`)).status, 403);
  assert.equal((await viaSidecar(order2, 'GET', `http://payment-service:${SERVICE_PORT}/api/v1/refunds`)).status, 403);
  const plain = await rawExchange(payment2.ports.inbound, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  assert.doesNotMatch(plain.data, /^HTTP\//, 'the restarted STRICT sidecar answered plaintext');
  const ready = await (await fetch(`http://127.0.0.1:${order2.ports.admin}/ready`)).json() as { ready: boolean };
  assert.equal(ready.ready, true);

  // The control plane comes back: both reconnect on their own and are in sync.
  await mesh.startControl();
  await mesh.waitInSync(15_000);
  for (const sc of [order2, payment2]) assert.ok((await sidecarStatus(sc)).controlPlane.connected);
  assert.equal((await viaSidecar(order2, 'POST', CHARGES, { body: '{}' })).status, 200);
});

test('the quarantine list survives a control plane restart, even when changed concurrently', async () => {
  const ids = Array.from({ length: 24 }, (_, i) => id('incident', `suspect-${i}`));
  await Promise.all(ids.map((spiffeId) => mesh.admin('POST', '/v1/quarantine', { spiffeId })));
  const live = (await mesh.admin<{ quarantined: string[] }>('GET', '/v1/status')).quarantined;
  assert.deepEqual(live, [...ids].sort());
  await mesh.control!.stop();
  await mesh.startControl();
  const restored = (await mesh.admin<{ quarantined: string[] }>('GET', '/v1/status')).quarantined;
  assert.deepEqual(restored, [...ids].sort(), 'quarantine entries were lost across the restart');
  // Lifting concurrently leaves nothing behind either.
  await Promise.all(ids.map((spiffeId) => mesh.admin('POST', '/v1/quarantine', { spiffeId, lift: true })));
  await mesh.control!.stop();
  await mesh.startControl();
  assert.deepEqual((await mesh.admin<{ quarantined: string[] }>('GET', '/v1/status')).quarantined, []);
  await mesh.waitInSync(15_000);
});
