/**
 * X.509-SVID verification (X509-SVID standard §4 and §5): chain the leaf to a root
 * in the bundle of the leaf's OWN trust domain, then check the leaf's SVID rules and
 * every certificate's validity window. Results carry a short reason code that is
 * safe to use as a metric label.
 */
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls';
import { X509Certificate, createHash } from 'node:crypto';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.js';
import type { BundleSource } from './bundle.js';
import { isIssuedBy, parseCertificate, pemCertificates, type ParsedCertificate } from './x509.js';

export const SVID_REJECT_REASONS = [
  'empty_certificate',
  'malformed',
  'expired',
  'not_yet_valid',
  'untrusted',
  'wrong_trust_domain',
  'ca_leaf',
  'missing_uri_san',
  'multiple_uri_san',
  'bad_key_usage',
  'invalid_spiffe_id',
  'bad_intermediate',
  'path_too_long',
] as const;
export type SvidRejectReason = (typeof SVID_REJECT_REASONS)[number];

export type SvidVerifyResult =
  | { ok: true; spiffeId: string; id: SpiffeId; notAfter: Date; chain: ParsedCertificate[] }
  | { ok: false; reason: SvidRejectReason; detail: string };

export interface VerifyOptions {
  /** Reject unless the peer is in this trust domain. */
  expectedTrustDomain?: string;
  /** Longest chain accepted (leaf + intermediates), default 5. */
  maxIntermediates?: number;
  /**
   * Intermediates seen on earlier verified chains, used to complete a chain the peer
   * did not send in full (Node's server side reports only the leaf on a resumed
   * session). Every signature is still checked; the cache only supplies candidates.
   */
  intermediateCache?: IntermediateCache;
}

/** A small bounded cache of intermediate CA certificates that were part of verified chains. */
export class IntermediateCache {
  private readonly items = new Map<string, ParsedCertificate>();
  constructor(private readonly max = 64) {}
  add(c: ParsedCertificate): void {
    const k = c.der.toString('base64');
    this.items.delete(k);
    this.items.set(k, c);
    while (this.items.size > this.max) this.items.delete(this.items.keys().next().value as string);
  }
  candidates(): ParsedCertificate[] {
    return [...this.items.values()];
  }
  get size(): number {
    return this.items.size;
  }
}

export type CertInput = Buffer | Uint8Array | string | X509Certificate | ParsedCertificate;

function toDers(chain: CertInput[] | string): Buffer[] {
  if (typeof chain === 'string') return pemCertificates(chain);
  const out: Buffer[] = [];
  for (const c of chain) {
    if (typeof c === 'string') out.push(...pemCertificates(c));
    else if (c instanceof X509Certificate) out.push(c.raw);
    else if (Buffer.isBuffer(c)) out.push(c);
    else if (c instanceof Uint8Array) out.push(Buffer.from(c));
    else out.push((c as ParsedCertificate).der);
  }
  return out;
}

/**
 * Positive results of signature checks (certificate signed by issuer key). A signature
 * check is a pure function of the certificate's exact bytes and the issuer's key, so it
 * is memoized under a hash of both; every other check (validity window, bundle
 * membership, CA flags, SPIFFE rules) still runs on each call. This keeps the per-
 * connection identity check cheap for peers seen before.
 */
const sigLinks = new Map<string, true>();
const SIG_LINKS_MAX = 4096;
function issuedBy(cert: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (!cert.issuer.equals(issuer.subject)) return false;
  const key = createHash('sha256').update(cert.der).update(issuer.spki).digest('base64');
  if (sigLinks.has(key)) return true;
  const ok = isIssuedBy(cert, issuer);
  if (ok) {
    if (sigLinks.size >= SIG_LINKS_MAX) sigLinks.delete(sigLinks.keys().next().value as string);
    sigLinks.set(key, true);
  }
  return ok;
}

export type SvidRejection = Extract<SvidVerifyResult, { ok: false }>;

