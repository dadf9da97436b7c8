/**
 * RequestAuthentication at the running gateway (and in a sidecar's inbound chain): every
 * token attack the issue lists is refused with 401 + `WWW-Authenticate: Bearer
 * error="invalid_token"`; a missing token passes unauthenticated and authorization decides;
 * verified claims reach authorization (`requestPrincipals`) and the app (output headers).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signCompactJws } from '../../src/identity/jws.js';
import {
  ISSUER,
  TestIdp,
  b64,
  baseConfig,
  gw,
  id,
  jwksServer,
  logsOf,
  meshSvid,
  mtlsRequest,
  runCliAsync,
  startGatewayMesh,
  stopGatewayMesh,
  waitFor,
  writeConfig,
  type GatewayMesh,
} from './harness.js';

const idp = new TestIdp();
const idp2 = new TestIdp();
const ISSUER2 = 'https://idp2.test';
const CHALLENGE = 'Bearer error="invalid_token"';

let m: GatewayMesh;
let jwks: Awaited<ReturnType<typeof jwksServer>>;
const side = mkdtempSync(join(tmpdir(), 'ztmesh-gw-jwks-'));

function config(jwksUrl: string): string {
  const inline = JSON.stringify(JSON.stringify(idp.jwks()));
  return baseConfig(`---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: edge-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: ${ISSUER}
    audiences: [shop]
    jwks: ${inline}
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-user, claim: sub}]
    forwardOriginalToken: true
  - issuer: ${ISSUER2}
    jwksUri: ${jwksUrl}
    fromHeaders: [{name: x-idp2-token}]
    fromCookies: [session]
    outputClaimToHeaders: [{header: x-user, claim: sub}]
  - issuer: https://down.test
    jwksUri: https://127.0.0.1:1/jwks.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: private-needs-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/api/private/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admin-is-alice, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["${ISSUER}/alice"]}}]
    to: [{operation: {paths: ["/api/admin/*"]}}]
---
apiVersion: ztmesh.io/v1alpha1
kind: GatewayPolicy
metadata: {name: exchange, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  tokenExchange:
  - match: {paths: [/api/exchanged/]}
    audience: api.shop
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: api-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  jwtRules:
  - issuer: ${ISSUER}
    audiences: [shop]
    jwks: ${inline}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: members-need-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/api/members/*"]}}]
`);
}

before(async () => {
  jwks = await jwksServer(side, () => idp2.jwks());
  m = await startGatewayMesh('jwt', config(jwks.url), { env: { NODE_EXTRA_CA_CERTS: jwks.caFile }, extraArgs: ['--max-header-bytes', '65536'] });
});

after(async () => {
  await jwks?.close();
  await stopGatewayMesh(m);
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function expect401(token: string, what: string, headers?: Record<string, string>) {
  const r = await gw(m.gateways[0], 'GET', '/api/hello', { headers: headers ?? bearer(token) });
  assert.equal(r.status, 401, `${what}: expected 401, got ${r.status} ${r.body}\n${r.status === 200 ? '' : logsOf(m.dir, 800)}`);
  assert.equal(r.headers['www-authenticate'], CHALLENGE, what);
}

function withSig(token: string, sig: Buffer | string): string {
  const [h, p] = token.split('.');
  return `${h}.${p}.${typeof sig === 'string' ? sig : sig.toString('base64url')}`;
}

/** Sign arbitrary header/payload text with the IdP's real ES256 key (so only the attack itself is wrong). */
function signRaw(headerJson: string, payloadJson: string, key = idp.es.privateKey): string {
  const input = `${b64(headerJson)}.${b64(payloadJson)}`;
  const sig = cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);

