import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifySvidChain, SVID_REJECT_REASONS, IntermediateCache } from '../../src/identity/verify.js';
import { BundleSet, parseSpiffeBundle } from '../../src/identity/bundle.js';
import { createIntermediateCa, createRootCa } from '../../src/identity/ca.js';
import { buildCsr, toPem } from '../../src/identity/x509.js';
import { makeLeaf, makePki, p256, TD } from './helpers.js';

const ID = 'spiffe://cluster.local/ns/default/sa/test';

test('a well-formed SVID verifies (DER array, PEM string, any intermediate order, extra certs)', () => {
  const { root, inter, ca } = makePki();
  const bundles = BundleSet.of(TD, [root.der]);
  const svid = ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID });
  const r = verifySvidChain(svid.chain, bundles);
  assert.ok(r.ok);
  assert.equal(r.spiffeId, ID);
  assert.equal(r.chain.length, 3);
  assert.ok(verifySvidChain(svid.chainPem, bundles).ok);
  assert.ok(verifySvidChain([svid.certificate, root.der, inter.der], bundles).ok, 'extra root in the presented chain is harmless');
});

test('each malformed or untrusted certificate kind is rejected with its reason', () => {
  const now = Date.now();
  const { root, inter } = makePki(TD, now);
  const bundles = BundleSet.of(TD, [root.der]);
  const otherRoot = createRootCa({ trustDomain: TD, now: now - 60_000 });
  const otherInter = createIntermediateCa(otherRoot, { trustDomain: TD, now: now - 60_000 });
  const foreignRoot = createRootCa({ trustDomain: 'partner.example', now: now - 60_000 });
  const foreignInter = createIntermediateCa(foreignRoot, { trustDomain: 'partner.example', now: now - 60_000 });
  const intNoUri = noUriIntermediate(root);
  const fed = BundleSet.of(TD, [root.der]);
  fed.addRoot('partner.example', foreignRoot.der);

  const cases: { name: string; chain: Buffer[]; reason: string; bundles?: BundleSet; opts?: { expectedTrustDomain?: string } }[] = [
    { name: 'empty chain', chain: [], reason: 'empty_certificate' },
    { name: 'empty certificate bytes', chain: [Buffer.alloc(0)], reason: 'empty_certificate' },
    { name: 'garbage', chain: [Buffer.from('not a certificate')], reason: 'malformed' },
    { name: 'CA leaf', chain: [makeLeaf(inter, { ca: true }), inter.der], reason: 'ca_leaf' },
    { name: 'two URI SANs', chain: [makeLeaf(inter, { uris: [ID, 'spiffe://cluster.local/ns/default/sa/admin'] }), inter.der], reason: 'multiple_uri_san' },
    { name: 'no URI SAN', chain: [makeLeaf(inter, { uris: [] }), inter.der], reason: 'missing_uri_san' },
    { name: 'URI SAN that is not a SPIFFE ID', chain: [makeLeaf(inter, { uris: ['https://cluster.local/x'] }), inter.der], reason: 'invalid_spiffe_id' },
    { name: 'SPIFFE ID with a dot segment', chain: [makeLeaf(inter, { uris: ['spiffe://cluster.local/ns/../sa/x'] }), inter.der], reason: 'invalid_spiffe_id' },
    { name: 'keyCertSign usage', chain: [makeLeaf(inter, { keyUsage: ['digitalSignature', 'keyCertSign'] }), inter.der], reason: 'bad_key_usage' },
    { name: 'cRLSign usage', chain: [makeLeaf(inter, { keyUsage: ['digitalSignature', 'cRLSign'] }), inter.der], reason: 'bad_key_usage' },
    { name: 'no digitalSignature', chain: [makeLeaf(inter, { keyUsage: ['keyEncipherment'] }), inter.der], reason: 'bad_key_usage' },
    { name: 'no key usage extension', chain: [makeLeaf(inter, { keyUsage: null }), inter.der], reason: 'bad_key_usage' },
    { name: 'expired', chain: [makeLeaf(inter, { notBefore: now - 7200_000, notAfter: now - 3600_000 }), inter.der], reason: 'expired' },
    { name: 'not yet valid', chain: [makeLeaf(inter, { notBefore: now + 3600_000, notAfter: now + 7200_000 }), inter.der], reason: 'not_yet_valid' },
    { name: 'untrusted root', chain: [makeLeaf(otherInter), otherInter.der], reason: 'untrusted' },
    { name: 'missing intermediate', chain: [makeLeaf(inter)], reason: 'untrusted' },
    {
      name: 'wrong trust domain (no bundle for it)',
      chain: [makeLeaf(inter, { uris: ['spiffe://partner.example/ns/a/sa/b'] }), inter.der],
      reason: 'wrong_trust_domain',
    },
    {
      name: 'leaf claims a federated trust domain, signed by our CA without a SPIFFE URI on the intermediate',
      chain: [makeLeaf(intNoUri, { uris: ['spiffe://partner.example/ns/a/sa/b'] }), intNoUri.der],
      reason: 'untrusted',
      bundles: fed,
    },
    {
      name: 'leaf claims a federated trust domain but chains to ours',
      chain: [makeLeaf(inter, { uris: ['spiffe://partner.example/ns/a/sa/b'] }), inter.der],
      reason: 'wrong_trust_domain',
      bundles: fed,
    },
    {
      name: "leaf claims our trust domain but was signed by the partner's CA",
      chain: [makeLeaf(foreignInter, { uris: [ID] }), foreignInter.der],
      reason: 'wrong_trust_domain',
      bundles: fed,
    },
    {
      name: 'intermediate of another trust domain (URI SAN) in our bundle',
      chain: [makeLeaf(foreignInter, { uris: [ID] }), foreignInter.der],
      reason: 'wrong_trust_domain',
      bundles: (() => {
        const b = BundleSet.of(TD, [root.der]);
        b.addRoot(TD, foreignRoot.der);
        return b;
      })(),
    },
    { name: 'expected trust domain mismatch', chain: [makeLeaf(inter), inter.der], reason: 'wrong_trust_domain', opts: { expectedTrustDomain: 'partner.example' } },
  ];
  for (const c of cases) {
    const r = verifySvidChain(c.chain, c.bundles ?? bundles, now, c.opts);
    assert.equal(r.ok, false, c.name);
    if (!r.ok) {
      assert.equal(r.reason, c.reason, `${c.name}: ${r.detail}`);
      assert.ok((SVID_REJECT_REASONS as readonly string[]).includes(r.reason));
      assert.match(r.reason, /^[a-z_]+$/, 'usable as a metric label');
    }
  }
});