const reject = (reason: SvidRejectReason, detail: string): SvidRejection => ({ ok: false, reason, detail });

function timeCheck(c: ParsedCertificate, now: number, what: string): SvidRejection | undefined {
  if (now < c.notBefore.getTime()) return reject('not_yet_valid', `${what} is not valid before ${c.notBefore.toISOString()}`);
  if (now > c.notAfter.getTime()) return reject('expired', `${what} expired at ${c.notAfter.toISOString()}`);
  return undefined;
}

/** The X509-SVID leaf rules, without the chain. */
export function checkLeaf(leaf: ParsedCertificate): SvidVerifyResult | { ok: true; id: SpiffeId } {
  if (leaf.uris.length === 0) return reject('missing_uri_san', 'the leaf has no URI SAN (a SPIFFE ID is required)');
  if (leaf.uris.length > 1) return reject('multiple_uri_san', `the leaf has ${leaf.uris.length} URI SANs; an X.509-SVID has exactly one`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(leaf.uris[0]);
  } catch (e) {
    return reject('invalid_spiffe_id', (e as Error).message);
  }
  if (leaf.basicConstraints?.ca) return reject('ca_leaf', 'the leaf is a CA certificate (basicConstraints cA=true)');
  const ku = leaf.keyUsage?.usages;
  if (!ku) return reject('bad_key_usage', 'the leaf has no key usage extension (digitalSignature is required)');
  if (!ku.has('digitalSignature')) return reject('bad_key_usage', 'the leaf key usage lacks digitalSignature');
  if (ku.has('keyCertSign') || ku.has('cRLSign')) return reject('bad_key_usage', 'the leaf key usage includes keyCertSign or cRLSign');
  return { ok: true, id };
}

/**
 * Verify an X.509-SVID chain (leaf first; intermediates in any order; extra
 * certificates are ignored) against `bundles` at time `now` (ms since epoch).
 */
export function verifySvidChain(chain: CertInput[] | string, bundles: BundleSource, now: number = Date.now(), opts: VerifyOptions = {}): SvidVerifyResult {
  let ders: Buffer[];
  try {
    ders = toDers(chain);
  } catch (e) {
    return reject('malformed', `cannot read the certificate chain: ${(e as Error).message}`);
  }
  if (ders.length === 0 || ders[0].length === 0) return reject('empty_certificate', 'the peer presented no certificate');
  let parsed: ParsedCertificate[];
  try {
    parsed = ders.map((d) => parseCertificate(d));
  } catch (e) {
    return reject('malformed', `malformed certificate: ${(e as Error).message}`);
  }
  const leaf = parsed[0];
  const lc = checkLeaf(leaf);
  if (!lc.ok) return lc;
  const id = lc.id;
  if (opts.expectedTrustDomain !== undefined && id.trustDomain !== opts.expectedTrustDomain) {
    return reject('wrong_trust_domain', `the peer is in trust domain "${id.trustDomain}", expected "${opts.expectedTrustDomain}"`);
  }
  const bundle = bundles.getBundle(id.trustDomain);
  if (!bundle || bundle.x509Authorities.length === 0) {
    return reject('wrong_trust_domain', `no trust bundle for the peer's trust domain "${id.trustDomain}"`);
  }
  const t = timeCheck(leaf, now, 'the leaf');
  if (t) return t;

  const walked = chainToRoot(leaf, parsed.slice(1), bundle, id.trustDomain, now, opts);
  if (!walked.ok) return walked;
  const path = walked.path;
  if (opts.intermediateCache) for (const c of path.slice(1, -1)) opts.intermediateCache.add(c);
  return { ok: true, spiffeId: id.toString(), id, notAfter: leaf.notAfter, chain: path };
}

/**
 * Build and check the path from `leaf` (already parsed and time-checked) through the
 * presented intermediates (any order) to a root of `bundle`: every link's signature, CA
 * flags, path length, validity and trust domain. Shared by X.509-SVIDs and the mesh CA's
 * TLS server certificates (see server-cert.ts).
 */