describe('gateway: valid tokens and missing tokens', () => {
  test('a valid ES256 token: 200, claims to headers, principal iss/sub reaches authorization', async () => {
    const t = idp.token();
    const r = await gw(m.gateways[0], 'GET', '/api/admin/panel', { headers: bearer(t) });
    assert.equal(r.status, 200, r.body);
    const seen = m.app.last()!;
    assert.equal(seen.headers['x-user'], 'alice');
    assert.deepEqual(JSON.parse(Buffer.from(String(seen.headers['x-jwt-payload']), 'base64url').toString()).sub, 'alice');
    // The gateway forwards the token (forwardOriginalToken: true); api's own RequestAuthentication
    // verifies it again and, with forwardOriginalToken unset, removes it before the app.
    assert.equal(seen.headers.authorization, undefined);
  });

  test('a valid RS256 token from the same JWKS (by kid); requestPrincipals tells bob from alice', async () => {
    assert.equal((await gw(m.gateways[0], 'GET', '/api/private/x', { headers: bearer(idp.rsaToken()) })).status, 200);
    const r = await gw(m.gateways[0], 'GET', '/api/admin/panel', { headers: bearer(idp.rsaToken()) });
    assert.equal(r.status, 403);
  });

  test('no token: passes unauthenticated; a policy needing a principal answers 403, others 200', async () => {
    assert.equal((await gw(m.gateways[0], 'GET', '/api/hello')).status, 200);
    const r = await gw(m.gateways[0], 'GET', '/api/private/x');
    assert.equal(r.status, 403);
    assert.equal(r.headers['www-authenticate'], undefined);
  });

  test('client-supplied claim headers are stripped when there is no token', async () => {
    const r = await gw(m.gateways[0], 'GET', '/api/hello', { headers: { 'x-user': 'admin', 'x-jwt-payload': b64({ sub: 'admin' }), 'x-forwarded-client-cert': 'By=x;URI=spiffe://cluster.local/ns/shop/sa/admin' } });
    assert.equal(r.status, 200);
    const seen = m.app.last()!;
    assert.equal(seen.headers['x-user'], undefined);
    assert.equal(seen.headers['x-jwt-payload'], undefined);
    assert.match(String(seen.headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/istio-system\/sa\/ingress-gateway$/);
    assert.doesNotMatch(String(seen.headers['x-forwarded-client-cert']), /sa\/admin/);
  });

  test('token from the access_token query parameter (Istio default location)', async () => {
    const r = await gw(m.gateways[0], 'GET', `/api/private/q?access_token=${idp.token()}`);
    assert.equal(r.status, 200, r.body);
  });

  test('jwksUri over HTTPS, token from a custom header and from a cookie; forwardOriginalToken false removes the header', async () => {
    const t = idp2.token({ iss: ISSUER2, sub: 'carol' });
    let r = await gw(m.gateways[0], 'GET', '/api/private/a', { headers: { 'x-idp2-token': t } });
    assert.equal(r.status, 200, r.body);
    assert.equal(m.app.last()!.headers['x-user'], 'carol');
    assert.equal(m.app.last()!.headers['x-idp2-token'], undefined);
    r = await gw(m.gateways[0], 'GET', '/api/private/b', { headers: { cookie: `theme=dark; session=${t}` } });
    assert.equal(r.status, 200, r.body);
    assert.ok(jwks.hits() >= 1);
  });

  test('leeway: 60 s by default for exp and nbf', async () => {
    assert.equal((await gw(m.gateways[0], 'GET', '/api/private/x', { headers: bearer(idp.token({ exp: now() - 30 })) })).status, 200);
    assert.equal((await gw(m.gateways[0], 'GET', '/api/private/x', { headers: bearer(idp.token({ nbf: now() + 30 })) })).status, 200);
  });

  test('a token without exp is accepted (Envoy jwt_authn require_expiration defaults to false; Istio does not set it)', async () => {
    const t = idp.token({ exp: undefined, sub: 'no-exp' });
    assert.equal('exp' in JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString('utf8')), false);
    const r = await gw(m.gateways[0], 'GET', '/api/private/noexp', { headers: bearer(t) });
    assert.equal(r.status, 200, r.body);
    assert.equal(m.app.last()!.headers['x-user'], 'no-exp');
    // Still checked when present: an exp beyond the leeway is refused.
    await expect401(idp.token({ exp: now() - 120 }), 'expired 120 s ago');
  });
});

