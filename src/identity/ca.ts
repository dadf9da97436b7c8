/**
 * The mesh certificate authority: a root (10 years) and an intermediate signing CA
 * (1 year), ECDSA P-256, kept in `<data-dir>/ca/` with the private keys sealed at
 * rest (see keystore.ts). Issues X.509-SVIDs from PKCS#10 requests.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { ZtmError } from '../errors.js';
import { openPrivateKey, readPemPrivateKey, sealPrivateKey } from './keystore.js';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.js';
import * as der from './der.js';
import { normalizeDnsNames } from './server-cert.js';
import {
  authorityKeyIdExt,
  basicConstraintsExt,
  buildCertificate,
  buildTbs,
  checkLeafKey,
  CsrError,
  encodeName,
  extKeyUsageExt,
  keyIdentifier,
  keyUsageExt,
  OID,
  parseCertificate,
  parseCsr,
  pemCertificates,
  publicKeyOf,
  isIssuedBy,
  nameToString,
  signatureSchemeFor,
  signTbs,
  spkiDer,
  subjectKeyIdExt,
  toPem,
  uriSanExt,
  dnsSanExt,
  type CsrInfo,
  type ParsedCertificate,
  type SignatureScheme,
} from './x509.js';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const ROOT_TTL_MS = 3650 * DAY;
export const INTERMEDIATE_TTL_MS = 365 * DAY;
export const DEFAULT_SVID_TTL_MS = HOUR;
export const MAX_SVID_TTL_MS = 24 * HOUR;
export const MIN_SVID_TTL_MS = 1000;

export interface CaCertificate {
  der: Buffer;
  parsed: ParsedCertificate;
  key: KeyObject;
}

function floorSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function newP256(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/** A self-signed root CA for `trustDomain`. */
export function createRootCa(opts: { trustDomain: string; now?: number; ttlMs?: number; key?: KeyObject; commonName?: string }): CaCertificate {
  const td = parseSpiffeId(`spiffe://${opts.trustDomain}`).trustDomain;
  const now = opts.now ?? Date.now();
  const key = opts.key ?? newP256();
  const spki = spkiDer(key);
  const ski = keyIdentifier(spki);
  const name = encodeName([
    { oid: OID.organization, value: 'ztmesh' },
    { oid: OID.commonName, value: opts.commonName ?? `ztmesh root CA ${td} ${floorSecond(now).toISOString().slice(0, 19)}Z` },
  ]);
  const certDer = buildCertificate(
    {
      issuer: name,
      subject: name,
      notBefore: floorSecond(now),
      notAfter: floorSecond(now + (opts.ttlMs ?? ROOT_TTL_MS)),
      spki,
      extensions: [
        basicConstraintsExt(true),
        keyUsageExt(['keyCertSign', 'cRLSign']),
        subjectKeyIdExt(ski),
        uriSanExt([`spiffe://${td}`]),
      ],
    },
    key,
  );
  return { der: certDer, parsed: parseCertificate(certDer), key };
}

/** An intermediate signing CA under `parent` (path length 0: it signs leaves only). */
export function createIntermediateCa(
  parent: CaCertificate,
  opts: { trustDomain: string; now?: number; ttlMs?: number; key?: KeyObject; commonName?: string },
): CaCertificate {
  const td = parseSpiffeId(`spiffe://${opts.trustDomain}`).trustDomain;
  const now = opts.now ?? Date.now();
  const key = opts.key ?? newP256();
  const spki = spkiDer(key);
  const notAfter = Math.min(now + (opts.ttlMs ?? INTERMEDIATE_TTL_MS), parent.parsed.notAfter.getTime());
  const certDer = buildCertificate(
    {
      issuer: parent.parsed.subject,
      subject: encodeName([
        { oid: OID.organization, value: 'ztmesh' },
        { oid: OID.commonName, value: opts.commonName ?? `ztmesh intermediate CA ${td} ${floorSecond(now).toISOString().slice(0, 19)}Z` },
      ]),
      notBefore: floorSecond(now),
      notAfter: floorSecond(notAfter),
      spki,
      extensions: [
        basicConstraintsExt(true, 0),
        keyUsageExt(['keyCertSign', 'cRLSign']),
        subjectKeyIdExt(keyIdentifier(spki)),
        authorityKeyIdExt(parent.parsed.subjectKeyId ?? keyIdentifier(parent.parsed.spki)),
        uriSanExt([`spiffe://${td}`]),
      ],
    },
    parent.key,
  );
  return { der: certDer, parsed: parseCertificate(certDer), key };
}

