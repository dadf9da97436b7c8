/**
 * RequestAuthentication (Istio semantics) as a pure decision: which jwtRules select a
 * workload, where tokens are taken from, and what a token proves.
 *  - no token → the request passes unauthenticated (authorization decides);
 *  - a token that does not verify → 401 (`WWW-Authenticate: Bearer error="invalid_token"`);
 *  - a verified token → `request.auth.*` for authorization: principal `iss/sub`,
 *    audiences, presenter (`azp`) and the claims.
 * Tokens are parsed by the strict JWS parser (identity/jws.ts); keys come from inline
 * `jwks` or a fetched `jwksUri` (never from the token). More than one distinct token on a
 * request is refused (the principal would be ambiguous).
 */
import type { KeyObject } from 'node:crypto';
import type { RequestAuthentication } from '../config/types.js';
import { parseCompactJws, verifyJwsSignature, checkJwtClaims, JwsError, DEFAULT_MAX_TOKEN_LENGTH } from '../identity/jws.js';
import type { JsonValue } from '../identity/strict-json.js';
import { parseJwks, keysFor, type JwksKey } from '../identity/jwks.js';
import { selectorMatches } from './select.js';
import { parseIstioDuration } from '../config/duration.js';
import type { AuthzInput } from './request.js';

export const DEFAULT_LEEWAY_SECONDS = 60;
/** Istio's default for jwtRules[].timeout: how long a JWKS fetch may take. */
export const DEFAULT_JWKS_TIMEOUT_MS = 5000;
/** Annotation on a RequestAuthentication that sets the clock-skew leeway (seconds) for its rules. */
export const LEEWAY_ANNOTATION = 'ztmesh.io/jwt-leeway-seconds';

export interface TokenLocation {
  kind: 'header' | 'param' | 'cookie';
  name: string;
  prefix?: string;
}

export interface CompiledJwtRule {
  /** `namespace/name` of the RequestAuthentication, and the rule index. */
  policy: string;
  issuer?: string;
  audiences: string[];
  jwksUri?: string;
  /** How long a fetch of `jwksUri` may take (jwtRules[].timeout, default 5 s); slower fails closed. */
  jwksTimeoutMs: number;
  inlineKeys?: JwksKey[];
  /** Set when inline `jwks` did not parse: tokens for this issuer fail closed. */
  inlineError?: string;
  locations: TokenLocation[];
  outputPayloadToHeader?: string;
  outputClaimToHeaders: { header: string; claim: string }[];
  forwardOriginalToken: boolean;
  leewaySeconds: number;
}

export interface RequestAuthnConfig {
  rules: CompiledJwtRule[];
  maxTokenLength: number;
  /** Every header name a rule writes (stripped from client requests, whatever happens). */
  outputHeaders: string[];
  /** Tokens whose signature verified, and with which key (see VerifiedSignatures). */
  verified: VerifiedSignatures;
}

/** Default size of the verified-signature cache (Envoy's jwt_cache_size default is 100). */
export const DEFAULT_JWT_CACHE_SIZE = 100;

/**
 * A bounded memo of signature checks that succeeded: token → the key that verified it. A
 * signature check is a pure function of the token's bytes and the key, so a later request
 * with the same token skips the public-key operation when that same key (the same KeyObject:
 * a refreshed JWKS brings new ones) is still among the rule's keys. Only successes are kept,
 * so clients cannot fill it with garbage; time claims, issuer and audiences are checked on
 * every request. Least recently used entries go first; size 0 turns it off.
 */
export class VerifiedSignatures {
  private readonly map = new Map<string, KeyObject>();
  hits = 0;

  constructor(readonly size: number = DEFAULT_JWT_CACHE_SIZE) {}

  /** The key that verified `token` before, if it is among `keys`. */
  lookup(token: string, keys: readonly KeyObject[]): KeyObject | undefined {
    const k = this.map.get(token);
    if (k === undefined || !keys.includes(k)) return undefined;
    this.map.delete(token);
    this.map.set(token, k); // most recently used last
    this.hits++;
    return k;
  }