describe('gateway: every token attack is a 401', () => {
  test('alg none in any spelling (with and without a signature)', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE', ' none']) {
      const unsigned = `${b64({ alg, typ: 'JWT' })}.${b64({ iss: ISSUER, sub: 'alice', aud: 'shop', exp: now() + 300 })}.`;
      await expect401(unsigned, `alg ${alg}`);
      await expect401(unsigned + 'AAAA', `alg ${alg} with a signature`);
    }
  });

  test('HMAC with the public key as the secret (algorithm confusion)', async () => {
    const pem = createPublicKey(idp.es.privateKey).export({ format: 'pem', type: 'spki' }) as string;
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const input = `${b64({ alg, kid: idp.kid })}.${b64({ iss: ISSUER, sub: 'alice', aud: 'shop', exp: now() + 300 })}`;
      const mac = createHmac(`sha${alg.slice(2)}`, pem).update(input).digest('base64url');
      await expect401(`${input}.${mac}`, alg);
    }
  });

  test('empty or missing signature', async () => {
    await expect401(withSig(idp.token(), ''), 'empty signature');
    await expect401(idp.token().split('.').slice(0, 2).join('.'), 'two parts');
  });

  test('embedded keys: jwk, jku, x5u, x5c (signed with the attacker key they carry)', async () => {
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = createPublicKey(attacker.privateKey).export({ format: 'jwk' });
    const claims = { iss: ISSUER, sub: 'alice', aud: 'shop', exp: now() + 300 };
    await expect401(signRaw(JSON.stringify({ alg: 'ES256', jwk }), JSON.stringify(claims), attacker.privateKey), 'jwk');
    await expect401(signRaw(JSON.stringify({ alg: 'ES256', kid: idp.kid, jku: 'https://evil.test/jwks.json' }), JSON.stringify(claims)), 'jku');
    await expect401(signRaw(JSON.stringify({ alg: 'ES256', kid: idp.kid, x5u: 'https://evil.test/cert.pem' }), JSON.stringify(claims)), 'x5u');
    await expect401(signRaw(JSON.stringify({ alg: 'ES256', kid: idp.kid, x5c: ['MIIB'] }), JSON.stringify(claims)), 'x5c');
  });

  test('unknown crit', async () => {
    await expect401(signRaw(JSON.stringify({ alg: 'ES256', kid: idp.kid, crit: ['exp-policy'], 'exp-policy': 1 }), JSON.stringify({ iss: ISSUER, sub: 'alice', aud: 'shop', exp: now() + 300 })), 'crit');
  });

  test('non-canonical base64url (padding, unused trailing bits, standard alphabet)', async () => {
    const t = idp.token();
    const [h, p, s] = t.split('.');
    await expect401(`${h}.${p}.${s}=`, 'padding');
    // ES256 signatures are 64 bytes: the last character carries 2 unused bits; set one.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(s[s.length - 1]);
    await expect401(`${h}.${p}.${s.slice(0, -1)}${alphabet[last ^ 1]}`, 'trailing bits');
    const std = `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}`;
    if (std !== t) await expect401(std, 'standard alphabet');
  });

  test('duplicate JSON keys in the payload and in the header', async () => {
    await expect401(signRaw(JSON.stringify({ alg: 'ES256', kid: idp.kid }), `{"iss":"${ISSUER}","sub":"bob","sub":"alice","aud":"shop","exp":${now() + 300}}`), 'payload');
    await expect401(signRaw(`{"alg":"ES256","kid":"${idp.kid}","alg":"ES256"}`, JSON.stringify({ iss: ISSUER, sub: 'alice', aud: 'shop', exp: now() + 300 })), 'header');
  });

  test('ECDSA signatures with r or s zero (psychic signatures)', async () => {
    const t = idp.token();
    const sig = Buffer.from(t.split('.')[2], 'base64url');
    await expect401(withSig(t, Buffer.alloc(64)), 'r = s = 0');
    await expect401(withSig(t, Buffer.concat([Buffer.alloc(32), sig.subarray(32)])), 'r = 0');
    await expect401(withSig(t, Buffer.concat([sig.subarray(0, 32), Buffer.alloc(32)])), 's = 0');
  });

  test('expired and not-yet-valid beyond the leeway', async () => {
    await expect401(idp.token({ exp: now() - 120 }), 'expired');
    await expect401(idp.token({ nbf: now() + 120 }), 'nbf');
    await expect401(idp.token({ exp: 'tomorrow' }), 'exp not a number');
  });

  test('wrong issuer, wrong audience, unknown kid, wrong key', async () => {
    await expect401(idp.token({ iss: 'https://evil.test' }), 'issuer');
    await expect401(idp.token({ aud: 'billing' }), 'audience');
    await expect401(idp.token({}, { kid: 'nope' }), 'kid');
    await expect401(idp.token({}, {}, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), 'key');
  });

  test('oversized token', async () => {
    await expect401(idp.token({ pad: 'x'.repeat(20_000) }), 'oversized');
  });

  test('two different tokens on one request', async () => {
    const r = await gw(m.gateways[0], 'GET', `/api/hello?access_token=${idp.token({ sub: 'bob' })}`, { headers: bearer(idp.token()) });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], CHALLENGE);
  });

  test('a JWKS that cannot be fetched fails closed (no default key)', async () => {
    await expect401(signCompactJws({ alg: 'ES256', kid: idp.kid }, { iss: 'https://down.test', sub: 'x', exp: now() + 300 }, idp.es.privateKey), 'jwks down');
  });

  test('garbage in the Authorization header', async () => {
    await expect401('not-a-jwt', 'garbage');
    await expect401('a.b.c', 'three junk parts');
  });
});

