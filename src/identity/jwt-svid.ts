/**
 * JWT-SVIDs per the JWT-SVID standard: a compact JWS signed with ES/RS/PS, `sub` is
 * the SPIFFE ID, `aud` is mandatory and checked, `exp` is mandatory and short, `typ`
 * (if present) is JWT or JOSE. Keys are published as a JWK Set (the SPIFFE bundle's
 * `jwt-svid` keys).
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, type JsonWebKey } from 'node:crypto';
import { readFile, mkdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { ZtmError } from '../errors.js';
import { checkJwtClaims, signCompactJws, verifyCompactJws, type ClaimsRejectReason, type JwsAlgorithm, type JwsRejectReason } from './jws.js';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.js';
import type { BundleSource } from './bundle.js';
import { openPrivateKey, sealPrivateKey } from './keystore.js';
import { writeFileAtomic, caPaths } from './ca.js';
import type { JsonValue } from './strict-json.js';

export const DEFAULT_JWT_SVID_TTL_MS = 5 * 60_000;
export const MAX_JWT_SVID_TTL_MS = 60 * 60_000;

export interface JwtSigner {
  kid: string;
  alg: JwsAlgorithm;
  privateKey: KeyObject;
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url). */
export function jwkThumbprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const j = pub.export({ format: 'jwk' }) as JsonWebKey;
  let canon: string;
  if (j.kty === 'EC') canon = JSON.stringify({ crv: j.crv, kty: j.kty, x: j.x, y: j.y });
  else if (j.kty === 'RSA') canon = JSON.stringify({ e: j.e, kty: j.kty, n: j.n });
  else if (j.kty === 'OKP') canon = JSON.stringify({ crv: j.crv, kty: j.kty, x: j.x });
  else throw new ZtmError('ZTM_INTERNAL', `cannot thumbprint key type ${j.kty}`);
  return createHash('sha256').update(canon).digest('base64url');
}

export function createJwtSigner(alg: JwsAlgorithm = 'ES256'): JwtSigner {
  let privateKey: KeyObject;
  if (alg.startsWith('ES')) {
    const curve = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg as 'ES256'];
    privateKey = generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
  } else privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  return { kid: jwkThumbprint(privateKey), alg, privateKey };
}

export interface IssueJwtSvidOptions {
  spiffeId: SpiffeId | string;
  audience: string | string[];
  signer: JwtSigner;
  /** Lifetime, default 5 min, at most 1 h. */
  ttlMs?: number;
  now?: number;
  /** Additional (non-registered) claims. */
  claims?: Record<string, unknown>;
}

export function issueJwtSvid(o: IssueJwtSvidOptions): string {
  const id = typeof o.spiffeId === 'string' ? parseSpiffeId(o.spiffeId) : o.spiffeId;
  const aud = Array.isArray(o.audience) ? o.audience : [o.audience];
  if (aud.length === 0 || aud.some((a) => typeof a !== 'string' || a === '')) throw new ZtmError('ZTM_USAGE', 'a JWT-SVID needs at least one non-empty audience');
  const ttl = Math.min(o.ttlMs ?? DEFAULT_JWT_SVID_TTL_MS, MAX_JWT_SVID_TTL_MS);
  const nowS = Math.floor((o.now ?? Date.now()) / 1000);
  const reserved = ['sub', 'aud', 'exp', 'iat', 'nbf'];
  const extra = Object.fromEntries(Object.entries(o.claims ?? {}).filter(([k]) => !reserved.includes(k)));
  return signCompactJws(
    { alg: o.signer.alg, kid: o.signer.kid, typ: 'JWT' },
    { ...extra, sub: id.toString(), aud: aud.length === 1 ? aud[0] : aud, exp: nowS + Math.max(1, Math.floor(ttl / 1000)), iat: nowS },
    o.signer.privateKey,
  );
}

export type JwtSvidRejectReason = JwsRejectReason | ClaimsRejectReason | 'missing_sub' | 'invalid_spiffe_id' | 'wrong_trust_domain';

export type JwtSvidVerifyResult =
  | { ok: true; spiffeId: string; id: SpiffeId; audience: string[]; expiresAt: Date; claims: Record<string, JsonValue> }
  | { ok: false; reason: JwtSvidRejectReason; detail: string };

