import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SvidRotator, type CurrentSvid } from '../../src/identity/rotation.js';
import { BundleSet } from '../../src/identity/bundle.js';
import { buildCsr } from '../../src/identity/x509.js';
import { FakeClock, makePki, p256, sleep, TD } from './helpers.js';
import { startTraffic } from './mtls-harness.js';

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const HOUR = 3_600_000;

test('renews at half lifetime minus jitter, backs off while the CA is away, keeps the cert until expiry (fake clock)', async () => {
  const clock = new FakeClock(Date.UTC(2030, 0, 1, 12, 0, 0));
  const { root, ca } = makePki(TD, clock.now());
  const bundles = BundleSet.of(TD, [root.der]);
  let caUp = true;
  let calls = 0;
  const rot = new SvidRotator({
    bundles,
    clock,
    random: () => 0.5,
    jitter: 0.1,
    backoffInitialMs: 1000,
    backoffMaxMs: 8000,
    generateKey: async () => p256(),
    issuer: async ({ csr }) => {
      calls++;
      if (!caUp) throw new Error('CA unreachable');
      return { chainPem: ca.issueFromCsr(csr, { spiffeId: ID, ttlMs: HOUR, now: clock.now() }).chainPem };
    },
  });
  const rotated: CurrentSvid[] = [];
  const failures: { attempt: number; retryInMs: number }[] = [];
  const expired: CurrentSvid[] = [];
  rot.on('rotated', (s) => rotated.push(s));
  rot.on('renewal_failed', (f) => failures.push({ attempt: f.attempt, retryInMs: f.retryInMs }));
  rot.on('expired', (s) => expired.push(s));

  const first = await rot.start();
  assert.equal(first.spiffeId, ID);
  assert.equal(rot.timeToExpiryMs(), HOUR);
  // 0.5 - 0.1 * 0.5 = 0.45 of the lifetime.
  assert.equal(rot.nextRenewalAt, clock.now() + 0.45 * HOUR);

  await clock.advance(0.45 * HOUR - 1);
  assert.equal(rotated.length, 1, 'not yet');
  assert.equal(rot.timeToExpiryMs(), 1_980_001);
  await clock.advance(1);
  assert.equal(rotated.length, 2, 'renewed exactly at 45% of the lifetime');
  const second = rot.current()!;
  assert.notEqual(second.chainPem, first.chainPem);
  assert.equal(rot.timeToExpiryMs(), HOUR);

  // CA goes away at the next renewal: exponential backoff 1s, 2s, 4s, 8s, 8s...
  caUp = false;
  const renewAt = rot.nextRenewalAt!;
  await clock.advance(renewAt - clock.now());
  assert.deepEqual(failures.map((f) => f.retryInMs), [1000]);
  await clock.advance(1000 + 2000 + 4000 + 8000 + 8000);
  assert.deepEqual(failures.map((f) => f.retryInMs), [1000, 2000, 4000, 8000, 8000, 8000]);
  assert.equal(rot.current(), second, 'still serving on the valid certificate');
  assert.ok(rot.secureContext());

  // Expiry while still failing: an event, and the time-to-expiry goes negative.
  await clock.advance(second.notAfter.getTime() - clock.now() + 1);
  assert.equal(expired.length, 1);
  assert.ok(rot.timeToExpiryMs() < 0);

  // The CA comes back: the next retry succeeds.
  caUp = true;
  await clock.advance(8000);
  assert.equal(rotated.length, 3);
  assert.ok(rot.timeToExpiryMs() > 0.99 * HOUR);
  assert.ok(calls > 8);
  rot.stop();
  assert.deepEqual(clock.pending(), [], 'stop clears timers');
});

