import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createPublicKey, generateKeyPairSync, sign as cryptoSign, createSecretKey, type KeyObject } from 'node:crypto';
import * as jose from 'jose';
import { parseCompactJws, verifyCompactJws, signCompactJws, checkJwtClaims, JWS_REJECT_REASONS, type JwsAlgorithm } from '../../src/identity/jws.js';
import { parseStrictJson } from '../../src/identity/strict-json.js';
import { issueJwtSvid, verifyJwtSvid, createJwtSigner, jwksDocument, jwkThumbprint } from '../../src/identity/jwt-svid.js';
import { BundleSet } from '../../src/identity/bundle.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');
const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const N256 = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/** Sign raw header/payload JSON text with ES256 (so we can craft malformed JSON that is still signed). */
function rawEs256(headerJson: string, payloadJson: string, key: KeyObject = ec256.privateKey): string {
  const input = `${b64(headerJson)}.${b64(payloadJson)}`;
  const sig = cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64(sig)}`;
}

function hex32(n: bigint): Buffer {
  return Buffer.from(n.toString(16).padStart(64, '0'), 'hex');
}

const PAYLOAD = '{"sub":"spiffe://cluster.local/ns/a/sa/b","aud":"svc","exp":4102444800}';
const good = rawEs256('{"alg":"ES256","typ":"JWT"}', PAYLOAD);
const [gh, gp, gs] = good.split('.');
const goodSig = Buffer.from(gs, 'base64url');

test('a valid ES256 token verifies; jose agrees', async () => {
  const r = verifyCompactJws(good, [ec256.publicKey]);
  assert.ok(r.ok);
  const j = await jose.compactVerify(good, ec256.publicKey);
  assert.equal(Buffer.from(j.payload).toString(), PAYLOAD);
});

test('JWS parser attack table', () => {
  const hs256 = (() => {
    const input = `${b64('{"alg":"HS256"}')}.${b64(PAYLOAD)}`;
    return `${input}.${b64(Buffer.alloc(32, 1))}`;
  })();
  const table: [string, string, string][] = [
    ['oversized token', rawEs256('{"alg":"ES256"}', JSON.stringify({ x: 'a'.repeat(20_000) })), 'too_large'],
    ['two parts', `${gh}.${gp}`, 'malformed'],
    ['four parts', `${good}.x`, 'malformed'],
    ['five parts (JWE)', `${gh}.a.b.c.d`, 'malformed'],
    ['empty header', `.${gp}.${gs}`, 'malformed'],
    ['empty payload', rawEs256('{"alg":"ES256"}', '').replace(/^([^.]+)\.\./, '$1..'), 'malformed'],
    ['padding in header', `${gh}=.${gp}.${gs}`, 'bad_base64url'],
    ['standard alphabet', `${gh}.${gp}.${gs.replace(/-/g, '+').replace(/_/g, '/')}${/[-_]/.test(gs) ? '' : '+'}`, 'bad_base64url'],
    ['whitespace', `${gh}.${gp} .${gs}`, 'bad_base64url'],
    ['non-canonical trailing bits', `${gh}.${gp}.${gs.slice(0, -1)}${gs.endsWith('A') ? 'B' : String.fromCharCode(gs.charCodeAt(gs.length - 1) ^ 1)}`, 'bad_base64url'],
    ['header not JSON', rawEs256('not json', PAYLOAD), 'bad_json'],
    ['header is an array', rawEs256('["ES256"]', PAYLOAD), 'bad_json'],
    ['header with BOM', rawEs256('\ufeff{"alg":"ES256"}', PAYLOAD), 'bad_json'],
    ['header trailing comma', rawEs256('{"alg":"ES256",}', PAYLOAD), 'bad_json'],
    ['payload not an object', rawEs256('{"alg":"ES256"}', '"str"'), 'bad_json'],
    ['payload invalid UTF-8', (() => {
      const input = `${b64('{"alg":"ES256"}')}.${b64(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))}`;
      return `${input}.${b64(cryptoSign('sha256', Buffer.from(input), { key: ec256.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
    })(), 'bad_json'],
    ['duplicate alg in header', rawEs256('{"alg":"none","alg":"ES256"}', PAYLOAD), 'duplicate_key'],
    ['duplicate sub in payload', rawEs256('{"alg":"ES256"}', '{"sub":"spiffe://cluster.local/ns/a/sa/b","sub":"spiffe://cluster.local/ns/kube-system/sa/admin","aud":"svc"}'), 'duplicate_key'],
    ['duplicate key via escape', rawEs256('{"alg":"ES256"}', '{"sub":"x","s\\u0075b":"y"}'), 'duplicate_key'],
    ['duplicate nested key', rawEs256('{"alg":"ES256"}', '{"a":{"b":1,"b":2}}'), 'duplicate_key'],
    ['missing alg', rawEs256('{"typ":"JWT"}', PAYLOAD), 'bad_header'],
    ['alg not a string', rawEs256('{"alg":256}', PAYLOAD), 'bad_header'],
    ['alg none', `${b64('{"alg":"none"}')}.${gp}.`, 'alg_none'],
    ['alg none with signature', `${b64('{"alg":"none"}')}.${gp}.${gs}`, 'alg_none'],
    ['alg None', `${b64('{"alg":"None"}')}.${gp}.${gs}`, 'alg_none'],
    ['alg NONE', `${b64('{"alg":"NONE"}')}.${gp}.${gs}`, 'alg_none'],
    ['alg nOnE', `${b64('{"alg":"nOnE"}')}.${gp}.${gs}`, 'alg_none'],
    ['alg " none "', `${b64('{"alg":" none "}')}.${gp}.${gs}`, 'alg_none'],
    ['HS256 (key confusion)', hs256, 'hmac_with_public_key'],
    ['hs512 lower case', `${b64('{"alg":"hs512"}')}.${gp}.${gs}`, 'hmac_with_public_key'],
    ['EdDSA not allowed', `${b64('{"alg":"EdDSA"}')}.${gp}.${gs}`, 'alg_not_allowed'],
    ['es256 wrong case', `${b64('{"alg":"es256"}')}.${gp}.${gs}`, 'alg_not_allowed'],
    ['embedded jwk', rawEs256(`{"alg":"ES256","jwk":${JSON.stringify(ec256.publicKey.export({ format: 'jwk' }))}}`, PAYLOAD), 'embedded_key'],
    ['jku', rawEs256('{"alg":"ES256","jku":"https://evil.example/jwks"}', PAYLOAD), 'embedded_key'],
    ['x5u', rawEs256('{"alg":"ES256","x5u":"https://evil.example/cert"}', PAYLOAD), 'embedded_key'],
    ['x5c', rawEs256('{"alg":"ES256","x5c":["MIIB"]}', PAYLOAD), 'embedded_key'],
    ['unknown crit', rawEs256('{"alg":"ES256","crit":["exp"],"exp":1}', PAYLOAD), 'unknown_crit'],
    ['crit not an array', rawEs256('{"alg":"ES256","crit":"x"}', PAYLOAD), 'unknown_crit'],
    ['empty crit', rawEs256('{"alg":"ES256","crit":[]}', PAYLOAD), 'unknown_crit'],
    ['crit lists a registered param', rawEs256('{"alg":"ES256","crit":["alg"]}', PAYLOAD), 'unknown_crit'],
    ['b64=false', rawEs256('{"alg":"ES256","b64":false}', PAYLOAD), 'unknown_crit'],
    ['kid not a string', rawEs256('{"alg":"ES256","kid":1}', PAYLOAD), 'bad_header'],
    ['empty signature', `${gh}.${gp}.`, 'missing_signature'],
    ['short ECDSA signature', `${gh}.${gp}.${b64(goodSig.subarray(0, 63))}`, 'bad_signature_encoding'],
    ['DER ECDSA signature', `${gh}.${gp}.${b64(cryptoSign('sha256', Buffer.from(`${gh}.${gp}`), ec256.privateKey))}`, 'bad_signature_encoding'],
    ['ECDSA r = 0', `${gh}.${gp}.${b64(Buffer.concat([hex32(0n), goodSig.subarray(32)]))}`, 'bad_ecdsa_signature'],
    ['ECDSA s = 0', `${gh}.${gp}.${b64(Buffer.concat([goodSig.subarray(0, 32), hex32(0n)]))}`, 'bad_ecdsa_signature'],
    ['ECDSA r = s = 0 (psychic signature)', `${gh}.${gp}.${b64(Buffer.alloc(64))}`, 'bad_ecdsa_signature'],
    ['ECDSA r = n', `${gh}.${gp}.${b64(Buffer.concat([hex32(N256), goodSig.subarray(32)]))}`, 'bad_ecdsa_signature'],
    ['ECDSA s = n', `${gh}.${gp}.${b64(Buffer.concat([goodSig.subarray(0, 32), hex32(N256)]))}`, 'bad_ecdsa_signature'],
    ['ECDSA s > n', `${gh}.${gp}.${b64(Buffer.concat([goodSig.subarray(0, 32), Buffer.alloc(32, 0xff)]))}`, 'bad_ecdsa_signature'],
    ['tampered payload', `${gh}.${b64(PAYLOAD.replace('sa/b', 'sa/c'))}.${gs}`, 'bad_signature'],
    ['signature by another key', rawEs256('{"alg":"ES256","typ":"JWT"}', PAYLOAD, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), 'bad_signature'],
    ['ES384 header with a P-256 key', rawEs256('{"alg":"ES384"}', PAYLOAD), 'key_mismatch'],
  ];
  const seen = new Set<string>();
  for (const [name, token, reason] of table) {
    const r = verifyCompactJws(token, [ec256.publicKey]);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, reason, `${name}: ${r.detail}`);
    seen.add(reason);
  }
  // Every reason is exercised: all but no_matching_key (below) and bad_typ (next test) by the table.
  for (const r of JWS_REJECT_REASONS) if (r !== 'no_matching_key' && r !== 'bad_typ') assert.ok(seen.has(r), `reason ${r} covered`);
  const none = verifyCompactJws(good, []);
  assert.equal(none.ok ? '' : none.reason, 'no_matching_key');
  // HMAC keys are never used, even if a caller passes a secret key.
  const secret = createSecretKey(Buffer.alloc(32, 1));
  const viaSecret = verifyCompactJws(good, [secret as KeyObject]);
  assert.equal(viaSecret.ok, false);
});