test('a non-CA certificate used as an intermediate is rejected', () => {
  const now = Date.now();
  const { root, inter } = makePki(TD, now);
  // A leaf (cA=false) that "issues" another leaf.
  const fakeKey = p256();
  const fakeIntDer = makeLeaf(inter, { key: fakeKey });
  const { parseCertificate } = require_x509();
  const fakeInt = { der: fakeIntDer, parsed: parseCertificate(fakeIntDer), key: fakeKey };
  const leaf = makeLeaf(fakeInt);
  const r = verifySvidChain([leaf, fakeIntDer, inter.der], BundleSet.of(TD, [root.der]), now);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.reason, 'bad_intermediate');
});

import * as x509mod from '../../src/identity/x509.js';
function require_x509() {
  return x509mod;
}

/** An intermediate without a SPIFFE URI SAN (as some plug-in CAs issue). */
function noUriIntermediate(root: ReturnType<typeof createRootCa>) {
  const key = p256();
  const spki = x509mod.spkiDer(key);
  const der = x509mod.buildCertificate(
    {
      issuer: root.parsed.subject,
      subject: x509mod.encodeName([{ oid: x509mod.OID.commonName, value: 'plain intermediate' }]),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      spki,
      extensions: [x509mod.basicConstraintsExt(true, 0), x509mod.keyUsageExt(['keyCertSign', 'cRLSign']), x509mod.subjectKeyIdExt(x509mod.keyIdentifier(spki))],
    },
    root.key,
  );
  return { der, parsed: x509mod.parseCertificate(der), key };
}

test('expired root and expired intermediate are reported as expired', () => {
  const now = Date.now();
  const root = createRootCa({ trustDomain: TD, now: now - 10_000_000, ttlMs: 9_000_000 });
  const inter = createIntermediateCa(root, { trustDomain: TD, now: now - 10_000_000 });
  const leaf = makeLeaf(inter, { notBefore: now - 1000, notAfter: now + 1000_000 });
  const r = verifySvidChain([leaf, inter.der], BundleSet.of(TD, [root.der]), now);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.reason, 'expired');
});

