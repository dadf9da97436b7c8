import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto, generateKeyPairSync } from 'node:crypto';
import * as px509 from '@peculiar/x509';
import { initCa, loadCa, importCa, createRootCa, createIntermediateCa, CertificateAuthority, caPaths, HOUR, DAY } from '../../src/identity/ca.js';
import { buildCsr, toPem, parseCertificate, parseCsr, CsrError } from '../../src/identity/x509.js';
import { BundleSet } from '../../src/identity/bundle.js';
import { verifySvidChain } from '../../src/identity/verify.js';
import { makePki, p256, tmpDir, TD } from './helpers.js';

px509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof px509.cryptoProvider.set>[0]);

const ID = 'spiffe://cluster.local/ns/production/sa/order-service';

test('issued SVIDs pass an independent reader: openssl x509 -text and openssl verify', () => {
  const { root, inter, ca } = makePki();
  const svid = ca.issueFromCsr(buildCsr(p256(), [ID]), { spiffeId: ID });
  const dir = tmpDir();
  writeFileSync(join(dir, 'leaf.pem'), toPem(svid.certificate));
  writeFileSync(join(dir, 'int.pem'), toPem(inter.der));
  writeFileSync(join(dir, 'root.pem'), toPem(root.der));
  const text = execFileSync('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-text', '-noout'], { encoding: 'utf8' });
  assert.match(text, /Version: 3/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\s*\n/);
  assert.doesNotMatch(text, /Certificate Sign|CRL Sign/);
  assert.match(text, /X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
  const sans = text.match(/URI:[^\s,]+/g) ?? [];
  assert.deepEqual(sans, [`URI:${ID}`], 'exactly one URI SAN');
  assert.doesNotMatch(text, /DNS:|IP Address:/);
  assert.match(text, /NIST CURVE: P-256/);
  const verify = execFileSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'int.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
  assert.match(verify, /leaf\.pem: OK/);
  // The CA certificates, too.
  const rootText = execFileSync('openssl', ['x509', '-in', join(dir, 'root.pem'), '-text', '-noout'], { encoding: 'utf8' });
  assert.match(rootText, /CA:TRUE/);
  assert.match(rootText, /Certificate Sign, CRL Sign/);
  const intText = execFileSync('openssl', ['x509', '-in', join(dir, 'int.pem'), '-text', '-noout'], { encoding: 'utf8' });
  assert.match(intText, /CA:TRUE, pathlen:0/);
  assert.match(intText, /URI:spiffe:\/\/cluster\.local\n/);
});

test('@peculiar/x509 reads the same extensions', async () => {
  const { ca, inter } = makePki();
  const svid = ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID });
  const c = new px509.X509Certificate(svid.certificate);
  const bc = c.getExtension(px509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, false);
  assert.equal(bc.critical, true);
  const ku = c.getExtension(px509.KeyUsagesExtension)!;
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, px509.KeyUsageFlags.digitalSignature);
  const eku = c.getExtension(px509.ExtendedKeyUsageExtension)!;
  assert.deepEqual([...eku.usages].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  const san = c.getExtension(px509.SubjectAlternativeNameExtension)!;
  assert.deepEqual(
    san.names.items.map((n) => [n.type, n.value]),
    [['url', ID]],
  );
  const issuer = new px509.X509Certificate(inter.der);
  assert.equal(await c.verify({ publicKey: issuer.publicKey, signatureOnly: true }), true);
});

test('lifetime: default 1 h, configurable, capped at 24 h, never outliving the issuer', () => {
  const now = Date.now();
  const { ca } = makePki(TD, now);
  const k = p256();
  const csr = buildCsr(k);
  const life = (ttlMs?: number, at = now) => {
    const s = ca.issueFromCsr(csr, { spiffeId: ID, ttlMs, now: at });
    return s.notAfter.getTime() - s.notBefore.getTime();
  };
  assert.equal(life(), HOUR);
  assert.equal(life(10 * 60_000), 10 * 60_000);
  assert.equal(life(48 * HOUR), 24 * HOUR);
  // An intermediate that expires in 30 minutes bounds every leaf.
  const root = createRootCa({ trustDomain: TD, now });
  const shortInt = createIntermediateCa(root, { trustDomain: TD, now, ttlMs: 30 * 60_000 });
  const shortCa = new CertificateAuthority({ trustDomain: TD, roots: [root.der], chain: [shortInt.der], signingKey: shortInt.key });
  const s = shortCa.issueFromCsr(csr, { spiffeId: ID, now });
  assert.ok(s.notAfter.getTime() <= shortInt.parsed.notAfter.getTime());
  assert.throws(() => shortCa.issueFromCsr(csr, { spiffeId: ID, now: now + HOUR }), { code: 'ZTM_CA' });
  // A CA with a lower cap.
  const capped = new CertificateAuthority({ trustDomain: TD, roots: [root.der], chain: [shortInt.der], signingKey: shortInt.key, maxTtlMs: 5 * 60_000 });
  const c2 = capped.issueFromCsr(csr, { spiffeId: ID, now, ttlMs: HOUR });
  assert.equal(c2.notAfter.getTime() - c2.notBefore.getTime(), 5 * 60_000);
});