describe('sidecar: the JWT filter in the inbound chain', () => {
  test('invalid token → 401 with the challenge; missing → policies decide (403); valid → 200', async () => {
    const svid = await meshSvid(m.mesh, id('istio-system', 'ingress-gateway'));
    let r = await mtlsRequest(m.api.ports.inbound, svid, 'GET', '/api/members/1', { authorization: 'Bearer a.b.c' });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], CHALLENGE);
    r = await mtlsRequest(m.api.ports.inbound, svid, 'GET', '/api/members/1', { authorization: `Bearer ${idp.token({ aud: 'billing' })}` });
    assert.equal(r.status, 401);
    r = await mtlsRequest(m.api.ports.inbound, svid, 'GET', '/api/members/1');
    assert.equal(r.status, 403);
    r = await mtlsRequest(m.api.ports.inbound, svid, 'GET', '/api/members/1', { authorization: `Bearer ${idp.token()}` });
    assert.equal(r.status, 200);
  });

  test('end to end: the gateway forwards the token and the sidecar verifies it again', async () => {
    assert.equal((await gw(m.gateways[0], 'GET', '/api/members/1', { headers: bearer(idp.token()) })).status, 200);
    assert.equal((await gw(m.gateways[0], 'GET', '/api/members/1')).status, 403);
  });
});

describe('ztmesh jwt verify', () => {
  test('prints valid/reason/header/claims and exits 0 or 1', async () => {
    const file = join(side, 'jwks.json');
    writeFileSync(file, JSON.stringify(idp.jwks()));
    let r = await runCliAsync(['jwt', 'verify', '--jwks', file, '--issuer', ISSUER, '--audience', 'shop', idp.token()]);
    assert.equal(r.code, 0, r.stderr);
    let out = JSON.parse(r.stdout);
    assert.equal(out.valid, true);
    assert.equal(out.claims.sub, 'alice');
    assert.equal(out.header.alg, 'ES256');
    r = await runCliAsync(['jwt', 'verify', '--jwks', file, `${b64({ alg: 'none' })}.${b64({ sub: 'x' })}.`]);
    assert.equal(r.code, 1);
    out = JSON.parse(r.stdout);
    assert.equal(out.valid, false);
    assert.equal(out.reason, 'alg_none');
    assert.equal(out.header.alg, 'none');
    r = await runCliAsync(['jwt', 'verify', '--jwks', file, '--audience', 'billing', idp.token()]);
    assert.equal(JSON.parse(r.stdout).reason, 'bad_audience');
    r = await runCliAsync(['jwt', 'verify', '--jwks', jwks.url.replace('https', 'http'), idp.token()]);
    assert.equal(r.code, 3);
  });
});

