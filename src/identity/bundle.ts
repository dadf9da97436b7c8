/**
 * Trust bundles: for each trust domain, the X.509 roots (several at once during a
 * root rotation) and the JWT-SVID signing keys. A `BundleSet` holds the local trust
 * domain's bundle and federated bundles for other trust domains, and tells listeners
 * when it changes so TLS contexts can be rebuilt.
 */
import { createHash, createPublicKey, type KeyObject, type JsonWebKey } from 'node:crypto';
import { ZtmError } from '../errors.js';
import { parseTrustDomain } from './spiffe-id.js';
import { parseCertificate, pemCertificates, toPem, type ParsedCertificate } from './x509.js';

export interface JwtAuthority {
  kid: string;
  key: KeyObject;
}

export interface TrustBundle {
  readonly trustDomain: string;
  readonly x509Authorities: readonly ParsedCertificate[];
  readonly jwtAuthorities: readonly JwtAuthority[];
  /** SPIFFE bundle `spiffe_sequence`. */
  readonly sequence: number;
  readonly refreshHintSeconds?: number;
}

export function certFingerprint(derBytes: Buffer): string {
  return createHash('sha256').update(derBytes).digest('hex');
}

/** Something `verifySvidChain` and the JWT-SVID verifier can ask for a bundle. */
export interface BundleSource {
  getBundle(trustDomain: string): TrustBundle | undefined;
}

export class BundleSet implements BundleSource {
  private readonly bundles = new Map<string, TrustBundle>();
  private readonly listeners = new Set<(set: BundleSet) => void>();
  private version = 0;

  constructor(init: TrustBundle[] = []) {
    for (const b of init) this.bundles.set(b.trustDomain, b);
  }

  /** Convenience: a set with roots (DER or PEM text) for one trust domain. */
  static of(trustDomain: string, roots: (Buffer | string)[]): BundleSet {
    const s = new BundleSet();
    for (const r of roots) s.addRoot(trustDomain, r);
    return s;
  }

  get generation(): number {
    return this.version;
  }

  getBundle(trustDomain: string): TrustBundle | undefined {
    return this.bundles.get(trustDomain);
  }

  trustDomains(): string[] {
    return [...this.bundles.keys()].sort();
  }

  /** Replace a whole trust domain's bundle (e.g. a federation refresh). */
  setBundle(b: TrustBundle): void {
    parseTrustDomain(b.trustDomain);
    const cur = this.bundles.get(b.trustDomain);
    if (cur && b.sequence < cur.sequence) {
      throw new ZtmError('ZTM_SVID_INVALID', `bundle for ${b.trustDomain} has sequence ${b.sequence}, older than the current ${cur.sequence}`);
    }
    this.bundles.set(b.trustDomain, b);
    this.changed();
  }

  removeTrustDomain(trustDomain: string): void {
    if (this.bundles.delete(trustDomain)) this.changed();
  }

  private edit(trustDomain: string, f: (b: { x509: ParsedCertificate[]; jwt: JwtAuthority[] }) => boolean): void {
    parseTrustDomain(trustDomain);
    const cur = this.bundles.get(trustDomain);
    const draft = { x509: [...(cur?.x509Authorities ?? [])], jwt: [...(cur?.jwtAuthorities ?? [])] };
    if (!f(draft)) return;
    this.bundles.set(trustDomain, {
      trustDomain,
      x509Authorities: draft.x509,
      jwtAuthorities: draft.jwt,
      sequence: (cur?.sequence ?? 0) + 1,
      refreshHintSeconds: cur?.refreshHintSeconds,
    });
    this.changed();
  }

  /** Add root(s) (DER, or PEM text possibly holding several). Idempotent. */
  addRoot(trustDomain: string, root: Buffer | string): void {
    const ders = typeof root === 'string' ? pemCertificates(root) : [root];
    if (ders.length === 0) throw new ZtmError('ZTM_SVID_INVALID', 'no CERTIFICATE found in the root PEM');
    this.edit(trustDomain, (b) => {
      let changed = false;
      for (const d of ders) {
        const p = parseCertificate(d);
        if (!p.basicConstraints?.ca) throw new ZtmError('ZTM_SVID_INVALID', 'a trust bundle root must be a CA certificate');
        if (b.x509.some((x) => x.der.equals(d))) continue;
        b.x509.push(p);
        changed = true;
      }
      return changed;
    });
  }

