/**
 * Real sidecars driven by a fake control plane in the test process, so the tests can
 * send slices the real control plane never would:
 * - secure naming: a slice routes payment-service to an impostor (a TLS server with a
 *   valid mesh SVID of another identity); the sidecar must refuse to send (502) and the
 *   impostor must never see a request. The same address presenting the right identity
 *   is then served, so the refusal was about identity and nothing else.
 * - NACK: a version the sidecar cannot apply is NACKed with its reason and the sidecar
 *   keeps serving the previous one.
 *
 * The real control plane runs first (certificates, first slices), then stops; the fake
 * one listens on its port with a certificate for the control plane's identity issued by
 * the mesh CA, speaks the JSON-lines protocol over mTLS (ALPN ztmesh-xds/1), and the
 * sidecars reconnect to it on their own.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { XDS_ALPN, onMessages, send } from '../../src/control/protocol.js';
import type { Registration, ToControl, ToSidecar, WorkloadSlice } from '../../src/control/protocol.js';
import { App, LocalMesh, SERVICE_PORT, configDir, httpRequest, id, logsOf, meshSvid, metric, runCliAsync, sidecarStatus, sleep, teardown, tempDir, viaSidecar, waitFor , workload , startMesh } from './harness.js';
import type { SidecarHandle, TestSvid } from './harness.js';

const dir = tempDir('fakecp');
let mesh: LocalMesh;
const apps = { order: new App('order'), payment: new App('payment'), impostor: new App('impostor') };
let order: SidecarHandle, payment: SidecarHandle;
let fake: FakeControlPlane | undefined;
const ORDER = id('production', 'order-service');
const PAYMENT = id('production', 'payment-service');
const CHARGES = `http://payment-service:${SERVICE_PORT}/api/v1/charges`;

class FakeControlPlane {
  readonly server: tls.Server;
  private readonly conns = new Map<string, { socket: tls.TLSSocket; registration: Registration; peer: string; messages: ToControl[] }>();
  private waiters: (() => void)[] = [];

  constructor(cert: TestSvid, rootsPem: string) {
    this.server = tls.createServer({ key: cert.keyPem, cert: cert.chainPem, ca: rootsPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [XDS_ALPN] }, (socket) => {
      const peer = (socket.getPeerCertificate() as tls.PeerCertificate).subjectaltname ?? '';
      const messages: ToControl[] = [];
      onMessages<ToControl>(
        socket,
        (m) => {
          messages.push(m);
          if (m.type === 'hello') {
            this.conns.set(m.registration.service, { socket, registration: m.registration, peer, messages });
            send(socket, { type: 'welcome', spiffeId: peer.replace(/^URI:/, '') });
          }
          const w = this.waiters;
          this.waiters = [];
          for (const f of w) f();
        },
        () => socket.destroy(),
      );
      socket.on('error', () => socket.destroy());
    });
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  get connected(): number {
    return this.conns.size;
  }

  conn(service: string) {
    const c = this.conns.get(service);
    if (!c) throw new Error(`${service} has not said hello`);
    return c;
  }

  async waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v !== undefined) return v;
      if (Date.now() > until) throw new Error(`fake control plane: timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  /** Send a slice and resolve with the sidecar's ACK or NACK for that version. */
  async push(service: string, slice: unknown): Promise<Extract<ToControl, { type: 'ack' | 'nack' }>> {
    const c = this.conn(service);
    const from = c.messages.length;
    const version = (slice as { version?: string }).version ?? '?';
    c.socket.write(JSON.stringify({ type: 'slice', slice }) + '\n');
    return this.waitFor(`${service} to answer version ${version}`, () =>
      c.messages.slice(from).find((m): m is Extract<ToControl, { type: 'ack' | 'nack' }> => (m.type === 'ack' || m.type === 'nack') && m.version === version),
    );
  }

  close(): Promise<void> {
    for (const c of this.conns.values()) c.socket.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function configDump(sc: SidecarHandle): Promise<WorkloadSlice> {
  return JSON.parse((await httpRequest({ port: sc.ports.admin, method: 'GET', path: '/config_dump' })).body) as WorkloadSlice;
}

let cpInfo: { port: number; spiffeId: string; bundlePath: string };

before(async () => {
  ({ mesh, sidecars: [order, payment] } = await startMesh(dir, configDir(dir), apps, () => [workload('order-service', apps.order), workload('payment-service', apps.payment)]));
  cpInfo = mesh.control!.info;
  assert.equal((await viaSidecar(order, 'POST', CHARGES, { body: '{}' })).status, 200);
});

/** Swap the real control plane for the fake one, on the same port, with a genuine control-plane certificate. */
async function useFakeControlPlane(): Promise<void> {
  if (fake) return;
  const cpCert = await meshSvid(mesh, cpInfo.spiffeId);
  await mesh.control!.stop();
  const f = new FakeControlPlane(cpCert, readFileSync(cpInfo.bundlePath, 'utf8'));
  fake = f;
  await f.listen(cpInfo.port);
  await f.waitFor('both sidecars to connect to the fake control plane', () => (f.connected === 2 ? true : undefined), 15_000);
  assert.equal(f.conn('order-service').peer, `URI:${ORDER}`);
}

after(async () => {
  await teardown(mesh, dir, [{ stop: () => fake?.close() ?? Promise.resolve() }, ...Object.values(apps).map((a) => ({ stop: () => a.close() }))]);
});

test('the real control plane records a NACK with its reason and shows the sidecar out of sync until it ACKs', async () => {
  // A minimal sidecar in the test process, with a mesh certificate, speaking the stream protocol.
  const svid = await meshSvid(mesh, id('production', 'nacker'));
  const socket = tls.connect({ host: '127.0.0.1', port: cpInfo.port, key: svid.keyPem, cert: svid.chainPem, ca: readFileSync(cpInfo.bundlePath, 'utf8'), ALPNProtocols: [XDS_ALPN], checkServerIdentity: () => undefined });
  const got: ToSidecar[] = [];
  onMessages<ToSidecar>(socket, (m) => got.push(m), () => undefined);
  try {
    await new Promise<void>((r, j) => socket.once('secureConnect', () => r()).once('error', j));
    send(socket, { type: 'hello', registration: { service: 'nacker', namespace: 'production', serviceAccount: 'nacker', labels: { app: 'nacker' }, address: '127.0.0.1', port: 9, servicePort: SERVICE_PORT } });
    const slice = await waitFor('a slice', () => got.find((m): m is Extract<ToSidecar, { type: 'slice' }> => m.type === 'slice'));
    assert.equal(got[0].type, 'welcome');
    send(socket, { type: 'nack', version: slice.slice.version, error: 'test: this sidecar cannot apply AuthorizationPolicy production/x' });
    const rec = await waitFor('the NACK in /v1/sidecars', async () =>
      (await mesh.admin<{ spiffeId: string; inSync: boolean; sentVersion: string; nack: { version: string; error: string } | null }[]>('GET', '/v1/sidecars')).find((x) => x.spiffeId === svid.spiffeId && x.nack),
    );
    assert.equal(rec.nack!.version, slice.slice.version);
    assert.equal(rec.nack!.error, 'test: this sidecar cannot apply AuthorizationPolicy production/x');
    assert.equal(rec.inSync, false);
    const cli = await runCliAsync(['status', '--admin', mesh.adminUrl('/')]);
    assert.match(cli.stdout, /production\/nacker@127\.0\.0\.1:9 .*NACK/);
    send(socket, { type: 'ack', version: slice.slice.version });
    const acked = await waitFor('the ACK in /v1/sidecars', async () =>
      (await mesh.admin<{ spiffeId: string; inSync: boolean; nack: unknown }[]>('GET', '/v1/sidecars')).find((x) => x.spiffeId === svid.spiffeId && x.inSync),
    );
    assert.equal(acked.nack, null);
  } finally {
    socket.destroy();
  }
  await waitFor('the fake sidecar to be gone', async () => (await mesh.admin<unknown[]>('GET', '/v1/sidecars')).length === 2);
  await mesh.waitInSync();
});

test('secure naming: the sidecar refuses to send to an endpoint presenting another identity (502); the impostor gets nothing', async () => {
  await useFakeControlPlane();
  const attacker = await meshSvid(mesh, id('production', 'attacker'));
  const genuine = await meshSvid(mesh, PAYMENT);
  // The impostor: valid mesh certificate, trusted CA, wrong identity for payment-service.
  const impostor = https.createServer({ key: attacker.keyPem, cert: attacker.chainPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    apps.impostor.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    req.resume();
    res.end('impostor');
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  const impostorPort = (impostor.address() as AddressInfo).port;
  try {
    const base = await configDump(order);
    const svc = base.services.find((s) => s.name === 'payment-service');
    assert.ok(svc);
    assert.deepEqual(svc.spiffeIds, [PAYMENT]);
    // The route to payment-service now leads to the impostor's address; the identity it must present is unchanged.
    const slice: WorkloadSlice = {
      ...base,
      version: 'impostor-0001',
      services: base.services.map((s) => (s.name === 'payment-service' ? { ...s, endpoints: [{ address: '127.0.0.1', port: impostorPort, spiffeId: PAYMENT }] } : s)),
    };
    assert.deepEqual(await fake!.push('order-service', slice), { type: 'ack', version: 'impostor-0001' });
    assert.equal((await sidecarStatus(order)).version, 'impostor-0001');

    const failuresBefore = await metric(order, 'ztmesh_mtls_handshake_failures_total', { direction: 'outbound', reason: 'wrong_identity' });
    for (const method of ['POST', 'GET']) {
      const r = await viaSidecar(order, method, CHARGES, { body: method === 'POST' ? '{"amount": 100}' : undefined });
      assert.equal(r.status, 502, `${method}: ${r.status} ${r.body}`);
      assert.match(r.body, new RegExp(`secure naming: the server is ${id('production', 'attacker')}, not an identity of payment-service\\.production \\(${PAYMENT}\\)`));
    }
    assert.equal(apps.impostor.seen.length, 0, 'the impostor received a request');
    assert.ok((await metric(order, 'ztmesh_mtls_handshake_failures_total', { direction: 'outbound', reason: 'wrong_identity' })) >= failuresBefore + 2);

    // Control: the same address presenting payment-service's identity is served.
    impostor.setSecureContext({ key: genuine.keyPem, cert: genuine.chainPem });
    const ok = await viaSidecar(order, 'POST', CHARGES, { body: '{}' });
    assert.equal(ok.status, 200, `${ok.status} ${ok.body}`);
    assert.equal(ok.body, 'impostor');
    assert.equal(apps.impostor.seen.length, 1);
    assert.match(String(apps.impostor.seen[0].headers['x-request-id']), /./);

    // The other way round: the real payment sidecar, but the slice says payment-service must be someone else.
    const seen = apps.payment.seen.length;
    const renamed: WorkloadSlice = { ...base, version: 'renamed-0002', services: base.services.map((s) => (s.name === 'payment-service' ? { ...s, spiffeIds: [id('production', 'payment-v2')] } : s)) };
    assert.deepEqual(await fake!.push('order-service', renamed), { type: 'ack', version: 'renamed-0002' });
    const r = await viaSidecar(order, 'POST', CHARGES, { body: '{}' });
    assert.equal(r.status, 502, r.body);
    assert.match(r.body, new RegExp(`the server is ${PAYMENT}, not an identity of payment-service\\.production`));
    assert.equal(apps.payment.seen.length, seen, 'the real payment app received a request the slice did not allow');

    // Back to the real table: traffic flows again.
    assert.equal((await fake!.push('order-service', { ...base, version: 'restored-0003' })).type, 'ack');
    assert.equal((await viaSidecar(order, 'POST', CHARGES, { body: '{}' })).status, 200);
    assert.equal(apps.payment.seen.length, seen + 1);
  } finally {
    impostor.closeAllConnections();
    impostor.close();
  }
});

test('a version the sidecar cannot apply is NACKed with its reason; the sidecar keeps serving its previous version', async () => {
  await useFakeControlPlane();
  const base = await configDump(payment);
  const previous = (await sidecarStatus(payment)).version;
  assert.ok(previous);
  const nacksBefore = await metric(payment, 'ztmesh_config_updates_total', { result: 'nack' });
  const allowGet = {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'allow-get-charges', namespace: 'production' },
    spec: { selector: { matchLabels: { app: 'payment-service' } }, rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/api/v1/charges'] } }] }] },
  };

  // 1. Would open GET /api/v1/charges, but carries an action Istio does not have.
  const bad = { ...base, version: 'bad-0001', resources: [...base.resources, { ...allowGet, spec: { ...allowGet.spec, action: 'ALLOWED' } }] };
  const nack = await fake!.push('payment-service', bad);
  assert.equal(nack.type, 'nack');
  assert.equal(nack.version, 'bad-0001');
  assert.match((nack as { error: string }).error, /slice bad-0001.*spec\.action.*ALLOWED/s, (nack as { error: string }).error);
  console.log(`# NACK bad-0001: ${(nack as { error: string }).error}`);

  // 2. Structurally malformed.
  const malformed = await fake!.push('payment-service', { version: 'bad-0002', mesh: base.mesh, services: [] });
  assert.deepEqual(malformed, { type: 'nack', version: 'bad-0002', error: 'malformed slice: version, mesh, resources and services are required' });

  // 3. A kind this sidecar does not read (as from a newer control plane).
  const foreign = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'production' }, spec: {} };
  const unknown = await fake!.push('payment-service', { ...base, version: 'bad-0003', resources: [...base.resources, foreign] });
  assert.equal(unknown.type, 'nack');
  assert.match((unknown as { error: string }).error, /slice carries kinds this sidecar does not read: skipped ConfigMap/);

  // Still the previous version, with the last NACK reported; its policy still decides.
  const s = await sidecarStatus(payment);
  assert.equal(s.version, previous);
  assert.equal(s.lastNack?.version, 'bad-0003');
  assert.equal((await viaSidecar(order, 'GET', CHARGES)).status, 403, 'the refused version took effect');
  assert.equal((await viaSidecar(order, 'POST', CHARGES, { body: '{}' })).status, 200);
  assert.equal(await metric(payment, 'ztmesh_config_updates_total', { result: 'nack' }), nacksBefore + 3);
  const persisted = JSON.parse(readFileSync(`${payment.dataDir}/slice.json`, 'utf8')) as WorkloadSlice;
  assert.equal(persisted.version, previous, 'a refused version was persisted for the next restart');

  // The same change, valid, is ACKed and applied: the refusals were about validity.
  const good = await fake!.push('payment-service', { ...base, version: 'good-0004', resources: [...base.resources, allowGet] });
  assert.deepEqual(good, { type: 'ack', version: 'good-0004' });
  const after = await sidecarStatus(payment);
  assert.equal(after.version, 'good-0004');
  assert.equal(after.lastNack, null);
  const r = await viaSidecar(order, 'GET', CHARGES);
  assert.equal(r.status, 200, `${r.status} ${r.body}\n${logsOf(dir)}`);
  await waitFor('good-0004 to be persisted', () => (JSON.parse(readFileSync(`${payment.dataDir}/slice.json`, 'utf8')) as WorkloadSlice).version === 'good-0004', 2000);
});

test('versions applied back to back: the one persisted for a fail-static restart is the last one applied', async () => {
  await useFakeControlPlane();
  const base = await configDump(payment);
  const c = fake!.conn('payment-service');
  // Slices of different sizes, so the writes of the persisted copy finish in varying order.
  const N = 40;
  const versions = Array.from({ length: N }, (_, i) => `burst-${String(i).padStart(3, '0')}`);
  const filler = (i: number) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: `filler-${i}`, namespace: 'production', annotations: { pad: 'x'.repeat(((N - i) * 7919) % 200_000) } }, spec: { selector: { matchLabels: { app: 'nobody' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/nothing'] } }] }] } });
  const from = c.messages.length;
  for (let i = 0; i < N; i++) c.socket.write(JSON.stringify({ type: 'slice', slice: { ...base, version: versions[i], resources: [...base.resources, filler(i)] } }) + '\n');
  await fake!.waitFor('every burst version to be answered', () => (c.messages.slice(from).filter((m) => m.type === 'ack').length === N ? true : undefined), 20_000);
  assert.equal((await sidecarStatus(payment)).version, versions[N - 1]);
  await sleep(500);
  const persisted = JSON.parse(readFileSync(`${payment.dataDir}/slice.json`, 'utf8')) as WorkloadSlice;
  assert.equal(persisted.version, versions[N - 1], 'an older version than the one applied was persisted for the next restart');
  // Leave the sidecar on its previous table.
  assert.equal((await fake!.push('payment-service', { ...base, version: 'after-burst' })).type, 'ack');
});