test('typ allow-list and maxLength are honoured', () => {
  const t = rawEs256('{"alg":"ES256","typ":"at+jwt"}', PAYLOAD);
  assert.throws(() => parseCompactJws(t, { allowedTyp: ['JWT', 'JOSE'] }), { reason: 'bad_typ' });
  assert.ok(parseCompactJws(rawEs256('{"alg":"ES256","typ":"jose"}', PAYLOAD), { allowedTyp: ['JWT', 'JOSE'] }));
  assert.throws(() => parseCompactJws(good, { maxLength: 50 }), { reason: 'too_large' });
  assert.ok(parseCompactJws(rawEs256('{"alg":"ES256","crit":["ztm"],"ztm":1}', PAYLOAD), { supportedCrit: ['ztm'] }));
});

test('all nine asymmetric algorithms sign and verify; jose verifies ours', async () => {
  const keys: Record<JwsAlgorithm, { privateKey: KeyObject; publicKey: KeyObject }> = {
    ES256: ec256,
    ES384: ec384,
    ES512: generateKeyPairSync('ec', { namedCurve: 'P-521' }),
    RS256: rsa,
    RS384: rsa,
    RS512: rsa,
    PS256: rsa,
    PS384: rsa,
    PS512: rsa,
  };
  for (const [alg, kp] of Object.entries(keys) as [JwsAlgorithm, { privateKey: KeyObject; publicKey: KeyObject }][]) {
    const tok = signCompactJws({ alg }, { sub: 'x', n: 1 }, kp.privateKey);
    const r = verifyCompactJws(tok, [kp.publicKey]);
    assert.ok(r.ok, alg);
    await jose.compactVerify(tok, kp.publicKey);
    // ...and tokens from jose verify with ours.
    const jt = await new jose.CompactSign(Buffer.from('{"a":1}')).setProtectedHeader({ alg }).sign(kp.privateKey);
    assert.ok(verifyCompactJws(jt, [kp.publicKey]).ok, `jose ${alg}`);
  }
  // PS256 with an RSA-PKCS1 signature fails and vice versa.
  const rs = signCompactJws({ alg: 'RS256' }, { a: 1 }, rsa.privateKey);
  const [h, p, s] = rs.split('.');
  const asPs = `${b64('{"alg":"PS256"}')}.${p}.${s}`;
  assert.equal(verifyCompactJws(asPs, [rsa.publicKey]).ok, false);
  void h;
  void constants;
});