export interface IssueOptions {
  spiffeId: SpiffeId | string;
  /** Requested lifetime; default 1 h, capped at `maxTtlMs` (≤ 24 h). */
  ttlMs?: number;
  now?: number;
}

export interface IssuedSvid {
  spiffeId: string;
  /** Leaf DER. */
  certificate: Buffer;
  /** Leaf followed by the intermediates (not the root), DER. */
  chain: Buffer[];
  /** The same chain as PEM (what `tls.createSecureContext({ cert })` takes). */
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
  serialHex: string;
}

const LEAF_BC = basicConstraintsExt(false);
const LEAF_KU = keyUsageExt(['digitalSignature']);
const LEAF_EKU = extKeyUsageExt([OID.serverAuth, OID.clientAuth]);
const SERVER_EKU = extKeyUsageExt([OID.serverAuth]);
const LEAF_SUBJECT = encodeName([{ oid: OID.organization, value: 'ztmesh' }]);

/** A TLS server certificate for DNS names (see `issueServerCertificate`). */
export interface IssuedServerCertificate extends Omit<IssuedSvid, 'spiffeId'> {
  dnsNames: string[];
}

export interface CertificateAuthorityOptions {
  trustDomain: string;
  /** Trusted roots of this trust domain (DER). */
  roots: Buffer[];
  /** Signing certificate first, then any further intermediates (DER; not the root). */
  chain: Buffer[];
  signingKey: KeyObject;
  /** Default leaf lifetime (1 h). */
  defaultTtlMs?: number;
  /** Leaf lifetime cap (24 h, and never above 24 h). */
  maxTtlMs?: number;
}

/** Issues X.509-SVIDs. Pure in-memory; persistence lives in `initCa`/`loadCa`/`importCa`. */
export class CertificateAuthority {
  readonly trustDomain: string;
  readonly roots: Buffer[];
  readonly chain: Buffer[];
  readonly signing: ParsedCertificate;
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  private readonly key: KeyObject;
  private readonly scheme: SignatureScheme;
  private readonly aki: Buffer;
  private readonly chainPemSuffix: string;
  /** Earliest notAfter along the signing chain: no leaf may outlive it. */
  private readonly chainNotAfter: number;

  constructor(o: CertificateAuthorityOptions) {
    this.trustDomain = parseSpiffeId(`spiffe://${o.trustDomain}`).trustDomain;
    if (o.chain.length === 0) throw new ZtmError('ZTM_CA', 'the CA needs a signing certificate');
    this.roots = o.roots;
    this.chain = o.chain;
    this.signing = parseCertificate(o.chain[0]);
    this.key = o.signingKey;
    this.scheme = signatureSchemeFor(o.signingKey);
    if (!spkiDer(o.signingKey).equals(this.signing.spki)) throw new ZtmError('ZTM_CA', 'the signing key does not match the signing certificate');
    if (!this.signing.basicConstraints?.ca || !this.signing.keyUsage?.usages.has('keyCertSign')) {
      throw new ZtmError('ZTM_CA', 'the signing certificate is not a CA certificate with keyCertSign');
    }
    this.aki = authorityKeyIdExt(this.signing.subjectKeyId ?? keyIdentifier(this.signing.spki));
    this.chainPemSuffix = o.chain.map((c) => toPem(c)).join('');
    const all = [...o.chain, ...o.roots].map((c) => parseCertificate(c));
    this.chainNotAfter = Math.min(...o.chain.map((c) => parseCertificate(c).notAfter.getTime()));
    // A root is only relevant to the leaf's lifetime if it is the one the chain ends at.
    const top = parseCertificate(o.chain[o.chain.length - 1]);
    const anchor = all.slice(o.chain.length).find((r) => isIssuedBy(top, r));
    if (!anchor && !(top.issuer.equals(top.subject))) throw new ZtmError('ZTM_CA', 'the signing chain does not lead to any of the given roots');
    if (anchor) this.chainNotAfter = Math.min(this.chainNotAfter, anchor.notAfter.getTime());
    this.defaultTtlMs = Math.min(o.defaultTtlMs ?? DEFAULT_SVID_TTL_MS, MAX_SVID_TTL_MS);
    this.maxTtlMs = Math.min(o.maxTtlMs ?? MAX_SVID_TTL_MS, MAX_SVID_TTL_MS);
  }

