/**
 * Inbound mTLS modes with real processes: STRICT refuses plaintext and certificates from
 * a CA the mesh does not trust (and counts it in /metrics); PERMISSIVE serves plaintext
 * and mTLS on one port, and the app only ever sees an x-forwarded-client-cert the
 * sidecar wrote itself.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { App, LocalMesh, SERVICE_PORT, configDir, foreignCa, httpRequest, id, logsOf, meshSvid, metric, mtlsRequest, rawExchange, sidecarStatus, teardown, tempDir, viaSidecar, waitFor, writeConfig , workload , startMesh } from './harness.js';
import type { SidecarHandle, TestSvid } from './harness.js';

const dir = tempDir('mtls');
let mesh: LocalMesh;
const apps = { order: new App('order'), payment: new App('payment'), legacy: new App('legacy'), client: new App('client') };
let order: SidecarHandle, payment: SidecarHandle, legacy: SidecarHandle, client: SidecarHandle;
const ORDER = id('production', 'order-service');
const CLIENT = id('staging', 'client');
let cfg: string;
const STAGING = `# staging: plaintext and mTLS both accepted; no authorization policies (allow all)
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: staging}
spec:
  mtls: {mode: PERMISSIVE}
`;

before(async () => {
  cfg = configDir(dir);
  writeConfig(cfg, '60-staging.yaml', STAGING);
  ({ mesh, sidecars: [order, payment, legacy, client] } = await startMesh(dir, cfg, apps, () => [
    workload('order-service', apps.order),
    workload('payment-service', apps.payment),
    workload('legacy', apps.legacy, { namespace: 'staging' }),
    workload('client', apps.client, { namespace: 'staging' }),
  ]));
});

after(async () => {
  await teardown(mesh, dir, Object.values(apps).map((a) => ({ stop: () => a.close() })));
});

const failures = (sc: SidecarHandle, reason: string) => metric(sc, 'ztmesh_mtls_handshake_failures_total', { direction: 'inbound', reason });

test('STRICT: a mesh peer gets through (the control case for the refusals below)', async () => {
  assert.equal((await sidecarStatus(payment)).mtlsMode?.mode, 'STRICT');
  const r = await viaSidecar(order, 'POST', `http://payment-service:${SERVICE_PORT}/api/v1/charges`, { body: '{}' });
  assert.equal(r.status, 200, `${r.status} ${r.body}\n${logsOf(dir)}`);
  assert.match(String(apps.payment.last()?.headers['x-forwarded-client-cert']), new RegExp(`URI=${ORDER}$`));
});

test('STRICT refuses plaintext on the inbound port and counts it', async () => {
  const before = await failures(payment, 'plaintext_refused');
  const seen = apps.payment.seen.length;
  const r = await rawExchange(payment.ports.inbound, `POST /api/v1/charges HTTP/1.1\r\nhost: payment-service\r\ncontent-length: 0\r\n\r\n`);
  assert.doesNotMatch(r.data, /^HTTP\//, `plaintext got an HTTP answer from a STRICT port: ${JSON.stringify(r.data)}`);
  // Node's HTTP client sees the same refusal as a transport error, never a response.
  await assert.rejects(httpRequest({ port: payment.ports.inbound, method: 'GET', path: '/api/v1/charges' }), /socket hang up|ECONNRESET|EPIPE/);
  assert.equal(apps.payment.seen.length, seen, 'the app behind a STRICT sidecar received a plaintext request');
  assert.ok((await failures(payment, 'plaintext_refused')) >= before + 2, 'ztmesh_mtls_handshake_failures_total{reason="plaintext_refused"} did not count both refusals');
});

test('STRICT refuses a client whose certificate comes from an untrusted CA, even with a valid-looking SPIFFE ID', async () => {
  // Same trust domain, same SPIFFE ID as the allowed caller: only the CA differs.
  const forged: TestSvid = foreignCa().issue(ORDER);
  const before = await failures(payment, 'untrusted');
  const seen = apps.payment.seen.length;
  await assert.rejects(mtlsRequest(payment.ports.inbound, forged, 'POST', '/api/v1/charges'), /socket hang up|ECONNRESET|EPIPE|certificate|alert/i);
  assert.equal(apps.payment.seen.length, seen, 'the app received a request from an untrusted certificate');
  assert.ok((await failures(payment, 'untrusted')) >= before + 1, 'ztmesh_mtls_handshake_failures_total{reason="untrusted"} did not count the refusal');

  // The same client code with a certificate from the mesh CA is admitted: the refusal was about trust.
  const genuine = await meshSvid(mesh, ORDER);
  const ok = await mtlsRequest(payment.ports.inbound, genuine, 'POST', '/api/v1/charges');
  assert.equal(ok.status, 200, ok.body);
  assert.equal(apps.payment.seen.length, seen + 1);
});

test('STRICT refuses a client that presents no certificate at all', async () => {
  const seen = apps.payment.seen.length;
  const before = await metric(payment, 'ztmesh_mtls_handshake_failures_total', { direction: 'inbound' });
  await assert.rejects(mtlsRequest(payment.ports.inbound, { keyPem: '', chainPem: '' } as TestSvid, 'POST', '/api/v1/charges'));
  assert.equal(apps.payment.seen.length, seen);
  assert.ok((await metric(payment, 'ztmesh_mtls_handshake_failures_total', { direction: 'inbound' })) > before);
});

test('PERMISSIVE serves plaintext on the mesh port; the app gets no x-forwarded-client-cert', async () => {
  assert.equal((await sidecarStatus(legacy)).mtlsMode?.mode, 'PERMISSIVE');
  const r = await httpRequest({ port: legacy.ports.inbound, method: 'GET', path: '/hello', headers: { host: 'legacy.staging' } });
  assert.equal(r.status, 200, r.body);
  const seen = apps.legacy.last()!;
  assert.equal(seen.url, '/hello');
  assert.equal(seen.headers['x-forwarded-client-cert'], undefined);
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
});

test('PERMISSIVE strips a client-supplied x-forwarded-client-cert on plaintext', async () => {
  const forged = `By=spiffe://${'cluster.local'}/ns/staging/sa/legacy;Hash=00;URI=${id('production', 'payment-service')}`;
  const r = await httpRequest({ port: legacy.ports.inbound, method: 'GET', path: '/forged', headers: { host: 'legacy.staging', 'x-forwarded-client-cert': forged } });
  assert.equal(r.status, 200, r.body);
  const seen = apps.legacy.last()!;
  assert.equal(seen.url, '/forged');
  assert.equal(seen.headers['x-forwarded-client-cert'], undefined, 'a forged XFCC reached the app');
  assert.ok(!seen.rawHeaders.some((h) => h.toLowerCase() === 'x-forwarded-client-cert'));
});

test('PERMISSIVE serves mTLS on the same port: the app gets the verified identity, never the forged one', async () => {
  const forged = `URI=${id('production', 'payment-service')}`;
  // Through the client's sidecar (its outbound drops the app's XFCC; legacy's inbound writes the real one).
  const r = await viaSidecar(client, 'GET', `http://legacy.staging:${SERVICE_PORT}/via-mesh`, { headers: { 'x-forwarded-client-cert': forged } });
  assert.equal(r.status, 200, `${r.status} ${r.body}\n${logsOf(dir)}`);
  let seen = apps.legacy.last()!;
  assert.equal(seen.url, '/via-mesh');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  assert.match(String(seen.headers['x-forwarded-client-cert']), new RegExp(`^By=${id('staging', 'legacy')};Hash=[0-9a-f]{64};URI=${CLIENT}$`));
  assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-client-cert').length, 1);

  // Straight to the same inbound port with an mTLS client and a forged header.
  const svid = await meshSvid(mesh, CLIENT);
  const d = await mtlsRequest(legacy.ports.inbound, svid, 'GET', '/direct-mtls', { 'x-forwarded-client-cert': forged });
  assert.equal(d.status, 200, d.body);
  seen = apps.legacy.last()!;
  assert.equal(seen.url, '/direct-mtls');
  assert.match(String(seen.headers['x-forwarded-client-cert']), new RegExp(`;URI=${CLIENT}$`));
  assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-client-cert').length, 1);
});

test('PERMISSIVE still refuses TLS with a certificate the mesh does not trust', async () => {
  const seen = apps.legacy.seen.length;
  const before = await failures(legacy, 'untrusted');
  await assert.rejects(mtlsRequest(legacy.ports.inbound, foreignCa().issue(CLIENT), 'GET', '/untrusted'));
  assert.equal(apps.legacy.seen.length, seen);
  assert.ok((await failures(legacy, 'untrusted')) >= before + 1);
});

test('switching PERMISSIVE to STRICT also refuses plaintext keep-alive connections opened before the switch', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (path: string) =>
    new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: legacy.ports.inbound, path, agent, headers: { host: 'legacy.staging' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      });
      req.on('error', reject);
      req.end();
    });
  try {
    assert.deepEqual(await get('/before-1'), { status: 200, reused: false });
    assert.deepEqual(await get('/before-2'), { status: 200, reused: true });
    const v = (await sidecarStatus(legacy)).version;
    writeConfig(cfg, '60-staging.yaml', STAGING.replace('PERMISSIVE', 'STRICT'));
    await waitFor('legacy to apply STRICT', async () => {
      const s = await sidecarStatus(legacy);
      return s.version !== v && s.mtlsMode?.mode === 'STRICT';
    });
    const seen = apps.legacy.count((r) => r.url === '/after');
    const refusedBefore = await failures(legacy, 'plaintext_refused');
    // The old plaintext connection is no longer served (a fresh one would be reset during the handshake).
    const after = await get('/after').catch((e: Error) => e);
    assert.ok(after instanceof Error, `a plaintext request on a connection opened under PERMISSIVE was served after STRICT applied: ${JSON.stringify(after)}`);
    assert.equal(apps.legacy.count((r) => r.url === '/after'), seen, 'the app received a plaintext request after STRICT applied');
    assert.ok((await failures(legacy, 'plaintext_refused')) > refusedBefore);
    await assert.rejects(get('/after-fresh'));
  } finally {
    agent.destroy();
    writeConfig(cfg, '60-staging.yaml', STAGING);
    await waitFor('legacy back to PERMISSIVE', async () => (await sidecarStatus(legacy)).mtlsMode?.mode === 'PERMISSIVE');
  }
});