  remember(token: string, key: KeyObject): void {
    if (this.size <= 0) return;
    this.map.delete(token);
    this.map.set(token, key);
    if (this.map.size > this.size) this.map.delete(this.map.keys().next().value as string);
  }
}

/** Istio's default locations: `Authorization: Bearer <token>` and the `access_token` query parameter. */
export const DEFAULT_LOCATIONS: readonly TokenLocation[] = Object.freeze([
  { kind: 'header', name: 'authorization', prefix: 'Bearer ' },
  { kind: 'param', name: 'access_token' },
] as TokenLocation[]);

/** The jwtRules of every RequestAuthentication that selects `workload` (its namespace and the root namespace). */
export function compileRequestAuthn(
  ras: readonly RequestAuthentication[],
  workload: { namespace: string; labels: Record<string, string> },
  rootNamespace: string,
  opts: { maxTokenLength?: number; cacheSize?: number } = {},
): RequestAuthnConfig {
  const rules: CompiledJwtRule[] = [];
  for (const ra of ras) {
    const ns = ra.metadata.namespace;
    if (ns !== workload.namespace && ns !== rootNamespace) continue;
    if (!selectorMatches(ra.spec.selector?.matchLabels, workload.labels)) continue;
    const leewayText = ra.metadata.annotations?.[LEEWAY_ANNOTATION];
    const leeway = leewayText !== undefined && /^[0-9]{1,6}$/.test(leewayText) ? Number(leewayText) : DEFAULT_LEEWAY_SECONDS;
    (ra.spec.jwtRules ?? []).forEach((r, i) => {
      let inlineKeys: JwksKey[] | undefined;
      let inlineError: string | undefined;
      if (r.jwks) {
        try {
          inlineKeys = parseJwks(r.jwks);
        } catch (e) {
          inlineError = (e as Error).message;
        }
      }
      const locations: TokenLocation[] = [];
      for (const h of r.fromHeaders ?? []) locations.push({ kind: 'header', name: h.name.toLowerCase(), prefix: h.prefix });
      for (const p of r.fromParams ?? []) locations.push({ kind: 'param', name: p });
      for (const c of r.fromCookies ?? []) locations.push({ kind: 'cookie', name: c });
      rules.push({
        policy: `${ns}/${ra.metadata.name}#${i}`,
        issuer: r.issuer,
        audiences: r.audiences ?? [],
        jwksUri: r.jwks ? undefined : r.jwksUri,
        jwksTimeoutMs: (r.timeout !== undefined ? parseIstioDuration(r.timeout) : undefined) ?? DEFAULT_JWKS_TIMEOUT_MS,
        inlineKeys,
        inlineError,
        locations: locations.length ? locations : [...DEFAULT_LOCATIONS],
        outputPayloadToHeader: r.outputPayloadToHeader?.toLowerCase(),
        outputClaimToHeaders: (r.outputClaimToHeaders ?? []).map((o) => ({ header: o.header.toLowerCase(), claim: o.claim })),
        forwardOriginalToken: r.forwardOriginalToken ?? false,
        leewaySeconds: leeway,
      });
    });
  }
  const outputHeaders = [...new Set(rules.flatMap((r) => [...(r.outputPayloadToHeader ? [r.outputPayloadToHeader] : []), ...r.outputClaimToHeaders.map((o) => o.header)]))];
  return { rules, maxTokenLength: opts.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH, outputHeaders, verified: new VerifiedSignatures(opts.cacheSize) };
}

export interface AuthnRequest {
  /** Lower-case header names (as node:http gives them). */
  headers: Record<string, string | string[] | undefined>;
  /** The raw query string, without `?`. */
  query: string;
}

export type AuthnRejectReason =
  | 'multiple_tokens'
  | 'unknown_issuer'
  | 'jwks_unavailable'
  | 'missing_iss'
  | 'bad_iss'
  | import('../identity/jws.js').JwsRejectReason
  | import('../identity/jws.js').ClaimsRejectReason;