test('strict JSON: duplicate keys anywhere, prototype keys are plain data', () => {
  assert.throws(() => parseStrictJson('{"a":1,"a":1}'), { reason: 'duplicate_key' });
  assert.throws(() => parseStrictJson('[{"x":[{"y":1,"y":2}]}]'), { reason: 'duplicate_key' });
  const o = parseStrictJson('{"__proto__":{"admin":true}}') as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).admin, undefined);
  assert.deepEqual(Object.keys(o), ['__proto__']);
  for (const bad of ['', '{', '{"a":01}', '{"a":1} x', "{'a':1}", '{"a":NaN}', '{"a":"\u0001"}', '{"a":1,}', '[1,]', '{"a":"\\x"}']) {
    assert.throws(() => parseStrictJson(bad), { name: 'StrictJsonError' }, JSON.stringify(bad));
  }
  assert.deepEqual(parseStrictJson(' {"a":[1,-2.5e3,true,false,null,"\\u00e9\\n"]} '), Object.assign(Object.create(null), { a: [1, -2500, true, false, null, 'é\n'] }));
});

test('JWT claims: exp, nbf, aud', () => {
  const now = 1_000_000;
  assert.equal(checkJwtClaims({ exp: now + 10, aud: 'a' }, { nowSeconds: now, audience: ['a'], requireExp: true }).ok, true);
  const r = (p: Record<string, never> | Record<string, unknown>, o = {}) => {
    const x = checkJwtClaims(p as never, { nowSeconds: now, audience: ['a'], requireExp: true, ...o });
    return x.ok ? 'ok' : x.reason;
  };
  assert.equal(r({ exp: now, aud: 'a' }), 'expired');
  assert.equal(r({ aud: 'a' }), 'missing_exp');
  assert.equal(r({ exp: '9999999999', aud: 'a' }), 'bad_claim');
  assert.equal(r({ exp: now + 10, aud: 'b' }), 'bad_audience');
  assert.equal(r({ exp: now + 10, aud: ['b', 'a'] }), 'ok');
  assert.equal(r({ exp: now + 10, aud: [] }), 'bad_claim');
  assert.equal(r({ exp: now + 10 }), 'missing_aud');
  assert.equal(r({ exp: now + 10, aud: 'a', nbf: now + 5 }), 'not_yet_valid');
  assert.equal(r({ exp: now + 10_000, aud: 'a' }, { maxLifetimeSeconds: 3600 }), 'lifetime_too_long');
});

