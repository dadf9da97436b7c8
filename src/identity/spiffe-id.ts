/**
 * SPIFFE IDs, exactly as the SPIFFE-ID standard defines them:
 *   spiffe://<trust-domain>[/<segment>]*
 * - scheme `spiffe`, lower case, followed by `://`
 * - trust domain: 1..255 chars of [a-z0-9.-_] (no upper case, no port, no userinfo)
 * - path segments: non-empty, [a-zA-Z0-9.-_], not `.` or `..`; no trailing slash
 * - no query, fragment or percent-encoding; at most 2048 bytes overall
 * Plus the mesh convention `spiffe://<td>/ns/<ns>/sa/<sa>` and its Istio principal form.
 */
import { ZtmError } from '../errors.js';

export const SPIFFE_ID_MAX_BYTES = 2048;
export const TRUST_DOMAIN_MAX_BYTES = 255;

/** Every rule a SPIFFE ID can fail; `ZtmError.details.rule` is one of these. */
export type SpiffeIdRule =
  | 'not_string'
  | 'empty'
  | 'too_long'
  | 'scheme'
  | 'userinfo'
  | 'port'
  | 'query'
  | 'fragment'
  | 'percent_encoding'
  | 'trust_domain_empty'
  | 'trust_domain_too_long'
  | 'trust_domain_chars'
  | 'path_empty_segment'
  | 'path_dot_segment'
  | 'path_trailing_slash'
  | 'path_chars';

export interface SpiffeId {
  readonly trustDomain: string;
  /** `''` for the trust domain's own ID, otherwise starts with `/`. */
  readonly path: string;
  toString(): string;
}

const TD_CHAR = /^[a-z0-9._-]$/;
const PATH_CHAR = /^[a-zA-Z0-9._-]$/;
const TD_RE = /^[a-z0-9._-]+$/;
const SEG_RE = /^[a-zA-Z0-9._-]+$/;

function fail(rule: SpiffeIdRule, input: string, message: string): never {
  const shown = input.length > 120 ? input.slice(0, 117) + '...' : input;
  throw new ZtmError('ZTM_SPIFFE_ID_INVALID', `invalid SPIFFE ID "${shown}": ${message}`, {}, { rule, input: shown });
}