export type AuthnResult =
  | { kind: 'none' }
  | { kind: 'ok'; auth: NonNullable<AuthzInput['auth']>; rule: CompiledJwtRule; token: string; location: TokenLocation; payload: Record<string, JsonValue>; payloadB64: string }
  | { kind: 'reject'; reason: AuthnRejectReason; detail: string; rule?: CompiledJwtRule }
  /** Keys for this rule are not loaded yet: fetch `jwksUri`, then decide again. */
  | { kind: 'need_keys'; rule: CompiledJwtRule; jwksUri: string };

function headerValues(h: AuthnRequest['headers'], name: string): string[] {
  const v = h[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function extract(req: AuthnRequest, loc: TokenLocation, params: () => URLSearchParams, cookies: () => Map<string, string[]>): string[] {
  if (loc.kind === 'header') {
    const out: string[] = [];
    for (const raw of headerValues(req.headers, loc.name)) {
      const v = raw.trim();
      if (!loc.prefix) {
        if (v) out.push(v);
        continue;
      }
      // Envoy matches the prefix case-insensitively for the Authorization scheme.
      if (v.length > loc.prefix.length && v.slice(0, loc.prefix.length).toLowerCase() === loc.prefix.toLowerCase()) out.push(v.slice(loc.prefix.length).trim());
    }
    return out;
  }
  if (loc.kind === 'param') return params().getAll(loc.name).filter((x) => x !== '');
  return (cookies().get(loc.name) ?? []).filter((x) => x !== '');
}

function parseCookies(h: AuthnRequest['headers']): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of headerValues(h, 'cookie')) {
    for (const part of line.split(';')) {
      const i = part.indexOf('=');
      if (i <= 0) continue;
      const k = part.slice(0, i).trim();
      const v = part.slice(i + 1).trim().replace(/^"(.*)"$/, '$1');
      const list = m.get(k) ?? [];
      list.push(v);
      m.set(k, list);
    }
  }
  return m;
}

/**
 * Authenticate a request against `cfg`. `remoteKeys(uri)` returns the cached keys of a
 * jwksUri, or undefined when they were never fetched (→ `need_keys`, or with
 * `keysUnavailable` set, a fail-closed rejection).
 */