test('JWT-SVID: issue, verify, audience mandatory, expiry, trust domain, JWKS', () => {
  const signer = createJwtSigner('ES256');
  const bundles = new BundleSet();
  bundles.addJwtAuthority('cluster.local', signer.kid, signer.privateKey);
  const now = Date.UTC(2030, 0, 1);
  const id = 'spiffe://cluster.local/ns/a/sa/b';
  const tok = issueJwtSvid({ spiffeId: id, audience: 'orders', signer, now });
  const header = JSON.parse(Buffer.from(tok.split('.')[0], 'base64url').toString());
  assert.deepEqual(header, { alg: 'ES256', kid: signer.kid, typ: 'JWT' });
  const ok = verifyJwtSvid(tok, bundles, { audience: 'orders', now });
  assert.ok(ok.ok);
  assert.equal(ok.spiffeId, id);
  assert.equal(ok.expiresAt.getTime(), now + 5 * 60_000);
  const v = (t: string, o: Partial<Parameters<typeof verifyJwtSvid>[2]> = {}) => {
    const r = verifyJwtSvid(t, bundles, { audience: 'orders', now, ...o });
    return r.ok ? 'ok' : r.reason;
  };
  assert.equal(v(tok, { audience: 'payments' }), 'bad_audience');
  assert.equal(v(tok, { now: now + 5 * 60_000 }), 'expired');
  assert.equal(v(tok, { expectedTrustDomain: 'other.td' }), 'wrong_trust_domain');
  assert.throws(() => verifyJwtSvid(tok, bundles, { audience: [], now }), { code: 'ZTM_USAGE' });
  // No aud / no exp / bad sub / other trust domain / unknown kid / typ.
  const sign = (h: Record<string, unknown>, p: Record<string, unknown>) => signCompactJws({ alg: 'ES256', kid: signer.kid, ...h }, p, signer.privateKey);
  const exp = Math.floor(now / 1000) + 60;
  assert.equal(v(sign({}, { sub: id, exp })), 'missing_aud');
  assert.equal(v(sign({}, { sub: id, aud: 'orders' })), 'missing_exp');
  assert.equal(v(sign({}, { aud: 'orders', exp })), 'missing_sub');
  assert.equal(v(sign({}, { sub: 'spiffe://cluster.local/ns/../x', aud: 'orders', exp })), 'invalid_spiffe_id');
  assert.equal(v(sign({}, { sub: 'spiffe://other.td/ns/a/sa/b', aud: 'orders', exp })), 'wrong_trust_domain');
  assert.equal(v(sign({ kid: 'nope' }, { sub: id, aud: 'orders', exp })), 'no_matching_key');
  assert.equal(v(sign({ typ: 'at+jwt' }, { sub: id, aud: 'orders', exp })), 'bad_typ');
  assert.equal(v(sign({ typ: 'JOSE' }, { sub: id, aud: 'orders', exp })), 'ok');
  // Without kid every key of the trust domain is tried.
  assert.equal(v(signCompactJws({ alg: 'ES256' }, { sub: id, aud: 'orders', exp }, signer.privateKey)), 'ok');
  // Lifetime is capped at 1 h.
  const long = issueJwtSvid({ spiffeId: id, audience: ['orders', 'x'], signer, now, ttlMs: 24 * 3_600_000 });
  const lr = verifyJwtSvid(long, bundles, { audience: 'x', now });
  assert.ok(lr.ok && lr.expiresAt.getTime() === now + 3_600_000);
  // JWKS and bundle document.
  const jwks = jwksDocument([signer]);
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].kid, signer.kid);
  assert.equal(jwks.keys[0].use, 'jwt-svid');
  assert.equal((jwks.keys[0] as Record<string, unknown>).d, undefined, 'no private part');
  assert.equal(jwkThumbprint(createPublicKey({ key: jwks.keys[0] as never, format: 'jwk' })), signer.kid);
  const doc = bundles.toSpiffeBundle('cluster.local');
  const b2 = new BundleSet();
  b2.setSpiffeBundle('cluster.local', JSON.parse(JSON.stringify(doc)));
  assert.ok(verifyJwtSvid(tok, b2, { audience: 'orders', now }).ok);
});
