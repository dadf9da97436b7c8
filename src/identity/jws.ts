/**
 * A strict compact-JWS parser and verifier (RFC 7515/7518), shared by JWT-SVIDs and the
 * gateway's end-user JWTs. It rejects, with a stable reason code:
 *  - oversized tokens, anything but three dot-separated parts, non-canonical base64url
 *  - headers/payloads that are not strict UTF-8 JSON objects, or that repeat a key
 *  - `alg: none` in any spelling, HMAC algorithms (verification is with public keys
 *    only), algorithms outside the allow-list, embedded key material (`jwk`, `jku`,
 *    `x5u`, `x5c`), unknown or malformed `crit`
 *  - a missing/empty signature, ECDSA signatures of the wrong length or with r or s
 *    equal to zero or ≥ the curve order, keys that do not fit the algorithm
 * and only then verifies the signature with node:crypto.
 */
import { constants, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { decodeBase64UrlStrict, encodeBase64Url } from '../util/base64url.js';
import { parseStrictJson, StrictJsonError, type JsonValue } from './strict-json.js';

export const JWS_REJECT_REASONS = [
  'too_large',
  'malformed',
  'bad_base64url',
  'bad_json',
  'duplicate_key',
  'bad_header',
  'alg_none',
  'hmac_with_public_key',
  'alg_not_allowed',
  'embedded_key',
  'unknown_crit',
  'bad_typ',
  'missing_signature',
  'bad_signature_encoding',
  'bad_ecdsa_signature',
  'no_matching_key',
  'key_mismatch',
  'bad_signature',
] as const;
export type JwsRejectReason = (typeof JWS_REJECT_REASONS)[number];

export class JwsError extends Error {
  constructor(
    readonly reason: JwsRejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'JwsError';
  }
}

export const ASYMMETRIC_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
export type JwsAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export const DEFAULT_MAX_TOKEN_LENGTH = 16 * 1024;

const EMBEDDED_KEY_PARAMS = ['jwk', 'jku', 'x5u', 'x5c'];
const REGISTERED_HEADER_PARAMS = new Set(['alg', 'jku', 'jwk', 'kid', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'typ', 'cty', 'crit', 'enc', 'zip']);

export interface ParseOptions {
  /** Longest accepted token, in characters (default 16 KiB). */
  maxLength?: number;
  /** Algorithms accepted (default: the nine asymmetric ES/RS/PS algorithms). */
  algorithms?: readonly string[];
  /** Header parameters this caller understands when listed in `crit` (default none). */
  supportedCrit?: readonly string[];
  /** If set, a present `typ` must be one of these (case-insensitive). */
  allowedTyp?: readonly string[];
}

export interface ParsedJws {
  header: Record<string, JsonValue>;
  alg: JwsAlgorithm;
  kid?: string;
  typ?: string;
  /** Decoded payload bytes. */
  payloadBytes: Buffer;
  /** The payload as a (strict, duplicate-free) JSON object. */
  payload: Record<string, JsonValue>;
  signingInput: Buffer;
  signature: Buffer;
}

function decodeSegment(s: string, what: string): Buffer {
  try {
    return decodeBase64UrlStrict(s);
  } catch (e) {
    throw new JwsError('bad_base64url', `${what}: ${(e as Error).message}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeJsonObject(bytes: Buffer, what: string): Record<string, JsonValue> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new JwsError('bad_json', `${what} is not valid UTF-8`);
  }
  if (text.charCodeAt(0) === 0xfeff) throw new JwsError('bad_json', `${what} starts with a byte-order mark`);
  let v: JsonValue;
  try {
    v = parseStrictJson(text);
  } catch (e) {
    if (e instanceof StrictJsonError && e.reason === 'duplicate_key') throw new JwsError('duplicate_key', `${what} has a ${e.message}`);
    throw new JwsError('bad_json', `${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new JwsError('bad_json', `${what} is not a JSON object`);
  return v as Record<string, JsonValue>;
}

const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Parse and structurally check a compact JWS; does NOT verify the signature. Throws JwsError. */
export function parseCompactJws(token: string, opts: ParseOptions = {}): ParsedJws {
  if (typeof token !== 'string') throw new JwsError('malformed', 'the token is not a string');
  const max = opts.maxLength ?? DEFAULT_MAX_TOKEN_LENGTH;
  if (token.length > max) throw new JwsError('too_large', `the token is ${token.length} characters, more than ${max}`);
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwsError('malformed', `a compact JWS has 3 parts, this has ${parts.length}`);
  const [h64, p64, s64] = parts;
  if (h64 === '') throw new JwsError('malformed', 'the header is empty');
  const header = decodeJsonObject(decodeSegment(h64, 'header'), 'the header');

  // alg
  if (!has(header, 'alg')) throw new JwsError('bad_header', 'the header has no "alg"');
  const alg = header.alg;
  if (typeof alg !== 'string') throw new JwsError('bad_header', '"alg" is not a string');
  if (alg.trim().toLowerCase() === 'none') throw new JwsError('alg_none', 'unsigned tokens (alg "none") are never accepted');
  if (/^hs\d+$/i.test(alg.trim())) throw new JwsError('hmac_with_public_key', `${alg} is a shared-secret algorithm; only public-key signatures are accepted`);
  const allowed = opts.algorithms ?? ASYMMETRIC_ALGORITHMS;
  if (!allowed.includes(alg) || !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new JwsError('alg_not_allowed', `algorithm "${alg}" is not allowed`);
  }

  for (const k of EMBEDDED_KEY_PARAMS) {
    if (has(header, k)) throw new JwsError('embedded_key', `the header carries "${k}": keys are never taken from the token`);
  }
  if (has(header, 'crit')) {
    const crit = header.crit;
    if (!Array.isArray(crit) || crit.length === 0 || crit.some((c) => typeof c !== 'string')) {
      throw new JwsError('unknown_crit', '"crit" must be a non-empty array of strings');
    }
    const seen = new Set<string>();
    for (const c of crit as string[]) {
      if (seen.has(c)) throw new JwsError('unknown_crit', `"crit" lists "${c}" twice`);
      seen.add(c);
      if (REGISTERED_HEADER_PARAMS.has(c)) throw new JwsError('unknown_crit', `"crit" must not list the registered parameter "${c}"`);
      if (!(opts.supportedCrit ?? []).includes(c)) throw new JwsError('unknown_crit', `critical header parameter "${c}" is not understood`);
      if (!has(header, c)) throw new JwsError('unknown_crit', `critical header parameter "${c}" is missing from the header`);
    }
  }
  if (has(header, 'b64') && !(opts.supportedCrit ?? []).includes('b64')) throw new JwsError('unknown_crit', 'the "b64" (unencoded payload) option is not supported');
  let kid: string | undefined;
  if (has(header, 'kid')) {
    if (typeof header.kid !== 'string') throw new JwsError('bad_header', '"kid" is not a string');
    kid = header.kid;
  }
  let typ: string | undefined;
  if (has(header, 'typ')) {
    if (typeof header.typ !== 'string') throw new JwsError('bad_header', '"typ" is not a string');
    typ = header.typ;
    if (opts.allowedTyp && !opts.allowedTyp.some((t) => t.toLowerCase() === typ!.toLowerCase())) {
      throw new JwsError('bad_typ', `"typ" "${typ}" is not one of ${opts.allowedTyp.join(', ')}`);
    }
  }

  if (s64 === '') throw new JwsError('missing_signature', 'the signature is empty');
  const signature = decodeSegment(s64, 'signature');
  if (signature.length === 0) throw new JwsError('missing_signature', 'the signature is empty');
  if (p64 === '') throw new JwsError('malformed', 'the payload is empty');
  const payloadBytes = decodeSegment(p64, 'payload');
  const payload = decodeJsonObject(payloadBytes, 'the payload');
  return {
    header,
    alg: alg as JwsAlgorithm,
    kid,
    typ,
    payloadBytes,
    payload,
    signingInput: Buffer.from(`${h64}.${p64}`, 'ascii'),
    signature,
  };
}

interface AlgSpec {
  hash: 'sha256' | 'sha384' | 'sha512';
  kind: 'ec' | 'rsa' | 'pss';
  curve?: string;
  /** ECDSA: curve order and coordinate size. */
  order?: bigint;
  size?: number;
}

const ORDERS = {
  p256: BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'),
  p384: BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'),
  p521: BigInt(
    '0x01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409',
  ),
};

const ALGS: Record<JwsAlgorithm, AlgSpec> = {
  ES256: { hash: 'sha256', kind: 'ec', curve: 'prime256v1', order: ORDERS.p256, size: 32 },
  ES384: { hash: 'sha384', kind: 'ec', curve: 'secp384r1', order: ORDERS.p384, size: 48 },
  ES512: { hash: 'sha512', kind: 'ec', curve: 'secp521r1', order: ORDERS.p521, size: 66 },
  RS256: { hash: 'sha256', kind: 'rsa' },
  RS384: { hash: 'sha384', kind: 'rsa' },
  RS512: { hash: 'sha512', kind: 'rsa' },
  PS256: { hash: 'sha256', kind: 'pss' },
  PS384: { hash: 'sha384', kind: 'pss' },
  PS512: { hash: 'sha512', kind: 'pss' },
};
const HASH_LEN = { sha256: 32, sha384: 48, sha512: 64 } as const;

/** Does `key` fit `alg`? Returns a problem description or undefined. */
export function keyMismatch(alg: JwsAlgorithm, key: KeyObject): string | undefined {
  const spec = ALGS[alg];
  if (key.type !== 'public') return 'verification keys must be public keys';
  const t = key.asymmetricKeyType;
  if (spec.kind === 'ec') {
    if (t !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== spec.curve) return `${alg} needs an EC ${spec.curve} key`;
    return undefined;
  }
  if (t !== 'rsa' && !(spec.kind === 'pss' && t === 'rsa-pss')) return `${alg} needs an RSA key`;
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return 'RSA keys must be at least 2048 bits';
  return undefined;
}

function bigFrom(b: Buffer): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + b.toString('hex'));
}

/** Verify `jws.signature` with `key`; throws JwsError. */
export function verifyJwsSignature(jws: ParsedJws, key: KeyObject): void {
  const spec = ALGS[jws.alg];
  const mm = keyMismatch(jws.alg, key);
  if (mm) throw new JwsError('key_mismatch', mm);
  let ok: boolean;
  if (spec.kind === 'ec') {
    const size = spec.size!;
    if (jws.signature.length !== 2 * size) throw new JwsError('bad_signature_encoding', `${jws.alg} signatures are ${2 * size} bytes (r||s), got ${jws.signature.length}`);
    const r = bigFrom(jws.signature.subarray(0, size));
    const s = bigFrom(jws.signature.subarray(size));
    if (r === 0n || s === 0n || r >= spec.order! || s >= spec.order!) {
      throw new JwsError('bad_ecdsa_signature', 'ECDSA r and s must be in [1, n-1]');
    }
    ok = cryptoVerify(spec.hash, jws.signingInput, { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
  } else if (spec.kind === 'rsa') {
    ok = cryptoVerify(spec.hash, jws.signingInput, { key, padding: constants.RSA_PKCS1_PADDING }, jws.signature);
  } else {
    ok = cryptoVerify(spec.hash, jws.signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LEN[spec.hash] }, jws.signature);
  }
  if (!ok) throw new JwsError('bad_signature', 'the signature does not verify');
}

export type KeyResolver = (jws: ParsedJws) => KeyObject | readonly KeyObject[] | undefined;

export type JwsVerifyResult = { ok: true; jws: ParsedJws; key: KeyObject } | { ok: false; reason: JwsRejectReason; detail: string };

/**
 * Parse, check and verify a compact JWS. `keys` is a fixed key list or a resolver
 * (e.g. by `kid`); with several candidates the first that verifies wins.
 */
export function verifyCompactJws(token: string, keys: KeyResolver | readonly KeyObject[], opts: ParseOptions = {}): JwsVerifyResult {
  let jws: ParsedJws;
  try {
    jws = parseCompactJws(token, opts);
  } catch (e) {
    if (e instanceof JwsError) return { ok: false, reason: e.reason, detail: e.message };
    throw e;
  }
  const found = typeof keys === 'function' ? keys(jws) : keys;
  const list = found === undefined ? [] : Array.isArray(found) ? (found as readonly KeyObject[]) : [found as KeyObject];
  const usable = list.filter((k) => !keyMismatch(jws.alg, k));
  if (list.length === 0) return { ok: false, reason: 'no_matching_key', detail: jws.kid ? `no key with kid "${jws.kid}"` : 'no verification key' };
  if (usable.length === 0) return { ok: false, reason: 'key_mismatch', detail: keyMismatch(jws.alg, list[0])! };
  let last: JwsError | undefined;
  for (const k of usable) {
    try {
      verifyJwsSignature(jws, k);
      return { ok: true, jws, key: k };
    } catch (e) {
      if (!(e instanceof JwsError)) throw e;
      last = e;
      if (e.reason !== 'bad_signature') break;
    }
  }
  return { ok: false, reason: last!.reason, detail: last!.message };
}

/** Sign a compact JWS (ES, RS and PS algorithms only). */
export function signCompactJws(header: Record<string, unknown> & { alg: JwsAlgorithm }, payload: Record<string, unknown>, privateKey: KeyObject): string {
  const spec = ALGS[header.alg];
  if (!spec) throw new JwsError('alg_not_allowed', `cannot sign with ${header.alg}`);
  const mm = keyMismatch(header.alg, createPublicKey(privateKey));
  if (mm) throw new JwsError('key_mismatch', mm);
  const input = `${encodeBase64Url(JSON.stringify(header))}.${encodeBase64Url(JSON.stringify(payload))}`;
  const data = Buffer.from(input, 'ascii');
  let sig: Buffer;
  if (spec.kind === 'ec') sig = cryptoSign(spec.hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  else if (spec.kind === 'rsa') sig = cryptoSign(spec.hash, data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
  else sig = cryptoSign(spec.hash, data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LEN[spec.hash] });
  return `${input}.${encodeBase64Url(sig)}`;
}

// ---------------------------------------------------------------- JWT claims

export type ClaimsRejectReason = 'missing_exp' | 'expired' | 'not_yet_valid' | 'missing_aud' | 'bad_audience' | 'bad_claim' | 'lifetime_too_long';

export interface ClaimsOptions {
  /** Seconds since epoch. */
  nowSeconds: number;
  /** Accept if `aud` contains any of these. Omit to skip the audience check. */
  audience?: readonly string[];
  requireExp?: boolean;
  requireAud?: boolean;
  clockSkewSeconds?: number;
  /** Reject tokens whose exp is further than this in the future. */
  maxLifetimeSeconds?: number;
}

export type ClaimsResult = { ok: true } | { ok: false; reason: ClaimsRejectReason; detail: string };

/** Registered-claim checks (RFC 7519 §4.1) for a payload from parseCompactJws. */
export function checkJwtClaims(p: Record<string, JsonValue>, o: ClaimsOptions): ClaimsResult {
  const skew = o.clockSkewSeconds ?? 0;
  const bad = (reason: ClaimsRejectReason, detail: string): ClaimsResult => ({ ok: false, reason, detail });
  for (const k of ['exp', 'nbf', 'iat'] as const) {
    if (has(p, k) && (typeof p[k] !== 'number' || !Number.isFinite(p[k] as number))) return bad('bad_claim', `"${k}" must be a NumericDate`);
  }
  if (has(p, 'exp')) {
    if (o.nowSeconds >= (p.exp as number) + skew) return bad('expired', `expired at ${new Date((p.exp as number) * 1000).toISOString()}`);
    if (o.maxLifetimeSeconds !== undefined && (p.exp as number) - o.nowSeconds > o.maxLifetimeSeconds + skew) {
      return bad('lifetime_too_long', `exp is more than ${o.maxLifetimeSeconds}s in the future`);
    }
  } else if (o.requireExp) return bad('missing_exp', 'the token has no "exp"');
  if (has(p, 'nbf') && o.nowSeconds + skew < (p.nbf as number)) return bad('not_yet_valid', 'the token is not valid yet (nbf)');
  if (has(p, 'aud')) {
    const aud = p.aud;
    const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string') ? (aud as string[]) : undefined;
    if (!list) return bad('bad_claim', '"aud" must be a string or a non-empty array of strings');
    if (o.audience && !list.some((a) => o.audience!.includes(a))) return bad('bad_audience', `audience ${JSON.stringify(list)} does not include ${JSON.stringify(o.audience)}`);
  } else if (o.requireAud || o.audience) return bad('missing_aud', 'the token has no "aud"');
  return { ok: true };
}
