import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SvidRotator } from '../../src/identity/rotation.js';
import { BundleSet } from '../../src/identity/bundle.js';
import { verifySvidChain } from '../../src/identity/verify.js';
import type { CertificateAuthority } from '../../src/identity/ca.js';
import { makePki, p256, sleep, TD } from './helpers.js';
import { buildCsr } from '../../src/identity/x509.js';
import { startTraffic } from './mtls-harness.js';

test('root rotation (add new root, re-issue, retire old) under loopback mTLS traffic: zero failures', async () => {
  const a = makePki();
  const b = makePki();
  let current: CertificateAuthority = a.ca;
  // Each workload holds its own bundle, as they would in separate processes.
  const serverBundles = BundleSet.of(TD, [a.root.der]);
  const clientBundles = BundleSet.of(TD, [a.root.der]);
  const mk = (id: string, bundles: BundleSet) =>
    new SvidRotator({
      bundles,
      issuer: async ({ csr }) => ({ chainPem: current.issueFromCsr(csr, { spiffeId: id, ttlMs: 3_600_000 }).chainPem }),
    });
  const serverRot = mk('spiffe://cluster.local/ns/default/sa/server', serverBundles);
  const clientRot = mk('spiffe://cluster.local/ns/default/sa/client', clientBundles);
  await Promise.all([serverRot.start(), clientRot.start()]);
  const h = await startTraffic(serverRot, clientRot, serverBundles, clientBundles);
  await sleep(300);

  // 1. Distribute the new root everywhere (both roots trusted).
  serverBundles.addRoot(TD, b.root.der);
  clientBundles.addRoot(TD, b.root.der);
  await sleep(300);

  // 2. The CA switches to the new root; workloads re-issue one at a time (mixed period).
  current = b.ca;
  await serverRot.rotateNow();
  await sleep(300);
  await clientRot.rotateNow();
  await sleep(300);
  for (const r of [serverRot, clientRot]) {
    assert.ok(verifySvidChain(r.current()!.chain, BundleSet.of(TD, [b.root.der])).ok, 'now issued under the new root');
  }

  // 3. Retire the old root.
  serverBundles.removeRoot(TD, a.root.der);
  clientBundles.removeRoot(TD, a.root.der);
  await sleep(300);

  const stats = await h.stop();
  serverRot.stop();
  clientRot.stop();
  assert.deepEqual(stats.failures, []);
  assert.ok(stats.handshakes > 30, `handshakes: ${stats.handshakes}`);
  assert.equal(stats.serverCertSerials.size, 2, 'clients saw the old and the new server certificate');
  assert.equal(stats.clientCertSerials.size, 2, 'server saw the old and the new client certificate');
  assert.ok(stats.longLivedRoundTrips > 20);
  // A certificate from the retired root no longer verifies.
  const old = a.ca.issueFromCsr(buildCsr(p256()), { spiffeId: 'spiffe://cluster.local/ns/x/sa/y' });
  const r = verifySvidChain(old.chain, serverBundles);
  assert.equal(r.ok ? 'ok' : r.reason, 'untrusted');
});

test('retiring the old root too early is caught (control: the harness does detect failures)', async () => {
  const a = makePki();
  const b = makePki();
  const serverBundles = BundleSet.of(TD, [a.root.der]);
  const clientBundles = BundleSet.of(TD, [a.root.der]);
  const serverRot = new SvidRotator({ bundles: serverBundles, issuer: async ({ csr }) => ({ chainPem: a.ca.issueFromCsr(csr, { spiffeId: 'spiffe://cluster.local/ns/d/sa/s' }).chainPem }) });
  const clientRot = new SvidRotator({ bundles: clientBundles, issuer: async ({ csr }) => ({ chainPem: a.ca.issueFromCsr(csr, { spiffeId: 'spiffe://cluster.local/ns/d/sa/c' }).chainPem }) });
  await Promise.all([serverRot.start(), clientRot.start()]);
  const h = await startTraffic(serverRot, clientRot, serverBundles, clientBundles, 1);
  await sleep(200);
  // The server drops root A while the client still presents an A-issued certificate.
  serverBundles.addRoot(TD, b.root.der);
  serverBundles.removeRoot(TD, a.root.der);
  await sleep(300);
  const stats = await h.stop();
  serverRot.stop();
  clientRot.stop();
  assert.ok(stats.failures.length > 0, 'handshakes fail when the old root is retired before re-issuance');
});
