/** crypto.* hashes/HMAC and io.jwt.* (decode, verify_*, decode_verify, encode_sign). */
import { createHash, createHmac, createPrivateKey, createPublicKey, createSecretKey, sign as cSign, timingSafeEqual, verify as cVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { decodeBase64UrlStrict, encodeBase64Url } from '../../util/base64url.js';
import { builtinErr, typeErr } from '../errors.js';
import { fromJSON, isNumber, parseJSONExact, RObject, toJSON, toJSONText, toFloat, typeName, type Value } from '../value.js';
import { obj, reg, str } from './registry.js';

for (const alg of ['md5', 'sha1', 'sha256', 'sha384', 'sha512'] as const) {
  reg(`crypto.${alg}`, 1, (a) => createHash(alg).update(str(`crypto.${alg}`, a, 0), 'utf8').digest('hex'));
  reg(`crypto.hmac.${alg}`, 2, (a) =>
    createHmac(alg, Buffer.from(str(`crypto.hmac.${alg}`, a, 1), 'utf8'))
      .update(str(`crypto.hmac.${alg}`, a, 0), 'utf8')
      .digest('hex'),
  );
}
reg('crypto.hmac.equal', 2, (a) => {
  const x = Buffer.from(str('crypto.hmac.equal', a, 0), 'utf8');
  const y = Buffer.from(str('crypto.hmac.equal', a, 1), 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
});

// ---------- JWT ----------
/** Go's base64.RawURLEncoding (as OPA uses for JWTs): trailing '=' is tolerated, trailing bits are not checked. */
function b64u(fn: string, s: string, what = 'JWT'): Buffer {
  const t = s.replace(/=+$/, '');
  for (let i = 0; i < t.length; i++) {
    if (!/[A-Za-z0-9_-]/.test(t[i])) throw builtinErr(fn, `${what} had invalid encoding: illegal base64 data at input byte ${i}`);
  }
  if (t.length % 4 === 1) throw builtinErr(fn, `${what} had invalid encoding: illegal base64 data at input byte ${t.length - 1}`);
  return Buffer.from(t, 'base64url');
}

interface Parts {
  header: RObject;
  payload: Value;
  sig: Buffer;
  signingInput: string;
  headerRaw: string;
}

function split(fn: string, token: string): string[] {
  const parts = token.split('.');
  if (parts.length === 1) throw builtinErr(fn, 'encoded JWT had no period separators');
  if (parts.length !== 3) throw builtinErr(fn, `encoded JWT must have 3 sections, found ${parts.length}`);
  return parts;
}

function parseJSONObj(fn: string, buf: Buffer, what: string): Value {
  try {
    return parseJSONExact(buf.toString('utf8'));
  } catch {
    throw builtinErr(fn, `JWT ${what} had invalid encoding: not valid JSON`);
  }
}

function decodeParts(fn: string, token: string): Parts {
  const [h, p, s] = split(fn, token);
  const header = parseJSONObj(fn, b64u(fn, h, 'JWT header'), 'header');
  if (!(header instanceof RObject)) throw builtinErr(fn, 'JWT header must be an object');
  if (header.has('enc')) throw builtinErr(fn, 'JWT is a JWE object, which is not supported');
  const pbuf = b64u(fn, p, 'JWT payload');
  let payload: Value;
  const cty = header.getStr('cty');
  if (typeof cty === 'string' && cty.toUpperCase() === 'JWT') {
    const txt = pbuf.toString('utf8');
    payload = txt.startsWith('"') ? (JSON.parse(txt) as string) : txt;
  } else {
    payload = parseJSONObj(fn, pbuf, 'payload');
    if (!(payload instanceof RObject)) throw builtinErr(fn, 'JWT payload must be an object');
  }
  return { header, payload, sig: b64u(fn, s), signingInput: `${h}.${p}`, headerRaw: h };
}

reg('io.jwt.decode', 1, (a) => {
  const token = str('io.jwt.decode', a, 0);
  let parts = decodeParts('io.jwt.decode', token);
  // nested JWT
  while (typeof parts.payload === 'string') parts = decodeParts('io.jwt.decode', parts.payload);
  return [parts.header, parts.payload, parts.sig.toString('hex')];
});

const ALGS: Record<string, { kind: 'hmac' | 'rsa' | 'pss' | 'ec' | 'eddsa'; hash?: string; size?: number }> = {
  HS256: { kind: 'hmac', hash: 'sha256' },
  HS384: { kind: 'hmac', hash: 'sha384' },
  HS512: { kind: 'hmac', hash: 'sha512' },
  RS256: { kind: 'rsa', hash: 'sha256' },
  RS384: { kind: 'rsa', hash: 'sha384' },
  RS512: { kind: 'rsa', hash: 'sha512' },
  PS256: { kind: 'pss', hash: 'sha256' },
  PS384: { kind: 'pss', hash: 'sha384' },
  PS512: { kind: 'pss', hash: 'sha512' },
  ES256: { kind: 'ec', hash: 'sha256', size: 32 },
  ES384: { kind: 'ec', hash: 'sha384', size: 48 },
  ES512: { kind: 'ec', hash: 'sha512', size: 66 },
  EdDSA: { kind: 'eddsa' },
};

/** Public keys from a PEM certificate, PEM public key, JWK or JWKS. */
function publicKeys(fn: string, material: string): KeyObject[] {
  const t = material.trim();
  if (t.startsWith('{')) {
    let j: unknown;
    try {
      j = JSON.parse(t);
    } catch {
      throw builtinErr(fn, 'failed to parse a JWK key (set)');
    }
    const keys = (j as { keys?: unknown[] }).keys ?? [j];
    const out: KeyObject[] = [];
    for (const k of keys) {
      try {
        out.push(createPublicKey({ key: k as import('node:crypto').JsonWebKey, format: 'jwk' }));
      } catch {
        /* skip unusable keys */
      }
    }
    if (!out.length) throw builtinErr(fn, 'failed to parse a JWK key (set)');
    return out;
  }
  if (t.includes('-----BEGIN')) {
    const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(t);
    if (!m) throw builtinErr(fn, 'failed to extract a Key from the PEM certificate');
    const rest = t.slice(m.index + m[0].length).trim();
    if (rest !== '') throw builtinErr(fn, `extra data after a PEM ${m[1] === 'CERTIFICATE' ? 'certificate' : 'key'} block`);
    if (m[1] === 'CERTIFICATE') {
      try {
        return [new X509Certificate(m[0]).publicKey];
      } catch {
        throw builtinErr(fn, 'failed to parse a PEM certificate');
      }
    }
    if (!/PUBLIC KEY$/.test(m[1])) throw builtinErr(fn, 'failed to extract a Key from the PEM certificate');
    try {
      return [createPublicKey(m[0])];
    } catch {
      throw builtinErr(fn, 'failed to parse a PEM public key');
    }
  }
  throw builtinErr(fn, 'failed to find a PEM block containing a public key or certificate');
}

function verifySig(alg: string, input: string, sig: Buffer, key: KeyObject | Buffer): boolean {
  const a = ALGS[alg];
  if (!a) return false;
  try {
    switch (a.kind) {
      case 'hmac': {
        const mac = createHmac(a.hash!, key as Buffer).update(input).digest();
        return mac.length === sig.length && timingSafeEqual(mac, sig);
      }
      case 'rsa':
        return cVerify(a.hash!, Buffer.from(input), key as KeyObject, sig);
      case 'pss':
        return cVerify(a.hash!, Buffer.from(input), { key: key as KeyObject, padding: 6, saltLength: -1 }, sig);
      case 'ec':
        if (sig.length !== a.size! * 2) return false;
        return cVerify(a.hash!, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' }, sig);
      case 'eddsa':
        return cVerify(null, Buffer.from(input), key as KeyObject, sig);
    }
  } catch {
    return false;
  }
  return false;
}

function verifyWith(fn: string, alg: string, token: string, keyArg: string): boolean {
  const [h, p, s] = split(fn, token);
  let sig: Buffer;
  try {
    sig = b64u(fn, s);
  } catch {
    return false;
  }
  const input = `${h}.${p}`;
  const a = ALGS[alg];
  if (a.kind === 'hmac') return verifySig(alg, input, sig, Buffer.from(keyArg, 'utf8'));
  const keys = publicKeys(fn, keyArg);
  return keys.some((k) => verifySig(alg, input, sig, k));
}

for (const alg of Object.keys(ALGS)) {
  const name = alg === 'EdDSA' ? 'io.jwt.verify_eddsa' : `io.jwt.verify_${alg.toLowerCase()}`;
  reg(name, 2, (a) => verifyWith(name, alg, str(name, a, 0), str(name, a, 1)));
}

reg('io.jwt.decode_verify', 2, (a, ctx) => {
  const fn = 'io.jwt.decode_verify';
  const token = str(fn, a, 0);
  const c = obj(fn, a, 1);
  const unverified: Value = [false, new RObject(), new RObject()];
  let cert: string | undefined;
  let secret: string | undefined;
  let wantAlg: string | undefined;
  let iss: string | undefined;
  let aud: string | undefined;
  let time: number | undefined;
  for (const [k, v] of c.entries()) {
    switch (k) {
      case 'cert':
        if (typeof v !== 'string') throw typeErr(fn, 'cert constraint must be a string');
        cert = v;
        break;
      case 'secret':
        if (typeof v !== 'string') throw typeErr(fn, 'secret constraint must be a string');
        secret = v;
        break;
      case 'alg':
        if (typeof v !== 'string') throw typeErr(fn, 'alg constraint must be a string');
        wantAlg = v;
        break;
      case 'iss':
        if (typeof v !== 'string') throw typeErr(fn, 'iss constraint must be a string');
        iss = v;
        break;
      case 'aud':
        if (typeof v !== 'string') throw typeErr(fn, 'aud constraint must be a string');
        aud = v;
        break;
      case 'time':
        if (!isNumber(v)) throw typeErr(fn, 'time constraint must be a number');
        time = toFloat(v);
        break;
      default:
        throw builtinErr(fn, `unknown token validation constraint: ${String(k)}`);
    }
  }
  if (cert === undefined && secret === undefined) throw builtinErr(fn, 'no key material provided');
  let parts: Parts;
  try {
    parts = decodeParts(fn, token);
  } catch (e) {
    throw e;
  }
  // verify the outermost signature
  const alg = parts.header.getStr('alg');
  if (typeof alg !== 'string' || !ALGS[alg]) return unverified;
  if (parts.header.has('crit')) return unverified;
  if (wantAlg !== undefined && wantAlg !== alg) return unverified;
  let ok = false;
  if (ALGS[alg].kind === 'hmac') {
    if (secret === undefined) return unverified;
    ok = verifySig(alg, parts.signingInput, parts.sig, Buffer.from(secret, 'utf8'));
  } else {
    if (cert === undefined) return unverified;
    const keys = publicKeys(fn, cert);
    ok = keys.some((k) => verifySig(alg, parts.signingInput, parts.sig, k));
  }
  if (!ok) return unverified;
  let header = parts.header;
  let payload = parts.payload;
  while (typeof payload === 'string') {
    const inner = decodeParts(fn, payload);
    header = inner.header;
    payload = inner.payload;
  }
  const pl = payload as RObject;
  const now = time ?? Number(ctx.nowNs);
  const exp = pl.getStr('exp');
  if (exp !== undefined) {
    if (!isNumber(exp)) throw builtinErr(fn, 'exp value must be a number');
    if (now / 1e9 >= toFloat(exp)) return unverified;
  }
  const nbf = pl.getStr('nbf');
  if (nbf !== undefined) {
    if (!isNumber(nbf)) throw builtinErr(fn, 'nbf value must be a number');
    if (now / 1e9 < toFloat(nbf)) return unverified;
  }
  if (iss !== undefined && pl.getStr('iss') !== iss) return unverified;
  const tAud = pl.getStr('aud');
  if (aud !== undefined) {
    if (tAud === undefined) return unverified;
    if (typeof tAud === 'string') {
      if (tAud !== aud) return unverified;
    } else if (Array.isArray(tAud)) {
      if (!tAud.includes(aud)) return unverified;
    } else return unverified;
  } else if (tAud !== undefined) return unverified;
  return [true, header, pl];
});

function signingKey(fn: string, alg: string, jwk: Value): KeyObject | Buffer {
  const j = toJSON(jwk) as Record<string, unknown>;
  const a = ALGS[alg];
  if (!a) throw builtinErr(fn, `unknown signature algorithm ${alg}`);
  if (a.kind === 'hmac') {
    if (typeof j.k !== 'string') throw builtinErr(fn, 'invalid JWK for HMAC');
    return decodeBase64UrlStrict(j.k.replace(/=+$/, ''));
  }
  try {
    return createPrivateKey({ key: j as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch (e) {
    throw builtinErr(fn, `invalid JWK: ${(e as Error).message}`);
  }
}

function signWith(alg: string, input: string, key: KeyObject | Buffer): Buffer {
  const a = ALGS[alg];
  switch (a.kind) {
    case 'hmac':
      return createHmac(a.hash!, key as Buffer).update(input).digest();
    case 'rsa':
      return cSign(a.hash!, Buffer.from(input), key as KeyObject);
    case 'pss':
      return cSign(a.hash!, Buffer.from(input), { key: key as KeyObject, padding: 6, saltLength: -2 as number });
    case 'ec':
      return cSign(a.hash!, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
    case 'eddsa':
      return cSign(null, Buffer.from(input), key as KeyObject);
  }
}

reg('io.jwt.encode_sign', 3, (a) => {
  const fn = 'io.jwt.encode_sign';
  const h = obj(fn, a, 0);
  const p = obj(fn, a, 1);
  const k = obj(fn, a, 2);
  const alg = h.getStr('alg');
  if (typeof alg !== 'string') throw builtinErr(fn, 'missing alg header');
  const input = encodeBase64Url(toJSONText(h)) + '.' + encodeBase64Url(toJSONText(p));
  const sig = signWith(alg, input, signingKey(fn, alg, k));
  return input + '.' + encodeBase64Url(sig);
});
reg('io.jwt.encode_sign_raw', 3, (a) => {
  const fn = 'io.jwt.encode_sign_raw';
  const hs = str(fn, a, 0);
  const ps = str(fn, a, 1);
  const ks = str(fn, a, 2);
  let h: Value;
  let k: Value;
  try {
    h = parseJSONExact(hs);
    k = parseJSONExact(ks);
  } catch {
    throw builtinErr(fn, 'invalid JSON');
  }
  const alg = h instanceof RObject ? h.getStr('alg') : undefined;
  if (typeof alg !== 'string') throw builtinErr(fn, 'missing alg header');
  const input = encodeBase64Url(hs) + '.' + encodeBase64Url(ps);
  const sig = signWith(alg, input, signingKey(fn, alg, k));
  return input + '.' + encodeBase64Url(sig);
});