  /** PEM of the trust bundle roots for this trust domain. */
  rootsPem(): string {
    return this.roots.map((r) => toPem(r)).join('');
  }

  /** Issue an X.509-SVID for `spiffeId` from an already-verified CSR. */
  issue(csr: CsrInfo, o: IssueOptions): IssuedSvid {
    const id = typeof o.spiffeId === 'string' ? parseSpiffeId(o.spiffeId) : o.spiffeId;
    if (id.trustDomain !== this.trustDomain) {
      throw new ZtmError('ZTM_CA', `this CA signs for trust domain "${this.trustDomain}", not "${id.trustDomain}"`);
    }
    if (id.path === '') throw new ZtmError('ZTM_CA', 'a workload SVID needs a path (the bare trust domain ID is reserved)');
    const idStr = id.toString();
    const leaf = this.signLeaf(csr, LEAF_EKU, uriSanExt([idStr]), o);
    return { spiffeId: idStr, ...leaf };
  }

  /**
   * Issue a TLS server certificate for `dnsNames` (already authorized by the caller):
   * subjectAltName with exactly those DNS names and no SPIFFE ID (so it can never pass as
   * a workload identity), extKeyUsage serverAuth only, keyUsage digitalSignature, chained
   * to the signing CA; the lifetime rules of SVIDs (default TTL, ≤ 24 h).
   */
  issueServerCertificate(csr: CsrInfo, o: { dnsNames: readonly string[]; ttlMs?: number; now?: number }): IssuedServerCertificate {
    const names = normalizeDnsNames(o.dnsNames);
    if (csr.requestedUris.length) throw new ZtmError('ZTM_CA', `a server certificate request must not ask for a URI SAN (${csr.requestedUris.join(', ')})`, {}, { reason: 'csr_identity_mismatch' });
    const leaf = this.signLeaf(csr, SERVER_EKU, dnsSanExt(names), o);
    return { dnsNames: names, ...leaf };
  }

  private signLeaf(csr: CsrInfo, eku: Buffer, san: Buffer, o: { ttlMs?: number; now?: number }): Omit<IssuedSvid, 'spiffeId'> {
    const keyProblem = checkLeafKey(csr.publicKey);
    if (keyProblem) throw new ZtmError('ZTM_CA', keyProblem);
    const now = o.now ?? Date.now();
    if (now >= this.chainNotAfter) throw new ZtmError('ZTM_CA', 'the signing CA has expired: rotate the intermediate (ztmesh ca init/import)');
    if (now < this.signing.notBefore.getTime()) throw new ZtmError('ZTM_CA', 'the signing CA is not valid yet (check the clock)');
    const ttl = Math.max(MIN_SVID_TTL_MS, Math.min(o.ttlMs ?? this.defaultTtlMs, this.maxTtlMs));
    const notBefore = floorSecond(now);
    const notAfter = floorSecond(Math.min(notBefore.getTime() + ttl, this.chainNotAfter));
    const tbs = buildTbs(
      {
        issuer: this.signing.subject,
        subject: LEAF_SUBJECT,
        notBefore,
        notAfter,
        spki: csr.spki,
        extensions: [LEAF_BC, LEAF_KU, eku, subjectKeyIdExt(keyIdentifier(csr.spki)), this.aki, san],
      },
      this.scheme,
    );
    const cert = signTbs(tbs, this.scheme, this.key);
    // serial: second field of the TBS (after the [0] version)
    const tbsFields = der.children(der.readNode(tbs));
    return {
      certificate: cert,
      chain: [cert, ...this.chain],
      chainPem: toPem(cert) + this.chainPemSuffix,
      notBefore,
      notAfter,
      serialHex: der.content(tbsFields[1]).toString('hex'),
    };
  }

  /** Check a CSR's proof of possession, then issue. `requestedUris` in the CSR must match the ID if present. */
  issueFromCsr(csr: Buffer | string, o: IssueOptions): IssuedSvid {
    const info = checkCsr(csr);
    const id = typeof o.spiffeId === 'string' ? parseSpiffeId(o.spiffeId) : o.spiffeId;
    checkRequestedIdentity(info, id.toString());
    return this.issue(info, o);
  }
}