test('bundles: several roots per trust domain, removal, SPIFFE bundle round trip, change events', () => {
  const a = makePki();
  const b = makePki();
  const set = BundleSet.of(TD, [a.root.der]);
  let changes = 0;
  set.onChange(() => changes++);
  const leafB = b.ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID });
  assert.equal(verifySvidChain(leafB.chain, set).ok, false);
  set.addRoot(TD, toPem(b.root.der));
  set.addRoot(TD, b.root.der); // idempotent
  assert.equal(changes, 1);
  assert.equal(set.getBundle(TD)!.x509Authorities.length, 2);
  assert.ok(verifySvidChain(leafB.chain, set).ok);
  const doc = set.toSpiffeBundle(TD);
  assert.equal(doc.keys.length, 2);
  assert.ok(doc.keys.every((k) => k.use === 'x509-svid' && k.kty === 'EC' && k.x5c?.length === 1));
  const round = parseSpiffeBundle(TD, JSON.parse(JSON.stringify(doc)));
  assert.equal(round.x509Authorities.length, 2);
  set.removeRoot(TD, a.root.der);
  assert.equal(changes, 2);
  const leafA = a.ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID });
  const r = verifySvidChain(leafA.chain, set);
  assert.equal(r.ok, false);
  assert.throws(() => set.addRoot(TD, leafA.certificate), { code: 'ZTM_SVID_INVALID' }, 'a leaf is not a root');
  assert.match(set.allRootsPem(), /BEGIN CERTIFICATE/);
});

test('intermediate cache completes a leaf-only chain (server side of a resumed session)', () => {
  const { root, ca } = makePki();
  const bundles = BundleSet.of(TD, [root.der]);
  const cache = new IntermediateCache();
  const svid = ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID });
  const leafOnly = [svid.certificate];
  assert.equal(verifySvidChain(leafOnly, bundles, Date.now(), { intermediateCache: cache }).ok, false);
  assert.ok(verifySvidChain(svid.chain, bundles, Date.now(), { intermediateCache: cache }).ok);
  assert.equal(cache.size, 1);
  assert.ok(verifySvidChain(leafOnly, bundles, Date.now(), { intermediateCache: cache }).ok);
});

test('the signature memo never accepts a tampered intermediate or leaf', () => {
  const { root, inter, ca } = makePki();
  const bundles = BundleSet.of(TD, [root.der]);
  const svid = ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID });
  assert.ok(verifySvidChain(svid.chain, bundles).ok); // caches inter→root
  // Same names, keys and signature; one serial-number byte changed, so only the signature check can catch it.
  const forged = Buffer.from(inter.der);
  assert.deepEqual([...forged.subarray(8, 15)], [0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x10], 'serial at the expected offset');
  forged[20] ^= 0x01;
  const r = verifySvidChain([svid.certificate, forged], bundles);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.reason, 'untrusted');
  // Same for the leaf, whose verified signature is memoized too.
  const forgedLeaf = Buffer.from(svid.certificate);
  forgedLeaf[20] ^= 0x01;
  const r2 = verifySvidChain([forgedLeaf, inter.der], bundles);
  assert.equal(r2.ok ? 'ok' : r2.reason, 'untrusted');
  assert.ok(verifySvidChain(svid.chain, bundles).ok);
});

test('federation: a partner trust domain verifies against its own bundle only', () => {
  const ours = makePki(TD);
  const partner = makePki('partner.example');
  const set = BundleSet.of(TD, [ours.root.der]);
  const partnerLeaf = partner.ca.issueFromCsr(buildCsr(p256()), { spiffeId: 'spiffe://partner.example/ns/shop/sa/api' });
  const before = verifySvidChain(partnerLeaf.chain, set);
  assert.equal(before.ok ? 'ok' : before.reason, 'wrong_trust_domain');
  set.setSpiffeBundle('partner.example', BundleSet.of('partner.example', [partner.root.der]).toSpiffeBundle('partner.example'));
  const after = verifySvidChain(partnerLeaf.chain, set);
  assert.ok(after.ok && after.id.trustDomain === 'partner.example');
  const r = verifySvidChain(partnerLeaf.chain, set, Date.now(), { expectedTrustDomain: TD });
  assert.equal(r.ok ? 'ok' : r.reason, 'wrong_trust_domain');
  // Our own workloads are unaffected, and an older bundle sequence is refused.
  assert.ok(verifySvidChain(ours.ca.issueFromCsr(buildCsr(p256()), { spiffeId: ID }).chain, set).ok);
  assert.throws(() => set.setBundle({ ...set.getBundle('partner.example')!, sequence: 0 }), { code: 'ZTM_SVID_INVALID' });
});