export function authenticate(
  cfg: RequestAuthnConfig,
  req: AuthnRequest,
  remoteKeys: (uri: string) => readonly JwksKey[] | undefined,
  nowSeconds: number,
  keysUnavailable?: (uri: string) => string | null,
): AuthnResult {
  if (cfg.rules.length === 0) return { kind: 'none' };
  let params: URLSearchParams | undefined;
  let cookies: Map<string, string[]> | undefined;
  const getParams = () => (params ??= new URLSearchParams(req.query));
  const getCookies = () => (cookies ??= parseCookies(req.headers));
  // Every distinct token, with the rules whose locations it was found at.
  const found = new Map<string, { rules: CompiledJwtRule[]; location: TokenLocation }>();
  for (const rule of cfg.rules) {
    for (const loc of rule.locations) {
      for (const t of extract(req, loc, getParams, getCookies)) {
        const f = found.get(t);
        if (f) {
          if (!f.rules.includes(rule)) f.rules.push(rule);
        } else found.set(t, { rules: [rule], location: loc });
      }
    }
  }
  if (found.size === 0) return { kind: 'none' };
  if (found.size > 1) return { kind: 'reject', reason: 'multiple_tokens', detail: `the request carries ${found.size} different tokens; send exactly one` };
  const [[token, { rules, location }]] = [...found];

  let jws;
  try {
    jws = parseCompactJws(token, { maxLength: cfg.maxTokenLength });
  } catch (e) {
    if (e instanceof JwsError) return { kind: 'reject', reason: e.reason, detail: e.message };
    throw e;
  }
  const iss = jws.payload.iss;
  if (iss === undefined) return { kind: 'reject', reason: 'missing_iss', detail: 'the token has no "iss"' };
  if (typeof iss !== 'string') return { kind: 'reject', reason: 'bad_iss', detail: '"iss" is not a string' };
  const candidates = rules.filter((r) => r.issuer === undefined || r.issuer === iss);
  if (candidates.length === 0) return { kind: 'reject', reason: 'unknown_issuer', detail: `Jwt issuer is not configured: "${iss}"` };

  let last: AuthnResult | undefined;
  for (const rule of candidates) {
    let set: readonly JwksKey[] | undefined;
    if (rule.inlineKeys) set = rule.inlineKeys;
    else if (rule.inlineError) {
      last = { kind: 'reject', reason: 'jwks_unavailable', detail: `the rule's inline jwks is unusable: ${rule.inlineError}`, rule };
      continue;
    } else if (rule.jwksUri) {
      set = remoteKeys(rule.jwksUri);
      if (!set) {
        const why = keysUnavailable?.(rule.jwksUri);
        if (why === null || why === undefined) return { kind: 'need_keys', rule, jwksUri: rule.jwksUri };
        last = { kind: 'reject', reason: 'jwks_unavailable', detail: `the JWKS at ${rule.jwksUri} could not be fetched: ${why}`, rule };
        continue;
      }
    } else set = [];
    const keys: KeyObject[] = keysFor(set, jws.kid, jws.alg);
    if (keys.length === 0) {
      last = { kind: 'reject', reason: 'no_matching_key', detail: jws.kid ? `no key with kid "${jws.kid}" for issuer "${iss}"` : `no key for issuer "${iss}"`, rule };
      continue;
    }
    let verified = cfg.verified.lookup(token, keys) !== undefined;
    let err: JwsError | undefined;
    for (const k of verified ? [] : keys) {
      try {
        verifyJwsSignature(jws, k);
        verified = true;
        cfg.verified.remember(token, k);
        break;
      } catch (e) {
        if (!(e instanceof JwsError)) throw e;
        err = e;
        if (e.reason !== 'bad_signature' && e.reason !== 'key_mismatch') break;
      }
    }
    if (!verified) {
      last = { kind: 'reject', reason: err!.reason, detail: err!.message, rule };
      continue;
    }
    const c = checkJwtClaims(jws.payload, {
      nowSeconds,
      audience: rule.audiences.length ? rule.audiences : undefined,
      clockSkewSeconds: rule.leewaySeconds,
    });
    if (!c.ok) {
      last = { kind: 'reject', reason: c.reason, detail: c.detail, rule };
      continue;
    }
    const p = jws.payload;
    const sub = typeof p.sub === 'string' ? p.sub : '';
    const aud = typeof p.aud === 'string' ? [p.aud] : Array.isArray(p.aud) ? (p.aud.filter((a) => typeof a === 'string') as string[]) : [];
    return {
      kind: 'ok',
      auth: { principal: `${iss}/${sub}`, audiences: aud, presenter: typeof p.azp === 'string' ? p.azp : undefined, claims: p as Record<string, unknown> },
      rule,
      token,
      location,
      payload: p,
      payloadB64: token.split('.')[1],
    };
  }
  return last!;
}

/** A claim by name; a dotted name reaches into nested objects (`realm.role`). */
export function claimValue(payload: Record<string, JsonValue>, name: string): JsonValue | undefined {
  if (Object.prototype.hasOwnProperty.call(payload, name)) return payload[name];
  let cur: JsonValue | undefined = payload;
  for (const part of name.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, part)) return undefined;
    cur = (cur as Record<string, JsonValue>)[part];
  }
  return cur;
}

/**
 * Header changes after a successful authentication: output headers (payload, claims) and,
 * unless forwardOriginalToken, the token's header removed. Returns [set, remove].
 */
export function authnHeaderEdits(r: Extract<AuthnResult, { kind: 'ok' }>): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  if (r.rule.outputPayloadToHeader) set[r.rule.outputPayloadToHeader] = r.payloadB64;
  for (const o of r.rule.outputClaimToHeaders) {
    const v = claimValue(r.payload, o.claim);
    if (v === undefined || v === null) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') set[o.header] = String(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean')) set[o.header] = v.join(',');
  }
  for (const k of Object.keys(set)) if (/[\r\n\0]/.test(set[k])) delete set[k];
  const remove = !r.rule.forwardOriginalToken && r.location.kind === 'header' ? [r.location.name] : [];
  return { set, remove };
}

export const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';