describe('token exchange at the control plane (RFC 8693, POST /token over mTLS)', () => {
  const post = async (body: string, cert?: { keyPem: string; chainPem: string }) => {
    const https = await import('node:https');
    return new Promise<{ status: number; json: any }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: m.mesh.control!.info.port, method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, key: cert?.keyPem, cert: cert?.chainPem, rejectUnauthorized: false, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  };
  const form = (o: Record<string, string>) => new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', ...o }).toString();

  test('happy path: a token for exactly the audience, act = the caller, verifiable with the published JWKS', async () => {
    const svid = await meshSvid(m.mesh, id('istio-system', 'ingress-gateway'));
    const r = await post(form({ subject_token: idp.token(), audience: 'api.shop' }), svid);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.ok(r.json.expires_in <= 300);
    const jwksDoc = await (await fetch(m.mesh.adminUrl('/.well-known/jwks.json'))).json();
    const file = join(side, 'mesh-jwks.json');
    writeFileSync(file, JSON.stringify(jwksDoc));
    const v = await runCliAsync(['jwt', 'verify', '--jwks', file, '--audience', 'api.shop', r.json.access_token]);
    const out = JSON.parse(v.stdout);
    assert.equal(out.valid, true, v.stdout);
    assert.equal(out.claims.act.sub, id('istio-system', 'ingress-gateway'));
    assert.equal(out.claims.sub, `${ISSUER}/alice`);
  });

  test('errors: no SVID 401 invalid_client; unknown audience invalid_target; bad subject invalid_request', async () => {
    const svid = await meshSvid(m.mesh, id('istio-system', 'ingress-gateway'));
    assert.equal((await post(form({ subject_token: idp.token(), audience: 'api.shop' }))).json.error, 'invalid_client');
    let r = await post(form({ subject_token: idp.token(), audience: 'nowhere.shop' }), svid);
    assert.deepEqual([r.status, r.json.error], [400, 'invalid_target']);
    r = await post(form({ subject_token: idp.token({ aud: 'billing' }), audience: 'api.shop' }), svid);
    assert.deepEqual([r.status, r.json.error], [400, 'invalid_request']);
    r = await post(form({ audience: 'api.shop' }), svid);
    assert.deepEqual([r.status, r.json.error], [400, 'invalid_request']);
  });
});

describe('per-route token exchange at the gateway', () => {
  test('the service receives a token minted for itself (act = the gateway); one minted for another audience is refused there', async () => {
    const admin = m.mesh.control!.info.adminPort;
    writeConfig(m.cfg, 'mesh-issuer.yaml', `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh-issuer, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  jwtRules:
  - issuer: https://ztmesh.cluster.local
    audiences: [api.shop]
    jwksUri: http://127.0.0.1:${admin}/.well-known/jwks.json
    outputClaimToHeaders: [{header: x-act, claim: act.sub}, {header: x-exchanged-sub, claim: sub}]
`);
    await waitFor('api applies the mesh-issuer rule', async () => {
      const r = await gw(m.gateways[0], 'GET', '/api/exchanged/1', { headers: bearer(idp.token()) });
      return r.status === 200 && m.app.last()?.headers['x-act'] ? r : null;
    }, 15_000, 100);
    const h = m.app.last()!.headers;
    assert.equal(h['x-act'], id('istio-system', 'ingress-gateway'));
    assert.equal(h['x-exchanged-sub'], `${ISSUER}/alice`);
    // A token minted for another service is refused by api's sidecar.
    const svid = await meshSvid(m.mesh, id('istio-system', 'ingress-gateway'));
    const https = await import('node:https');
    const other = await new Promise<any>((resolve, reject) => {
      const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', subject_token: idp.token(), audience: 'ingress-gateway.istio-system' }).toString();
      const req = https.request({ host: '127.0.0.1', port: m.mesh.control!.info.port, method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, key: svid.keyPem, cert: svid.chainPem, rejectUnauthorized: false, agent: false }, (res) => {
        const c: Buffer[] = [];
        res.on('data', (d: Buffer) => c.push(d));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(c).toString())));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.ok(other.access_token, JSON.stringify(other));
    const r = await mtlsRequest(m.api.ports.inbound, svid, 'GET', '/api/members/1', { authorization: `Bearer ${other.access_token}` });
    assert.equal(r.status, 401);
    // Without a token there is nothing to exchange: the request passes unauthenticated.
    assert.equal((await gw(m.gateways[0], 'GET', '/api/exchanged/2')).status, 200);
  });
});