/** Parse + proof-of-possession check, with errors as `ZtmError('ZTM_CA')`. */
export function checkCsr(csr: Buffer | string): CsrInfo {
  try {
    return parseCsr(csr);
  } catch (e) {
    if (e instanceof CsrError) throw new ZtmError('ZTM_CA', e.message, {}, { reason: `csr_${e.reason}` });
    throw e;
  }
}

/** A CSR may request a URI SAN; if it does, it must be exactly the attested identity. */
export function checkRequestedIdentity(info: CsrInfo, id: string): void {
  if (info.requestedUris.length > 1 || (info.requestedUris.length === 1 && info.requestedUris[0] !== id)) {
    throw new ZtmError('ZTM_CA', `the CSR asks for ${info.requestedUris.join(', ')} but the attested identity is ${id}`, {}, { reason: 'csr_identity_mismatch' });
  }
}

// ---------------------------------------------------------------- persistence

export interface CaPaths {
  dir: string;
  meta: string;
  roots: string;
  rootKey: string;
  chain: string;
  signingKey: string;
}

export function caPaths(dataDir: string): CaPaths {
  const dir = join(dataDir, 'ca');
  return {
    dir,
    meta: join(dir, 'ca.json'),
    roots: join(dir, 'roots.pem'),
    rootKey: join(dir, 'root.key.sealed'),
    chain: join(dir, 'signing-chain.pem'),
    signingKey: join(dir, 'signing.key.sealed'),
  };
}

interface CaMeta {
  version: 1;
  trustDomain: string;
  mode: 'self-signed' | 'imported';
  createdAt: string;
}

/** Write `data` to `path` atomically (temp file + rename), mode 0600. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, path);
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

export interface InitCaOptions {
  trustDomain?: string;
  passphrase: string;
  now?: number;
  rootTtlMs?: number;
  intermediateTtlMs?: number;
  /** Overwrite an existing CA (default: refuse). */
  force?: boolean;
}

export interface CaSummary {
  trustDomain: string;
  mode: 'self-signed' | 'imported';
  roots: { subject: string; notBefore: string; notAfter: string }[];
  signing: { subject: string; notBefore: string; notAfter: string };
  dir: string;
}

/** `ztmesh ca init`: root + intermediate, sealed keys, in `<dataDir>/ca`. */
export async function initCa(dataDir: string, o: InitCaOptions): Promise<CertificateAuthority> {
  const td = o.trustDomain ?? 'cluster.local';
  const p = caPaths(dataDir);
  if (!o.force && (await exists(p.meta))) throw new ZtmError('ZTM_CA', `a CA already exists in ${p.dir} (pass --force to replace it)`);
  await mkdir(p.dir, { recursive: true, mode: 0o700 });
  const now = o.now ?? Date.now();
  const root = createRootCa({ trustDomain: td, now, ttlMs: o.rootTtlMs });
  const inter = createIntermediateCa(root, { trustDomain: td, now, ttlMs: o.intermediateTtlMs });
  await writeFileAtomic(p.rootKey, await sealPrivateKey(root.key, o.passphrase));
  await writeFileAtomic(p.signingKey, await sealPrivateKey(inter.key, o.passphrase));
  await writeFileAtomic(p.roots, toPem(root.der));
  await writeFileAtomic(p.chain, toPem(inter.der));
  const meta: CaMeta = { version: 1, trustDomain: td, mode: 'self-signed', createdAt: new Date(now).toISOString() };
  await writeFileAtomic(p.meta, JSON.stringify(meta, null, 2) + '\n');
  return new CertificateAuthority({ trustDomain: td, roots: [root.der], chain: [inter.der], signingKey: inter.key });
}

export interface ImportCaOptions {
  rootPem: string;
  /** Signing certificate, optionally followed by further intermediates. */
  certPem: string;
  keyPem: string;
  /** Passphrase of `keyPem` if it is an encrypted PEM. */
  keyPassphrase?: string;
  /** Passphrase sealing the key in the data dir. */
  passphrase: string;
  trustDomain?: string;
  now?: number;
  force?: boolean;
}

