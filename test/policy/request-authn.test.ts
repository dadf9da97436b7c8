/**
 * RequestAuthentication's verified-signature cache (src/policy/request-authn.ts): a token seen
 * before skips the public-key operation only while the key that verified it is still in the
 * rule's key set; time claims are checked on every request; only successes are kept; bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { authenticate, compileRequestAuthn, VerifiedSignatures } from '../../src/policy/request-authn.js';
import { signCompactJws } from '../../src/identity/jws.js';
import { parseJwks, type JwksKey } from '../../src/identity/jwks.js';
import type { RequestAuthentication } from '../../src/config/types.js';

const ISS = 'https://idp.test';
const NOW = 1_800_000_000;
const keyPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwksOf = (k: ReturnType<typeof keyPair>, kid: string): JwksKey[] => parseJwks({ keys: [{ ...(createPublicKey(k.privateKey).export({ format: 'jwk' }) as object), kid, alg: 'ES256' }] });
const token = (k: ReturnType<typeof keyPair>, kid: string, claims: Record<string, unknown> = {}) =>
  signCompactJws({ alg: 'ES256', kid, typ: 'JWT' }, { iss: ISS, sub: 'alice', aud: 'shop', exp: NOW + 300, ...claims }, k.privateKey);
const ra = { kind: 'RequestAuthentication', metadata: { name: 'a', namespace: 'istio-system', annotations: {} }, spec: { jwtRules: [{ issuer: ISS, audiences: ['shop'], jwksUri: 'https://idp.test/jwks' }] } } as unknown as RequestAuthentication;
const req = (t: string) => ({ headers: { authorization: `Bearer ${t}` }, query: '' });

test('a token verified once skips the signature check while its key is in the set; claims are checked every time', () => {
  const k1 = keyPair();
  let keys = jwksOf(k1, 'k1');
  const cfg = compileRequestAuthn([ra], { namespace: 'istio-system', labels: {} }, 'istio-system');
  const t = token(k1, 'k1');
  assert.equal(authenticate(cfg, req(t), () => keys, NOW).kind, 'ok');
  assert.equal(cfg.verified.hits, 0);
  assert.equal(authenticate(cfg, req(t), () => keys, NOW).kind, 'ok');
  assert.equal(cfg.verified.hits, 1);
  // Expiry is not cached: the same token is refused once it has expired (beyond the 60 s leeway).
  const late = authenticate(cfg, req(t), () => keys, NOW + 400);
  assert.deepEqual([late.kind, late.kind === 'reject' && late.reason], ['reject', 'expired']);
  // The JWKS rotates the key out: the cached success no longer counts.
  const k2 = keyPair();
  keys = jwksOf(k2, 'k1'); // same kid, another key
  const r = authenticate(cfg, req(t), () => keys, NOW);
  assert.deepEqual([r.kind, r.kind === 'reject' && r.reason], ['reject', 'bad_signature']);
  // A refresh that brings the same key back as a new KeyObject verifies again (a miss, then hits).
  keys = jwksOf(k1, 'k1');
  const before = cfg.verified.hits;
  assert.equal(authenticate(cfg, req(t), () => keys, NOW).kind, 'ok');
  assert.equal(cfg.verified.hits, before);
  assert.equal(authenticate(cfg, req(t), () => keys, NOW).kind, 'ok');
  assert.equal(cfg.verified.hits, before + 1);
});

test('failures are never cached: a forged token is verified (and refused) every time', () => {
  const k1 = keyPair();
  const keys = jwksOf(k1, 'k1');
  const cfg = compileRequestAuthn([ra], { namespace: 'istio-system', labels: {} }, 'istio-system');
  const good = token(k1, 'k1');
  const [h, , sig] = good.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ iss: ISS, sub: 'admin', aud: 'shop', exp: NOW + 300 })).toString('base64url')}.${sig}`;
  for (let i = 0; i < 3; i++) {
    const r = authenticate(cfg, req(forged), () => keys, NOW);
    assert.deepEqual([r.kind, r.kind === 'reject' && r.reason], ['reject', 'bad_signature']);
  }
  assert.equal(cfg.verified.hits, 0);
});

test('the cache is bounded (least recently used out) and size 0 turns it off', () => {
  const k = keyPair();
  const keys = jwksOf(k, 'k1').map((x) => x.key);
  const c = new VerifiedSignatures(2);
  c.remember('a', keys[0]);
  c.remember('b', keys[0]);
  assert.ok(c.lookup('a', keys)); // a is now the most recent
  c.remember('c', keys[0]); // evicts b
  assert.ok(c.lookup('a', keys));
  assert.equal(c.lookup('b', keys), undefined);
  assert.ok(c.lookup('c', keys));
  const off = new VerifiedSignatures(0);
  off.remember('a', keys[0]);
  assert.equal(off.lookup('a', keys), undefined);
  const cfg = compileRequestAuthn([ra], { namespace: 'istio-system', labels: {} }, 'istio-system', { cacheSize: 0 });
  const t = token(k, 'k1');
  const set = jwksOf(k, 'k1');
  authenticate(cfg, req(t), () => set, NOW);
  authenticate(cfg, req(t), () => set, NOW);
  assert.equal(cfg.verified.hits, 0);
});