class SpiffeIdImpl implements SpiffeId {
  constructor(
    readonly trustDomain: string,
    readonly path: string,
  ) {}
  toString(): string {
    return `spiffe://${this.trustDomain}${this.path}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/** Validate a trust domain name on its own (as written in config: `cluster.local`). */
export function parseTrustDomain(td: string): string {
  if (typeof td !== 'string') fail('not_string', String(td), 'trust domain must be a string');
  if (td.length === 0) fail('trust_domain_empty', td, 'the trust domain is empty');
  if (Buffer.byteLength(td) > TRUST_DOMAIN_MAX_BYTES) fail('trust_domain_too_long', td, `the trust domain is longer than ${TRUST_DOMAIN_MAX_BYTES} bytes`);
  if (!TD_RE.test(td)) {
    const bad = [...td].find((c) => !TD_CHAR.test(c)) ?? '';
    fail('trust_domain_chars', td, `the trust domain contains "${bad}"; only lower-case letters, digits, ".", "-" and "_" are allowed`);
  }
  return td;
}

function validatePath(input: string, path: string): void {
  if (path === '') return;
  // path starts with '/'
  const segs = path.slice(1).split('/');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (s === '') {
      if (i === segs.length - 1) fail('path_trailing_slash', input, 'the path ends with "/"');
      fail('path_empty_segment', input, 'the path has an empty segment ("//")');
    }
    if (s === '.' || s === '..') fail('path_dot_segment', input, `the path has a "${s}" segment`);
    if (!SEG_RE.test(s)) {
      const bad = [...s].find((c) => !PATH_CHAR.test(c)) ?? '';
      fail('path_chars', input, `the path contains "${bad}"; only letters, digits, ".", "-" and "_" are allowed`);
    }
  }
}

/** Parse and validate; throws `ZtmError('ZTM_SPIFFE_ID_INVALID')` with `details.rule`. */
export function parseSpiffeId(s: string): SpiffeId {
  if (typeof s !== 'string') fail('not_string', String(s), 'a SPIFFE ID must be a string');
  if (s.length === 0) fail('empty', s, 'the SPIFFE ID is empty');
  if (Buffer.byteLength(s) > SPIFFE_ID_MAX_BYTES) fail('too_long', s, `the SPIFFE ID is longer than ${SPIFFE_ID_MAX_BYTES} bytes`);
  if (!s.startsWith('spiffe://')) fail('scheme', s, 'the scheme must be "spiffe://" (lower case)');
  const rest = s.slice('spiffe://'.length);
  if (rest.includes('#')) fail('fragment', s, 'a fragment ("#") is not allowed');
  if (rest.includes('?')) fail('query', s, 'a query ("?") is not allowed');
  if (rest.includes('%')) fail('percent_encoding', s, 'percent-encoding is not allowed');
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (authority.includes('@')) fail('userinfo', s, 'userinfo ("user@") is not allowed');
  if (authority.includes(':')) fail('port', s, 'a port is not allowed');
  if (authority.length === 0) fail('trust_domain_empty', s, 'the trust domain is empty');
  if (Buffer.byteLength(authority) > TRUST_DOMAIN_MAX_BYTES) fail('trust_domain_too_long', s, `the trust domain is longer than ${TRUST_DOMAIN_MAX_BYTES} bytes`);
  if (!TD_RE.test(authority)) {
    const bad = [...authority].find((c) => !TD_CHAR.test(c)) ?? '';
    fail('trust_domain_chars', s, `the trust domain contains "${bad}"; only lower-case letters, digits, ".", "-" and "_" are allowed`);
  }
  validatePath(s, path);
  return new SpiffeIdImpl(authority, path);
}

export function isValidSpiffeId(s: string): boolean {
  try {
    parseSpiffeId(s);
    return true;
  } catch {
    return false;
  }
}

/** Build an ID from parts, validating the result. */
export function spiffeIdFromParts(trustDomain: string, segments: string[]): SpiffeId {
  for (const seg of segments) {
    // Each part is one segment: a "/" inside it would silently change the ID's shape.
    if (typeof seg !== 'string' || seg.includes('/')) {
      fail('path_chars', `spiffe://${trustDomain}/${segments.join('/')}`, `path segment "${seg}" must not contain "/"`);
    }
  }
  return parseSpiffeId(`spiffe://${trustDomain}${segments.map((x) => '/' + x).join('')}`);
}

/** The mesh convention: `spiffe://<td>/ns/<namespace>/sa/<service-account>`. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
  return spiffeIdFromParts(trustDomain, ['ns', namespace, 'sa', serviceAccount]);
}

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** Split a mesh-convention ID; `undefined` when the path is not `/ns/<ns>/sa/<sa>`. */
export function parseWorkloadId(id: SpiffeId | string): WorkloadIdentity | undefined {
  const p = typeof id === 'string' ? parseSpiffeId(id) : id;
  const segs = p.path.split('/');
  if (segs.length !== 5 || segs[1] !== 'ns' || segs[3] !== 'sa') return undefined;
  return { trustDomain: p.trustDomain, namespace: segs[2], serviceAccount: segs[4] };
}

/** `spiffe://cluster.local/ns/x/sa/y` → `cluster.local/ns/x/sa/y` (Istio principal). */
export function spiffeIdToPrincipal(id: SpiffeId | string): string {
  const p = typeof id === 'string' ? parseSpiffeId(id) : id;
  return `${p.trustDomain}${p.path}`;
}

/** `cluster.local/ns/x/sa/y` → the validated SPIFFE ID. */
export function principalToSpiffeId(principal: string): SpiffeId {
  if (typeof principal !== 'string' || principal.startsWith('spiffe://')) {
    throw new ZtmError('ZTM_SPIFFE_ID_INVALID', `a principal is written without the "spiffe://" scheme (got "${principal}")`, {}, { rule: 'scheme' });
  }
  return parseSpiffeId(`spiffe://${principal}`);
}

/** Same trust domain? */
export function memberOf(id: SpiffeId, trustDomain: string): boolean {
  return id.trustDomain === trustDomain;
}