  /** Retire a root (DER or its SHA-256 fingerprint hex). */
  removeRoot(trustDomain: string, root: Buffer | string): void {
    const fp = typeof root === 'string' ? root.toLowerCase().replace(/:/g, '') : certFingerprint(root);
    this.edit(trustDomain, (b) => {
      const before = b.x509.length;
      b.x509 = b.x509.filter((x) => certFingerprint(x.der) !== fp);
      return b.x509.length !== before;
    });
  }

  addJwtAuthority(trustDomain: string, kid: string, key: KeyObject): void {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    this.edit(trustDomain, (b) => {
      if (b.jwt.some((j) => j.kid === kid)) throw new ZtmError('ZTM_SVID_INVALID', `JWT authority kid "${kid}" already exists in ${trustDomain}`);
      b.jwt.push({ kid, key: pub });
      return true;
    });
  }

  removeJwtAuthority(trustDomain: string, kid: string): void {
    this.edit(trustDomain, (b) => {
      const before = b.jwt.length;
      b.jwt = b.jwt.filter((j) => j.kid !== kid);
      return b.jwt.length !== before;
    });
  }

  /** Every root of every trust domain as PEM: the `ca` option of a TLS context. */
  allRootsPem(): string {
    return [...this.bundles.values()].flatMap((b) => b.x509Authorities.map((x) => toPem(x.der))).join('');
  }

  rootsPem(trustDomain: string): string {
    return (this.bundles.get(trustDomain)?.x509Authorities ?? []).map((x) => toPem(x.der)).join('');
  }

  onChange(fn: (set: BundleSet) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    this.version++;
    for (const l of this.listeners) l(this);
  }

  /** SPIFFE bundle format (a JWK Set) for one trust domain. */
  toSpiffeBundle(trustDomain: string): SpiffeBundleDocument {
    const b = this.bundles.get(trustDomain);
    if (!b) throw new ZtmError('ZTM_SVID_INVALID', `no bundle for trust domain ${trustDomain}`);
    return spiffeBundleDocument(b);
  }

  /** Load a SPIFFE bundle document (e.g. a federated trust domain's). */
  setSpiffeBundle(trustDomain: string, doc: SpiffeBundleDocument): void {
    this.setBundle(parseSpiffeBundle(trustDomain, doc));
  }
}

export interface SpiffeBundleDocument {
  keys: (JsonWebKey & { use: 'x509-svid' | 'jwt-svid'; kid?: string; x5c?: string[] })[];
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

export function spiffeBundleDocument(b: TrustBundle): SpiffeBundleDocument {
  const keys: SpiffeBundleDocument['keys'] = [];
  for (const x of b.x509Authorities) {
    const jwk = createPublicKey({ key: x.spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    keys.push({ ...jwk, use: 'x509-svid', x5c: [x.der.toString('base64')] });
  }
  for (const j of b.jwtAuthorities) keys.push({ ...j.key.export({ format: 'jwk' }), use: 'jwt-svid', kid: j.kid });
  const doc: SpiffeBundleDocument = { keys, spiffe_sequence: b.sequence };
  if (b.refreshHintSeconds !== undefined) doc.spiffe_refresh_hint = b.refreshHintSeconds;
  return doc;
}

export function parseSpiffeBundle(trustDomain: string, doc: SpiffeBundleDocument): TrustBundle {
  parseTrustDomain(trustDomain);
  if (!doc || !Array.isArray(doc.keys)) throw new ZtmError('ZTM_SVID_INVALID', 'a SPIFFE bundle needs a "keys" array');
  const x509: ParsedCertificate[] = [];
  const jwt: JwtAuthority[] = [];
  for (const [i, k] of doc.keys.entries()) {
    if (k.use === 'x509-svid') {
      if (!Array.isArray(k.x5c) || k.x5c.length !== 1) throw new ZtmError('ZTM_SVID_INVALID', `keys[${i}]: an x509-svid key needs exactly one x5c entry`);
      x509.push(parseCertificate(Buffer.from(k.x5c[0], 'base64')));
    } else if (k.use === 'jwt-svid') {
      if (!k.kid) throw new ZtmError('ZTM_SVID_INVALID', `keys[${i}]: a jwt-svid key needs a kid`);
      const { use: _u, kid, x5c: _x, ...jwk } = k;
      jwt.push({ kid, key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }) });
    }
  }
  return { trustDomain, x509Authorities: x509, jwtAuthorities: jwt, sequence: doc.spiffe_sequence ?? 0, refreshHintSeconds: doc.spiffe_refresh_hint };
}