export function chainToRoot(
  leaf: ParsedCertificate,
  presented: ParsedCertificate[],
  bundle: { x509Authorities: readonly ParsedCertificate[] },
  trustDomain: string,
  now: number,
  opts: VerifyOptions = {},
): { ok: true; path: ParsedCertificate[] } | SvidRejection {
  const maxInter = opts.maxIntermediates ?? 5;
  const pool = [...presented];
  if (opts.intermediateCache) {
    for (const c of opts.intermediateCache.candidates()) if (!pool.some((p) => p.der.equals(c.der))) pool.push(c);
  }
  const path: ParsedCertificate[] = [leaf];
  let current = leaf;
  for (;;) {
    const root = bundle.x509Authorities.find((r) => issuedBy(current, r));
    if (root) {
      const rt = timeCheck(root, now, 'the root');
      if (rt) return rt;
      path.push(root);
      break;
    }
    const idx = pool.findIndex((c) => issuedBy(current, c));
    if (idx < 0) {
      return reject('untrusted', `no root in the "${trustDomain}" bundle (nor a presented intermediate) issued ${current === leaf ? 'the leaf' : 'an intermediate'}`);
    }
    const inter = pool.splice(idx, 1)[0];
    const depth = path.length - 1; // intermediates already below this one
    if (depth >= maxInter) return reject('path_too_long', `more than ${maxInter} intermediates`);
    if (!inter.basicConstraints?.ca) return reject('bad_intermediate', 'an intermediate is not a CA certificate');
    if (inter.keyUsage && !inter.keyUsage.usages.has('keyCertSign')) return reject('bad_intermediate', 'an intermediate lacks keyCertSign');
    if (inter.basicConstraints.pathLen !== undefined && depth > inter.basicConstraints.pathLen) {
      return reject('bad_intermediate', `an intermediate's path length constraint (${inter.basicConstraints.pathLen}) is exceeded`);
    }
    for (const u of inter.uris) {
      if (!u.startsWith('spiffe://')) continue;
      let td: string;
      try {
        td = parseSpiffeId(u).trustDomain;
      } catch {
        return reject('bad_intermediate', `an intermediate has an invalid SPIFFE ID ${u}`);
      }
      if (td !== trustDomain) return reject('wrong_trust_domain', `an intermediate belongs to trust domain "${td}", the leaf to "${trustDomain}"`);
    }
    const it = timeCheck(inter, now, 'an intermediate');
    if (it) return it;
    path.push(inter);
    current = inter;
  }
  return { ok: true, path };
}

function isEmptyPeerCert(c: PeerCertificate | undefined | null): boolean {
  return !c || Object.keys(c).length === 0 || !c.raw || c.raw.length === 0;
}

/**
 * The SPIFFE identity of a TLS peer, re-verified from its certificate chain. An empty
 * peer certificate is a rejection: Node can report `authorized === true` with an
 * empty peer certificate on a resumed TLS 1.3 session, so `authorized` alone is
 * never trusted here.
 */
export function peerIdentity(socket: TLSSocket, bundles: BundleSource, now: number = Date.now(), opts: VerifyOptions = {}): SvidVerifyResult {
  let cert: DetailedPeerCertificate | undefined;
  try {
    cert = socket.getPeerCertificate(true);
  } catch {
    cert = undefined;
  }
  if (isEmptyPeerCert(cert)) return reject('empty_certificate', 'the peer presented no certificate (or the session was resumed without one)');
  const chain: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  let c: DetailedPeerCertificate | undefined = cert;
  while (c && !seen.has(c) && !isEmptyPeerCert(c) && chain.length < 10) {
    seen.add(c);
    chain.push(c.raw);
    c = c.issuerCertificate;
  }
  return verifySvidChain(chain, bundles, now, opts);
}
