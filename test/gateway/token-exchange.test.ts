/**
 * RFC 8693 token exchange as a pure decision (src/control/token-exchange.ts): the happy path
 * (≤ 5 minutes, exactly one audience, act naming the caller with prior actors nested,
 * may_act honoured) and every error the RFC names. The control plane's POST /token wiring
 * is not done yet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJwtSigner, jwksDocument } from '../../src/identity/jwt-svid.js';
import { parseJwks } from '../../src/identity/jwks.js';
import { verifyCompactJws } from '../../src/identity/jws.js';
import { exchangeToken, GRANT_TYPE, JWT_TOKEN_TYPE, type ExchangeDeps } from '../../src/control/token-exchange.js';

const signer = createJwtSigner('ES256');
const NOW = 1_800_000_000;
const GW = 'spiffe://cluster.local/ns/istio-system/sa/ingress-gateway';
const deps = (claims: Record<string, unknown> = {}, o: Partial<ExchangeDeps> = {}): ExchangeDeps => ({
  actor: GW,
  verifySubject: (t) => (t === 'good' ? { ok: true, claims: { iss: 'https://idp.test', sub: 'alice', exp: NOW + 3600, ...claims } as never } : { ok: false, detail: 'bad signature' }),
  knownAudience: (a) => ['order-service.production', 'payment-service.production'].includes(a),
  signer,
  issuer: 'https://ztmesh.cluster.local',
  nowSeconds: NOW,
  ...o,
});
const form = (o: Record<string, string | string[]> = {}) => {
  const f = new URLSearchParams();
  const base: Record<string, string | string[]> = { grant_type: GRANT_TYPE, subject_token: 'good', subject_token_type: JWT_TOKEN_TYPE, audience: 'order-service.production', ...o };
  for (const [k, v] of Object.entries(base)) for (const x of Array.isArray(v) ? v : [v]) if (x !== '\u0000') f.append(k, x);
  return f;
};
const claimsOf = (token: string) => {
  const r = verifyCompactJws(token, parseJwks(jwksDocument([signer])).map((k) => k.key));
  assert.ok(r.ok);
  return r.jws.payload as Record<string, any>;
};

test('happy path: a ≤5 min token for exactly the audience, act names the caller', () => {
  const r = exchangeToken(form(), deps());
  assert.equal(r.status, 200);
  const b = r.body as Record<string, any>;
  assert.equal(b.issued_token_type, JWT_TOKEN_TYPE);
  assert.equal(b.token_type, 'Bearer');
  assert.equal(b.expires_in, 300);
  const c = claimsOf(b.access_token);
  assert.equal(c.aud, 'order-service.production');
  assert.equal(c.sub, 'https://idp.test/alice');
  assert.equal(c.exp, NOW + 300);
  assert.deepEqual(JSON.parse(JSON.stringify(c.act)), { sub: GW });
});

test('never outlives the subject token; prior actors are nested; may_act is honoured', () => {
  let r = exchangeToken(form(), deps({ exp: NOW + 60 }));
  assert.equal(claimsOf((r.body as any).access_token).exp, NOW + 60);
  r = exchangeToken(form(), deps({ act: { sub: 'spiffe://cluster.local/ns/x/sa/first' } }));
  assert.deepEqual(JSON.parse(JSON.stringify(claimsOf((r.body as any).access_token).act)), { sub: GW, act: { sub: 'spiffe://cluster.local/ns/x/sa/first' } });
  assert.equal(exchangeToken(form(), deps({ may_act: { sub: GW } })).status, 200);
  const denied = exchangeToken(form(), deps({ may_act: { sub: 'spiffe://cluster.local/ns/x/sa/other' } }));
  assert.deepEqual([denied.status, (denied.body as any).error], [400, 'invalid_request']);
});

test('every error: invalid_request, invalid_target, unsupported_grant_type, status 400', () => {
  const cases: [Record<string, string | string[]>, string, Partial<ExchangeDeps>?][] = [
    [{ grant_type: '\u0000' }, 'invalid_request'],
    [{ grant_type: 'client_credentials' }, 'unsupported_grant_type'],
    [{ subject_token: '\u0000' }, 'invalid_request'],
    [{ subject_token_type: '\u0000' }, 'invalid_request'],
    [{ subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 'invalid_request'],
    [{ requested_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 'invalid_request'],
    [{ actor_token: 'x', actor_token_type: JWT_TOKEN_TYPE }, 'invalid_request'],
    [{ subject_token: ['good', 'good'] }, 'invalid_request'],
    [{ audience: '\u0000' }, 'invalid_request'],
    [{ audience: ['order-service.production', 'payment-service.production'] }, 'invalid_target'],
    [{ audience: 'evil.example.com' }, 'invalid_target'],
    [{ resource: 'https://order-service.production/' }, 'invalid_target'],
    [{ subject_token: 'forged' }, 'invalid_request'],
  ];
  for (const [f, error] of cases) {
    const r = exchangeToken(form(f), deps());
    assert.equal(r.status, 400, JSON.stringify(f));
    assert.equal((r.body as any).error, error, JSON.stringify(f));
    assert.ok((r.body as any).error_description);
  }
  assert.equal((exchangeToken(form(), deps({ sub: '' })).body as any).error, 'invalid_request');
  assert.equal((exchangeToken(form(), deps({ exp: NOW - 1 })).body as any).error, 'invalid_request');
});

test('the control plane creates one token-signing key even when its first JWKS requests arrive together', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { TokenService } = await import('../../src/control/token-exchange.js');
  const { BundleSet } = await import('../../src/identity/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-sts-'));
  try {
    const mk = () => new TokenService({ dataDir: dir, passphrase: 'p'.repeat(16), trustDomain: 'cluster.local', bundles: BundleSet.of('cluster.local', []), snapshot: () => null, services: () => [] });
    const svc = mk();
    const docs = (await Promise.all(Array.from({ length: 8 }, () => svc.jwks()))) as { keys: { kid: string }[] }[];
    const kids = new Set(docs.map((d) => d.keys[0].kid));
    assert.equal(kids.size, 1, `concurrent first calls published ${kids.size} different keys`);
    // The key on disk is the one published: a restarted control plane serves the same kid.
    assert.equal(((await mk().jwks()) as { keys: { kid: string }[] }).keys[0].kid, [...kids][0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