test('proof of possession: a CSR with a bad signature or a foreign key is refused', () => {
  const { ca } = makePki();
  const csr = buildCsr(p256(), [ID]);
  const tampered = Buffer.from(csr);
  tampered[tampered.length - 5] ^= 0x01; // flip a bit in the signature
  assert.throws(() => ca.issueFromCsr(tampered, { spiffeId: ID }), (e: { code: string; details: { reason: string } }) => e.code === 'ZTM_CA' && e.details.reason === 'csr_bad_signature');
  // Flip a bit in the public key: the signature no longer verifies under it.
  const t2 = Buffer.from(csr);
  const off = t2.indexOf(Buffer.from([0x03, 0x42, 0x00, 0x04])) + 10;
  t2[off] ^= 0x01;
  assert.throws(() => parseCsr(t2), (e: CsrError) => e instanceof CsrError && (e.reason === 'bad_signature' || e.reason === 'bad_key'));
  assert.throws(() => ca.issueFromCsr(Buffer.from('garbage'), { spiffeId: ID }), { code: 'ZTM_CA' });
  // Small RSA keys are refused.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  assert.throws(() => ca.issueFromCsr(buildCsr(rsa), { spiffeId: ID }), { code: 'ZTM_CA' });
  // The CSR may not ask for a different identity.
  assert.throws(() => ca.issueFromCsr(buildCsr(p256(), ['spiffe://cluster.local/ns/x/sa/admin']), { spiffeId: ID }), { code: 'ZTM_CA' });
  // Wrong trust domain for this CA; bare trust-domain ID.
  assert.throws(() => ca.issueFromCsr(buildCsr(p256()), { spiffeId: 'spiffe://other.td/ns/a/sa/b' }), { code: 'ZTM_CA' });
  assert.throws(() => ca.issueFromCsr(buildCsr(p256()), { spiffeId: 'spiffe://cluster.local' }), { code: 'ZTM_CA' });
  // P-384, Ed25519 and RSA-2048 workload keys are accepted.
  ca.issueFromCsr(buildCsr(generateKeyPairSync('ed25519').privateKey), { spiffeId: ID });
  ca.issueFromCsr(buildCsr(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey), { spiffeId: ID });
  ca.issueFromCsr(buildCsr(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), { spiffeId: ID });
});

test('ca init writes sealed keys; load needs the passphrase; issued SVIDs verify', async () => {
  const dir = tmpDir();
  const ca = await initCa(dir, { passphrase: 'correct horse', trustDomain: 'example.org' });
  const p = caPaths(dir);
  for (const f of [p.rootKey, p.signingKey]) {
    const text = readFileSync(f, 'utf8');
    assert.doesNotMatch(text, /PRIVATE KEY/);
    const env = JSON.parse(text);
    assert.equal(env.cipher, 'aes-256-gcm');
    assert.equal(env.kdf.name, 'scrypt');
  }
  const root = parseCertificate(ca.roots[0]);
  assert.equal(Math.round((root.notAfter.getTime() - root.notBefore.getTime()) / DAY), 3650);
  assert.equal(Math.round((ca.signing.notAfter.getTime() - ca.signing.notBefore.getTime()) / DAY), 365);
  assert.equal(ca.signing.basicConstraints?.pathLen, 0);
  await assert.rejects(() => initCa(dir, { passphrase: 'x' }), { code: 'ZTM_CA' });
  await assert.rejects(() => loadCa(dir, 'wrong'), { code: 'ZTM_CA' });
  const loaded = await loadCa(dir, 'correct horse');
  const svid = loaded.issueFromCsr(buildCsr(p256()), { spiffeId: 'spiffe://example.org/ns/a/sa/b' });
  const v = verifySvidChain(svid.chain, BundleSet.of('example.org', loaded.roots));
  assert.ok(v.ok, JSON.stringify(v));
});

test('ca import plugs in an external CA (encrypted PKCS#8 key) and refuses mismatches', async () => {
  const root = createRootCa({ trustDomain: 'corp.example' });
  const inter = createIntermediateCa(root, { trustDomain: 'corp.example' });
  const other = createRootCa({ trustDomain: 'corp.example' });
  const keyPem = inter.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'kp' }) as string;
  const dir = tmpDir();
  await assert.rejects(
    () => importCa(dir, { rootPem: toPem(other.der), certPem: toPem(inter.der), keyPem, keyPassphrase: 'kp', passphrase: 'p' }),
    { code: 'ZTM_CA' },
  );
  await assert.rejects(
    () => importCa(dir, { rootPem: toPem(root.der), certPem: toPem(inter.der), keyPem: p256().export({ type: 'pkcs8', format: 'pem' }) as string, passphrase: 'p' }),
    { code: 'ZTM_CA' },
  );
  assert.deepEqual(readdirSync(dir), [], 'nothing written on failure');
  const ca = await importCa(dir, { rootPem: toPem(root.der), certPem: toPem(inter.der), keyPem, keyPassphrase: 'kp', passphrase: 'p' });
  assert.equal(ca.trustDomain, 'corp.example');
  const loaded = await loadCa(dir, 'p');
  const svid = loaded.issueFromCsr(buildCsr(p256()), { spiffeId: 'spiffe://corp.example/ns/a/sa/b' });
  assert.ok(verifySvidChain(svid.chain, BundleSet.of('corp.example', [root.der])).ok);
});
