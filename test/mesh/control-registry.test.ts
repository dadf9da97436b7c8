/**
 * The control plane's registry of workloads, driven by minimal stream clients (with
 * certificates from its CA) against an in-process control plane, so options such as the
 * restart grace period can be set directly:
 * - after a restart, endpoints registered before it are served until their sidecars
 *   re-register or the grace period ends (the first sidecar back is not sent a table
 *   missing everyone who has not reconnected yet);
 * - a workload that opens a new stream while the old one is still open stays registered.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { readFileSync, rmSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { ControlPlane } from '../../src/control/server.js';
import { XDS_ALPN, onMessages, send } from '../../src/control/protocol.js';
import type { ToSidecar, WorkloadSlice } from '../../src/control/protocol.js';
import { buildCsr, loadCa } from '../../src/identity/index.js';
import { configDir, id, tempDir, waitFor, SERVICE_PORT } from './harness.js';

const dir = tempDir('registry');
const passphrase = 'test-passphrase-restored-endpoints';
const cfg = configDir(dir);
const dataDir = join(dir, 'control');
const open: { stop(): Promise<void> | void }[] = [];

after(async () => {
  for (const x of open.reverse()) await x.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function startControl(port = 0, graceMs = 1500) {
  const cp = new ControlPlane({ configPaths: [cfg], dataDir, passphrase, port, adminPort: 0, reconnectGraceMs: graceMs, watch: false });
  const info = await cp.start();
  open.push({ stop: () => cp.stop() });
  return { cp, info };
}

/** A minimal sidecar: registers, ACKs every slice, keeps them. */
async function fakeSidecar(port: number, bundlePath: string, service: string, inboundPort: number) {
  const ca = await loadCa(dataDir, passphrase);
  const spiffeId = id('production', service);
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const svid = ca.issueFromCsr(buildCsr(key, [spiffeId]), { spiffeId });
  const socket = tls.connect({ host: '127.0.0.1', port, key: key.export({ type: 'pkcs8', format: 'pem' }) as string, cert: svid.chainPem, ca: readFileSync(bundlePath, 'utf8'), ALPNProtocols: [XDS_ALPN], checkServerIdentity: () => undefined });
  const slices: WorkloadSlice[] = [];
  onMessages<ToSidecar>(
    socket,
    (m) => {
      if (m.type !== 'slice') return;
      slices.push(m.slice);
      send(socket, { type: 'ack', version: m.slice.version });
    },
    () => socket.destroy(),
  );
  await new Promise<void>((r, j) => socket.once('secureConnect', () => r()).once('error', j));
  send(socket, { type: 'hello', registration: { service, namespace: 'production', serviceAccount: service, labels: { app: service }, address: '127.0.0.1', port: inboundPort, servicePort: SERVICE_PORT } });
  const h = {
    slices,
    endpoints: (svc: string) => slices[slices.length - 1]?.services.find((s) => s.name === svc)?.endpoints.map((e) => e.port) ?? [],
    stop: () => void socket.destroy(),
  };
  open.push(h);
  return h;
}

test('after a restart, endpoints whose sidecars have not reconnected are served until they do or the grace period ends', async () => {
  const first = await startControl();
  const a = await fakeSidecar(first.info.port, first.info.bundlePath, 'svc-a', 10001);
  const b = await fakeSidecar(first.info.port, first.info.bundlePath, 'svc-b', 10002);
  const c = await fakeSidecar(first.info.port, first.info.bundlePath, 'svc-c', 10003);
  await waitFor('a to see b and c', () => a.endpoints('svc-b').length === 1 && a.endpoints('svc-c').length === 1);
  // c leaves for good while the control plane is up: it must not come back after the restart.
  c.stop();
  await waitFor('a to see c leave', () => a.endpoints('svc-c').length === 0);

  // The control plane stops (its own shutdown drops every stream) and restarts on the same port.
  await first.cp.stop();
  a.stop();
  b.stop();
  const second = await startControl(first.info.port);
  const a2 = await fakeSidecar(second.info.port, second.info.bundlePath, 'svc-a', 10001);
  await waitFor('a slice after the restart', () => a2.slices.length > 0);
  assert.deepEqual(a2.endpoints('svc-b'), [10002], 'the first sidecar back was sent a table without svc-b');
  assert.deepEqual(a2.endpoints('svc-c'), [], 'an endpoint that left before the restart came back');
  // Only live sidecars are listed.
  assert.deepEqual(second.cp.status().sidecars.map((s) => s.service), ['svc-a']);

  // b comes back: one endpoint, not two.
  const b2 = await fakeSidecar(second.info.port, second.info.bundlePath, 'svc-b', 10002);
  await waitFor('b to get its slice', () => b2.slices.length > 0);
  assert.deepEqual(a2.endpoints('svc-b'), [10002]);
  b2.stop();
  await waitFor('a to see b leave', () => a2.endpoints('svc-b').length === 0);

  // A third start: b had left before the stop, so only a is remembered; a never comes back
  // and is dropped when the grace period (800 ms here) ends.
  await second.cp.stop();
  a2.stop();
  const t0 = Date.now();
  const third = await startControl(first.info.port, 800);
  const b3 = await fakeSidecar(third.info.port, third.info.bundlePath, 'svc-b', 10002);
  await waitFor('b to get a slice', () => b3.slices.length > 0);
  assert.deepEqual(b3.endpoints('svc-a'), [10001], 'svc-a was registered when the control plane stopped');
  await waitFor('svc-a to be dropped after the grace period', () => b3.endpoints('svc-a').length === 0, 5000);
  console.log(`# restored endpoints: served across the restart; a sidecar that never came back dropped ${Date.now() - t0} ms after the third start (grace 800 ms)`);
});

test('a sidecar that re-registers while the control plane still holds its old stream stays registered', async () => {
  const { cp, info } = await startControl();
  const watcher = await fakeSidecar(info.port, info.bundlePath, 'svc-w', 10011);
  const old = await fakeSidecar(info.port, info.bundlePath, 'svc-x', 10012);
  await waitFor('the watcher to see svc-x', () => watcher.endpoints('svc-x').length === 1);
  // The same workload opens a new stream (e.g. after a network blip it noticed first);
  // the control plane replaces the old stream with the new one.
  const fresh = await fakeSidecar(info.port, info.bundlePath, 'svc-x', 10012);
  await waitFor('the new stream to get a slice', () => fresh.slices.length > 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(cp.status().sidecars.map((s) => s.id).sort(), ['production/svc-w@127.0.0.1:10011', 'production/svc-x@127.0.0.1:10012'], 'the re-registered workload vanished from the registry');
  assert.deepEqual(watcher.endpoints('svc-x'), [10012], 'the re-registered workload vanished from the other sidecars\' tables');
  old.stop();
  await cp.stop();
});
