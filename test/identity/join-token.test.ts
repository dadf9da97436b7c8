import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { JoinTokenStore, MemoryTokenBackend, tokenStorePath, parseDuration } from '../../src/identity/join-token.js';
import { IdentityAuthority } from '../../src/identity/authority.js';
import { BundleSet } from '../../src/identity/bundle.js';
import { verifySvidChain } from '../../src/identity/verify.js';
import { buildCsr } from '../../src/identity/x509.js';
import { makePki, p256, tmpDir, TD } from './helpers.js';
import type { ZtmError } from '../../src/errors.js';

const reasonOf = (reason: string) => (e: ZtmError) => e.code === 'ZTM_TOKEN_INVALID' && (e.details as { reason: string }).reason === reason;

test('tokens are stored hashed, single-use, and expire', async () => {
  let now = Date.UTC(2030, 0, 1);
  const dir = tmpDir();
  const store = JoinTokenStore.inDataDir(dir, () => now);
  const t = await store.create({ namespace: 'production', serviceAccount: 'order-service', ttlMs: 10 * 60_000 });
  assert.match(t.token, /^ztmjt\./);
  const file = readFileSync(tokenStorePath(dir), 'utf8');
  assert.ok(!file.includes(t.token.split('.')[2]), 'the secret is not stored');
  assert.ok(file.includes(createHash('sha256').update(t.token).digest('hex')), 'SHA-256 is stored');

  const att = await store.consume(t.token);
  assert.deepEqual({ ns: att.namespace, sa: att.serviceAccount }, { ns: 'production', sa: 'order-service' });
  await assert.rejects(() => store.consume(t.token), reasonOf('used'), 'replay is rejected');

  const t2 = await store.create({ namespace: 'production', serviceAccount: 'order-service', ttlMs: 60_000 });
  now += 60_000;
  await assert.rejects(() => store.consume(t2.token), reasonOf('expired'));

  // Wrong secret for a real id, unknown id, malformed.
  const t3 = await store.create({ namespace: 'a', serviceAccount: 'b' });
  const forged = t3.token.slice(0, -4) + (t3.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  await assert.rejects(() => store.consume(forged), reasonOf('unknown'));
  await assert.rejects(() => store.consume('ztmjt.AAAAAAAAAAAAAAAA.' + 'A'.repeat(43)), reasonOf('unknown'));
  for (const bad of ['', 'token', t3.token + 'x', t3.token.replace('ztmjt', 'ZTMJT'), t3.token + '\n']) {
    await assert.rejects(() => store.consume(bad), reasonOf('malformed'), JSON.stringify(bad));
  }
  // The real one still works after the failed attempts.
  await store.consume(t3.token);
});

test('concurrent consumption of one token succeeds exactly once', async () => {
  const store = new JoinTokenStore(new MemoryTokenBackend());
  const t = await store.create({ namespace: 'a', serviceAccount: 'b' });
  const results = await Promise.allSettled(Array.from({ length: 10 }, () => store.consume(t.token)));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  const fileStore = JoinTokenStore.inDataDir(tmpDir());
  const t2 = await fileStore.create({ namespace: 'a', serviceAccount: 'b' });
  const r2 = await Promise.allSettled(Array.from({ length: 10 }, () => fileStore.consume(t2.token)));
  assert.equal(r2.filter((r) => r.status === 'fulfilled').length, 1);
});

test('token creation validates its binding and TTL', async () => {
  const store = new JoinTokenStore(new MemoryTokenBackend());
  await assert.rejects(() => store.create({ namespace: 'a/b', serviceAccount: 'c' }), { code: 'ZTM_USAGE' });
  await assert.rejects(() => store.create({ namespace: '..', serviceAccount: 'c' }), { code: 'ZTM_SPIFFE_ID_INVALID' });
  await assert.rejects(() => store.create({ namespace: 'a', serviceAccount: '' }), { code: 'ZTM_USAGE' });
  await assert.rejects(() => store.create({ namespace: 'a', serviceAccount: 'b', ttlMs: 25 * 3_600_000 }), { code: 'ZTM_USAGE' });
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('30s'), 30_000);
  assert.throws(() => parseDuration('ten minutes'), { code: 'ZTM_USAGE' });
});

test('bootstrap: CSR + join token → SVID for the bound identity; renewal with the current SVID', async () => {
  const { root, ca } = makePki();
  const store = new JoinTokenStore(new MemoryTokenBackend());
  const authority = new IdentityAuthority(ca, store);
  const bundles = BundleSet.of(TD, [root.der]);
  const t = await store.create({ namespace: 'production', serviceAccount: 'order-service' });

  // A CSR that asks for someone else's identity is refused, and the token survives.
  await assert.rejects(
    () => authority.issueWithJoinToken({ csr: buildCsr(p256(), ['spiffe://cluster.local/ns/kube-system/sa/admin']), token: t.token }),
    { code: 'ZTM_CA' },
  );
  // A CSR without proof of possession is refused, and the token survives.
  const badCsr = buildCsr(p256());
  badCsr[badCsr.length - 3] ^= 1;
  await assert.rejects(() => authority.issueWithJoinToken({ csr: badCsr, token: t.token }), { code: 'ZTM_CA' });

  const key = p256();
  const svid = await authority.issueWithJoinToken({ csr: buildCsr(key), token: t.token });
  assert.equal(svid.spiffeId, 'spiffe://cluster.local/ns/production/sa/order-service');
  assert.ok(verifySvidChain(svid.chain, bundles).ok);
  await assert.rejects(() => authority.issueWithJoinToken({ csr: buildCsr(p256()), token: t.token }), reasonOf('used'));

  const renewed = authority.renewWithSvid({ csr: buildCsr(p256()), currentChain: svid.chain, bundles });
  assert.equal(renewed.spiffeId, svid.spiffeId);
  assert.throws(
    () => authority.renewWithSvid({ csr: buildCsr(p256(), ['spiffe://cluster.local/ns/x/sa/y']), currentChain: svid.chain, bundles }),
    { code: 'ZTM_CA' },
  );
  assert.throws(() => authority.renewWithSvid({ csr: buildCsr(p256()), currentChain: [], bundles }), { code: 'ZTM_SVID_INVALID' });
});

test('a stale lock file left by a crashed writer is broken', async () => {
  const { writeFileSync, utimesSync } = await import('node:fs');
  const dir = tmpDir();
  const lock = tokenStorePath(dir) + '.lock';
  writeFileSync(lock, '');
  const old = new Date(Date.now() - 60_000);
  utimesSync(lock, old, old);
  const store = JoinTokenStore.inDataDir(dir);
  const t = await store.create({ namespace: 'a', serviceAccount: 'b' });
  assert.equal((await store.consume(t.token)).namespace, 'a');
});