export interface VerifyJwtSvidOptions {
  /** The audience(s) this verifier answers to; the token's `aud` must contain one. Required. */
  audience: string | readonly string[];
  now?: number;
  expectedTrustDomain?: string;
  clockSkewSeconds?: number;
  maxTokenLength?: number;
}

export function verifyJwtSvid(token: string, bundles: BundleSource, o: VerifyJwtSvidOptions): JwtSvidVerifyResult {
  const audience = typeof o.audience === 'string' ? [o.audience] : [...o.audience];
  if (audience.length === 0) throw new ZtmError('ZTM_USAGE', 'verifyJwtSvid needs the expected audience');
  let sub: SpiffeId | undefined;
  let subProblem: JwtSvidVerifyResult | undefined;
  const res = verifyCompactJws(
    token,
    (jws) => {
      const s = jws.payload.sub;
      if (typeof s !== 'string') {
        subProblem = { ok: false, reason: 'missing_sub', detail: 'the token has no string "sub"' };
        return undefined;
      }
      try {
        sub = parseSpiffeId(s);
      } catch (e) {
        subProblem = { ok: false, reason: 'invalid_spiffe_id', detail: (e as Error).message };
        return undefined;
      }
      if (o.expectedTrustDomain !== undefined && sub.trustDomain !== o.expectedTrustDomain) {
        subProblem = { ok: false, reason: 'wrong_trust_domain', detail: `the subject is in "${sub.trustDomain}", expected "${o.expectedTrustDomain}"` };
        return undefined;
      }
      const b = bundles.getBundle(sub.trustDomain);
      if (!b) {
        subProblem = { ok: false, reason: 'wrong_trust_domain', detail: `no bundle for trust domain "${sub.trustDomain}"` };
        return undefined;
      }
      return b.jwtAuthorities.filter((a) => jws.kid === undefined || a.kid === jws.kid).map((a) => a.key);
    },
    { allowedTyp: ['JWT', 'JOSE'], maxLength: o.maxTokenLength ?? 8192 },
  );
  if (subProblem) return subProblem;
  if (!res.ok) return res;
  const nowS = Math.floor((o.now ?? Date.now()) / 1000);
  const c = checkJwtClaims(res.jws.payload, {
    nowSeconds: nowS,
    audience,
    requireAud: true,
    requireExp: true,
    clockSkewSeconds: o.clockSkewSeconds ?? 0,
  });
  if (!c.ok) return c;
  const aud = res.jws.payload.aud;
  return {
    ok: true,
    spiffeId: sub!.toString(),
    id: sub!,
    audience: typeof aud === 'string' ? [aud] : (aud as string[]),
    expiresAt: new Date((res.jws.payload.exp as number) * 1000),
    claims: res.jws.payload,
  };
}

export interface JwksDocument {
  keys: (JsonWebKey & { kid: string; use: string; alg?: string })[];
}

/** A JWK Set with the public halves of `signers` (for relying parties and the SPIFFE bundle). */
export function jwksDocument(signers: (JwtSigner | { kid: string; key: KeyObject; alg?: string })[]): JwksDocument {
  return {
    keys: signers.map((s) => {
      const key = 'privateKey' in s ? createPublicKey(s.privateKey) : s.key.type === 'private' ? createPublicKey(s.key) : s.key;
      const jwk = key.export({ format: 'jwk' }) as JsonWebKey;
      return { ...jwk, kid: s.kid, use: 'jwt-svid', ...(s.alg ? { alg: s.alg } : {}) };
    }),
  };
}

/** The JWT-SVID signing key kept (sealed) beside the X.509 CA; created on first use. */
export async function loadOrCreateJwtSigner(dataDir: string, passphrase: string): Promise<JwtSigner> {
  const file = join(caPaths(dataDir).dir, 'jwt-signing.key.sealed');
  try {
    await access(file);
  } catch {
    const s = createJwtSigner('ES256');
    await mkdir(caPaths(dataDir).dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, await sealPrivateKey(s.privateKey, passphrase));
    return s;
  }
  const key = await openPrivateKey(await readFile(file, 'utf8'), passphrase, 'JWT signing key');
  return { kid: jwkThumbprint(key), alg: 'ES256', privateKey: key };
}