/** `ztmesh ca import`: plug in an existing CA (like Istio's `cacerts`). */
export async function importCa(dataDir: string, o: ImportCaOptions): Promise<CertificateAuthority> {
  const roots = pemCertificates(o.rootPem);
  const chain = pemCertificates(o.certPem);
  if (roots.length === 0) throw new ZtmError('ZTM_CA', 'the root file has no CERTIFICATE block');
  if (chain.length === 0) throw new ZtmError('ZTM_CA', 'the certificate file has no CERTIFICATE block');
  const key = readPemPrivateKey(o.keyPem, o.keyPassphrase);
  const signing = parseCertificate(chain[0]);
  let td = o.trustDomain;
  if (!td) {
    const uri = signing.uris.find((u) => u.startsWith('spiffe://'));
    td = uri ? parseSpiffeId(uri).trustDomain : 'cluster.local';
  }
  // Chain must verify up to one of the roots, every link a CA.
  const parsed = chain.map((c) => parseCertificate(c));
  for (let i = 0; i + 1 < parsed.length; i++) {
    if (!isIssuedBy(parsed[i], parsed[i + 1])) throw new ZtmError('ZTM_CA', `certificate ${i + 1} in the chain is not issued by certificate ${i + 2}`);
  }
  const top = parsed[parsed.length - 1];
  const rootsParsed = roots.map((r) => parseCertificate(r));
  if (!rootsParsed.some((r) => isIssuedBy(top, r, publicKeyOf(r)))) throw new ZtmError('ZTM_CA', 'the signing certificate does not chain to the given root');
  const now = o.now ?? Date.now();
  for (const c of [...parsed, ...rootsParsed]) {
    if (c.notAfter.getTime() <= now) throw new ZtmError('ZTM_CA', `a CA certificate expired on ${c.notAfter.toISOString()}`);
  }
  const ca = new CertificateAuthority({ trustDomain: td, roots, chain, signingKey: key });
  const p = caPaths(dataDir);
  if (!o.force && (await exists(p.meta))) throw new ZtmError('ZTM_CA', `a CA already exists in ${p.dir} (pass --force to replace it)`);
  await mkdir(p.dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(p.signingKey, await sealPrivateKey(key, o.passphrase));
  await writeFileAtomic(p.roots, roots.map((r) => toPem(r)).join(''));
  await writeFileAtomic(p.chain, chain.map((c) => toPem(c)).join(''));
  const meta: CaMeta = { version: 1, trustDomain: td, mode: 'imported', createdAt: new Date(now).toISOString() };
  await writeFileAtomic(p.meta, JSON.stringify(meta, null, 2) + '\n');
  return ca;
}

/** Open the CA kept in `<dataDir>/ca`. */
export async function loadCa(dataDir: string, passphrase: string, o: { defaultTtlMs?: number; maxTtlMs?: number } = {}): Promise<CertificateAuthority> {
  const p = caPaths(dataDir);
  let meta: CaMeta;
  try {
    meta = JSON.parse(await readFile(p.meta, 'utf8')) as CaMeta;
  } catch {
    throw new ZtmError('ZTM_CA', `no CA in ${p.dir}: run \`ztmesh ca init --data-dir ${dataDir}\` or \`ztmesh ca import\` first`);
  }
  const roots = pemCertificates(await readFile(p.roots, 'utf8'));
  const chain = pemCertificates(await readFile(p.chain, 'utf8'));
  const key = await openPrivateKey(await readFile(p.signingKey, 'utf8'), passphrase, 'CA signing key');
  return new CertificateAuthority({ trustDomain: meta.trustDomain, roots, chain, signingKey: key, ...o });
}

/** Roots only, no passphrase needed (what workloads and `cert inspect` trust). */
export async function loadCaRoots(dataDir: string): Promise<{ trustDomain: string; roots: Buffer[] }> {
  const p = caPaths(dataDir);
  let meta: CaMeta;
  try {
    meta = JSON.parse(await readFile(p.meta, 'utf8')) as CaMeta;
  } catch {
    throw new ZtmError('ZTM_CA', `no CA in ${p.dir}`);
  }
  return { trustDomain: meta.trustDomain, roots: pemCertificates(await readFile(p.roots, 'utf8')) };
}

export function summarizeCa(ca: CertificateAuthority, dir: string, mode: 'self-signed' | 'imported'): CaSummary {
  const fmt = (c: ParsedCertificate) => ({ notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() });
  return {
    trustDomain: ca.trustDomain,
    mode,
    roots: ca.roots.map((r) => {
      const c = parseCertificate(r);
      return { subject: nameOf(c), ...fmt(c) };
    }),
    signing: { subject: nameOf(ca.signing), ...fmt(ca.signing) },
    dir,
  };
}

function nameOf(c: ParsedCertificate): string {
  return nameToString(c.subject);
}