test('jitter spreads renewals within [40%, 50%] of the lifetime', async () => {
  for (const r of [0, 0.25, 0.999]) {
    const clock = new FakeClock();
    const { root, ca } = makePki(TD, clock.now());
    const rot = new SvidRotator({
      bundles: BundleSet.of(TD, [root.der]),
      clock,
      random: () => r,
      generateKey: async () => p256(),
      issuer: async ({ csr }) => ({ chainPem: ca.issueFromCsr(csr, { spiffeId: ID, ttlMs: HOUR, now: clock.now() }).chainPem }),
    });
    await rot.start();
    const frac = (rot.nextRenewalAt! - clock.now()) / HOUR;
    assert.ok(Math.abs(frac - (0.5 - 0.1 * r)) < 1e-9, `random ${r}: ${frac}`);
    rot.stop();
  }
});

test('first issuance retries until the CA answers; invalid SVIDs from the CA are refused', async () => {
  const clock = new FakeClock();
  const { root, ca } = makePki(TD, clock.now());
  const other = makePki(TD, clock.now());
  let mode: 'down' | 'wrong-key' | 'untrusted' | 'ok' = 'down';
  const rot = new SvidRotator({
    bundles: BundleSet.of(TD, [root.der]),
    clock,
    generateKey: async () => p256(),
    issuer: async ({ csr }) => {
      if (mode === 'down') throw new Error('ECONNREFUSED');
      if (mode === 'wrong-key') return { chainPem: ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID, now: clock.now() }).chainPem };
      if (mode === 'untrusted') return { chainPem: other.ca.issueFromCsr(csr, { spiffeId: ID, now: clock.now() }).chainPem };
      return { chainPem: ca.issueFromCsr(csr, { spiffeId: ID, now: clock.now() }).chainPem };
    },
  });
  const errors: string[] = [];
  rot.on('renewal_failed', (f) => errors.push(f.error.message));
  const started = rot.start();
  await clock.advance(0);
  mode = 'wrong-key';
  await clock.advance(1000);
  mode = 'untrusted';
  await clock.advance(2000);
  mode = 'ok';
  await clock.advance(4000);
  const s = await started;
  assert.equal(s.spiffeId, ID);
  assert.equal(errors.length, 3);
  assert.match(errors[1], /different key/);
  assert.match(errors[2], /untrusted/);
  assert.throws(() => new SvidRotator({ bundles: new BundleSet(), issuer: async () => ({ chainPem: '' }) }).secureContext(), { code: 'ZTM_SVID_INVALID' });
  rot.stop();
});

test('rotation under continuous mTLS traffic on loopback: zero failed handshakes or requests', async () => {
  const { root, ca } = makePki();
  const serverBundles = BundleSet.of(TD, [root.der]);
  const clientBundles = BundleSet.of(TD, [root.der]);
  const mk = (id: string, bundles: BundleSet) =>
    new SvidRotator({
      bundles,
      issuer: async ({ csr }) => ({ chainPem: ca.issueFromCsr(csr, { spiffeId: id, ttlMs: 2000 }).chainPem }),
    });
  const serverRot = mk('spiffe://cluster.local/ns/default/sa/server', serverBundles);
  const clientRot = mk('spiffe://cluster.local/ns/default/sa/client', clientBundles);
  let rotations = 0;
  serverRot.on('rotated', () => rotations++);
  clientRot.on('rotated', () => rotations++);
  await Promise.all([serverRot.start(), clientRot.start()]);
  const h = await startTraffic(serverRot, clientRot, serverBundles, clientBundles);
  await sleep(4500);
  const stats = await h.stop();
  serverRot.stop();
  clientRot.stop();
  assert.deepEqual(stats.failures, []);
  assert.ok(rotations >= 6, `rotations: ${rotations}`);
  assert.ok(stats.handshakes > 50, `handshakes: ${stats.handshakes}`);
  assert.ok(stats.serverCertSerials.size >= 3, `server certs seen by clients: ${stats.serverCertSerials.size}`);
  assert.ok(stats.clientCertSerials.size >= 3, `client certs seen by server: ${stats.clientCertSerials.size}`);
  assert.ok(stats.longLivedRoundTrips > 20, 'the long-lived connection kept working across rotations');
  assert.deepEqual([...stats.serverIds], ['spiffe://cluster.local/ns/default/sa/server']);
  assert.deepEqual([...stats.clientIds], ['spiffe://cluster.local/ns/default/sa/client']);
});
