/**
 * X.509 building blocks on node:crypto: PEM, names, extensions, certificates and
 * PKCS#10 requests. Certificates are assembled as DER here and signed with
 * `crypto.sign`, which keeps CSR→certificate issuance in the thousands per second.
 */
import { createHash, createPublicKey, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as der from './der.js';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  rsaSha256: '1.2.840.113549.1.1.11',
  rsaSha384: '1.2.840.113549.1.1.12',
  rsaSha512: '1.2.840.113549.1.1.13',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

// ---------------------------------------------------------------- PEM

export function toPem(derBytes: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(derBytes).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) out.push({ label: m[1], der: Buffer.from(m[2].replace(/\s+/g, ''), 'base64') });
  return out;
}

/** All CERTIFICATE blocks of a PEM text, as DER. */
export function pemCertificates(text: string): Buffer[] {
  return pemBlocks(text)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => b.der);
}

// ---------------------------------------------------------------- names and extensions

export interface NameAttr {
  oid: string;
  value: string;
}

export function encodeName(attrs: NameAttr[]): Buffer {
  return der.seq(...attrs.map((a) => der.set(der.seq(der.oid(a.oid), der.utf8String(a.value)))));
}

export function extension(oidStr: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.seq(der.oid(oidStr), der.bool(true), der.octetString(value)) : der.seq(der.oid(oidStr), der.octetString(value));
}

export function basicConstraintsExt(ca: boolean, pathLen?: number): Buffer {
  const parts: Buffer[] = [];
  if (ca) parts.push(der.bool(true));
  if (ca && pathLen !== undefined) parts.push(der.smallInt(pathLen));
  return extension(OID.basicConstraints, true, der.seq(...parts));
}

export const KeyUsageBit = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;
export type KeyUsageName = keyof typeof KeyUsageBit;

export function keyUsageExt(usages: KeyUsageName[], critical = true): Buffer {
  const bits = usages.map((u) => KeyUsageBit[u]);
  const max = Math.max(...bits);
  const nbytes = Math.floor(max / 8) + 1;
  const b = Buffer.alloc(nbytes);
  for (const bit of bits) b[Math.floor(bit / 8)] |= 0x80 >> bit % 8;
  // DER: trailing zero bits are dropped and counted as unused.
  const unused = 7 - (max % 8);
  return extension(OID.keyUsage, critical, der.bitString(b, unused));
}

export function extKeyUsageExt(oids: string[]): Buffer {
  return extension(OID.extKeyUsage, false, der.seq(...oids.map((o) => der.oid(o))));
}

export function uriSanExt(uris: string[], critical = false): Buffer {
  return extension(OID.subjectAltName, critical, der.seq(...uris.map((u) => der.tlv(0x86, Buffer.from(u, 'ascii')))));
}

/** subjectAltName with dNSName entries only (a TLS server certificate; no SPIFFE ID). */
export function dnsSanExt(names: string[], critical = false): Buffer {
  return extension(OID.subjectAltName, critical, der.seq(...names.map((n) => der.tlv(0x82, Buffer.from(n, 'ascii')))));
}

export function subjectKeyIdExt(ski: Buffer): Buffer {
  return extension(OID.subjectKeyIdentifier, false, der.octetString(ski));
}

export function authorityKeyIdExt(aki: Buffer): Buffer {
  return extension(OID.authorityKeyIdentifier, false, der.seq(der.ctx(0, aki, false)));
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  const top = der.children(der.parseDer(spkiDer));
  const bits = der.content(top[1]).subarray(1);
  return createHash('sha1').update(bits).digest();
}

// ---------------------------------------------------------------- keys and signatures

export interface SignatureScheme {
  /** AlgorithmIdentifier DER. */
  algId: Buffer;
  /** Digest for crypto.sign (null for Ed25519). */
  hash: string | null;
}

/** The signature algorithm a CA key signs with. */
export function signatureSchemeFor(key: KeyObject): SignatureScheme {
  const t = key.asymmetricKeyType;
  if (t === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return { algId: der.seq(der.oid(OID.ecdsaSha256)), hash: 'sha256' };
    if (curve === 'secp384r1' || curve === 'P-384') return { algId: der.seq(der.oid(OID.ecdsaSha384)), hash: 'sha384' };
    if (curve === 'secp521r1' || curve === 'P-521') return { algId: der.seq(der.oid(OID.ecdsaSha512)), hash: 'sha512' };
    throw new Error(`unsupported EC curve ${curve}`);
  }
  if (t === 'rsa') return { algId: der.seq(der.oid(OID.rsaSha256), der.nullValue()), hash: 'sha256' };
  if (t === 'ed25519') return { algId: der.seq(der.oid(OID.ed25519)), hash: null };
  throw new Error(`unsupported CA key type ${t}`);
}

const SIG_ALGS: Record<string, string | null> = {
  [OID.ecdsaSha256]: 'sha256',
  [OID.ecdsaSha384]: 'sha384',
  [OID.ecdsaSha512]: 'sha512',
  [OID.rsaSha256]: 'sha256',
  [OID.rsaSha384]: 'sha384',
  [OID.rsaSha512]: 'sha512',
  [OID.ed25519]: null,
};

/** Verify `signature` over `data` made with the AlgorithmIdentifier `algIdNode`. */
export function verifyWithAlgId(algIdNode: der.DerNode, data: Buffer, publicKey: KeyObject, signature: Buffer): boolean {
  const algOid = der.decodeOid(der.children(algIdNode)[0]);
  if (!(algOid in SIG_ALGS)) return false;
  try {
    return cryptoVerify(SIG_ALGS[algOid], data, publicKey, signature);
  } catch {
    return false;
  }
}

/** Which public keys a workload may certify. */
export function checkLeafKey(key: KeyObject): string | undefined {
  const t = key.asymmetricKeyType;
  if (t === 'ec') {
    const c = key.asymmetricKeyDetails?.namedCurve;
    return c === 'prime256v1' || c === 'secp384r1' ? undefined : `EC curve ${c} is not accepted (use P-256 or P-384)`;
  }
  if (t === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= 2048 ? undefined : `RSA keys must be at least 2048 bits (got ${bits})`;
  }
  if (t === 'ed25519') return undefined;
  return `key type ${t} is not accepted`;
}

// ---------------------------------------------------------------- certificates

export interface CertTemplate {
  serial?: Buffer;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  spki: Buffer;
  extensions: Buffer[];
}

export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 0x01;
  return b;
}

const VERSION_V3 = der.ctx(0, der.smallInt(2), true);

export function buildTbs(t: CertTemplate, scheme: SignatureScheme): Buffer {
  return der.seq(
    VERSION_V3,
    der.uintBytes(t.serial ?? randomSerial()),
    scheme.algId,
    t.issuer,
    der.seq(der.time(t.notBefore), der.time(t.notAfter)),
    t.subject,
    t.spki,
    der.ctx(3, der.seq(...t.extensions), true),
  );
}

/** Sign a TBSCertificate and wrap it as a Certificate (DER). */
export function signTbs(tbs: Buffer, scheme: SignatureScheme, key: KeyObject): Buffer {
  const sig = cryptoSign(scheme.hash, tbs, key);
  return der.seq(tbs, scheme.algId, der.bitString(sig));
}

export function buildCertificate(t: CertTemplate, signingKey: KeyObject): Buffer {
  const scheme = signatureSchemeFor(signingKey);
  return signTbs(buildTbs(t, scheme), scheme, signingKey);
}

export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' }) as Buffer;
}

// ---------------------------------------------------------------- PKCS#10

export interface CsrInfo {
  /** SubjectPublicKeyInfo DER. */
  spki: Buffer;
  publicKey: KeyObject;
  /** Subject Name DER. */
  subject: Buffer;
  /** URI SANs requested through the extensionRequest attribute (may be empty). */
  requestedUris: string[];
}

export class CsrError extends Error {
  constructor(
    readonly reason: 'malformed' | 'bad_signature' | 'bad_key',
    message: string,
  ) {
    super(message);
    this.name = 'CsrError';
  }
}

/** A PKCS#10 request for `key`, optionally asking for URI SANs. */
export function buildCsr(privateKey: KeyObject, uris: string[] = [], subject: NameAttr[] = []): Buffer {
  const attrs: Buffer[] = [];
  if (uris.length) {
    attrs.push(der.seq(der.oid(OID.extensionRequest), der.set(der.seq(uriSanExt(uris)))));
  }
  const info = der.seq(der.smallInt(0), encodeName(subject), spkiDer(privateKey), der.ctx(0, Buffer.concat(attrs), true));
  const scheme = signatureSchemeFor(privateKey);
  const sig = cryptoSign(scheme.hash, info, privateKey);
  return der.seq(info, scheme.algId, der.bitString(sig));
}

function collectUris(sanValue: Buffer, out: string[]): void {
  for (const gn of der.children(der.parseDer(sanValue))) {
    if (gn.tag === 0x86) out.push(der.content(gn).toString('latin1'));
  }
}

/** Parse a PKCS#10 request and check its proof of possession (the self-signature). */
export function parseCsr(input: Buffer | string): CsrInfo {
  let bytes: Buffer;
  if (typeof input === 'string') {
    const blocks = pemBlocks(input).filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (blocks.length !== 1) throw new CsrError('malformed', 'expected exactly one PEM CERTIFICATE REQUEST block');
    bytes = blocks[0].der;
  } else bytes = input;
  let info: der.DerNode, algId: der.DerNode, sigNode: der.DerNode, spkiNode: der.DerNode, subjectNode: der.DerNode;
  const requestedUris: string[] = [];
  try {
    const top = der.children(der.expectTag(der.parseDer(bytes), 0x30, 'CertificationRequest'));
    if (top.length !== 3) throw new der.DerError('CertificationRequest must have 3 fields');
    [info, algId, sigNode] = top;
    der.expectTag(info, 0x30, 'CertificationRequestInfo');
    der.expectTag(algId, 0x30, 'signatureAlgorithm');
    der.expectTag(sigNode, 0x03, 'signature');
    const f = der.children(info);
    if (f.length < 3) throw new der.DerError('CertificationRequestInfo is too short');
    const ver = der.content(der.expectTag(f[0], 0x02, 'version'));
    if (ver.length !== 1 || ver[0] !== 0) throw new der.DerError('CSR version must be 0 (v1)');
    subjectNode = der.expectTag(f[1], 0x30, 'subject');
    spkiNode = der.expectTag(f[2], 0x30, 'subjectPKInfo');
    if (f[3]) {
      der.expectTag(f[3], 0xa0, 'attributes');
      for (const attr of der.children(f[3])) {
        const [type, values] = der.children(attr);
        if (der.decodeOid(type) !== OID.extensionRequest) continue;
        for (const exts of der.children(values)) {
          for (const ext of der.children(exts)) {
            const parts = der.children(ext);
            if (der.decodeOid(parts[0]) === OID.subjectAltName) collectUris(der.content(parts[parts.length - 1]), requestedUris);
          }
        }
      }
    }
  } catch (e) {
    if (e instanceof CsrError) throw e;
    throw new CsrError('malformed', `malformed CSR: ${(e as Error).message}`);
  }
  const spki = Buffer.from(der.raw(spkiNode));
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (e) {
    throw new CsrError('bad_key', `CSR public key is unreadable: ${(e as Error).message}`);
  }
  const keyProblem = checkLeafKey(publicKey);
  if (keyProblem) throw new CsrError('bad_key', keyProblem);
  const sigBits = der.content(sigNode);
  if (sigBits.length < 2 || sigBits[0] !== 0) throw new CsrError('malformed', 'CSR signature BIT STRING is malformed');
  if (!verifyWithAlgId(algId, der.raw(info), publicKey, sigBits.subarray(1))) {
    throw new CsrError('bad_signature', 'CSR signature does not verify (no proof of possession of the private key)');
  }
  return { spki, publicKey, subject: Buffer.from(der.raw(subjectNode)), requestedUris };
}

// ---------------------------------------------------------------- certificate reader

export interface CertExtension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

export interface ParsedCertificate {
  der: Buffer;
  tbs: Buffer;
  sigAlg: der.DerNode;
  signature: Buffer;
  serialHex: string;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: CertExtension[];
  /** Decoded for convenience. */
  basicConstraints?: { ca: boolean; pathLen?: number; critical: boolean };
  keyUsage?: { usages: Set<KeyUsageName>; critical: boolean };
  extKeyUsage?: string[];
  uris: string[];
  /** dNSName SANs (also counted in `otherSanCount`). */
  dnsNames: string[];
  /** Other SAN kinds present (dNSName, iPAddress, ...), by GeneralName tag number. */
  otherSanCount: number;
  subjectKeyId?: Buffer;
  authorityKeyId?: Buffer;
}

const KU_NAMES = Object.entries(KeyUsageBit) as [KeyUsageName, number][];

/** Parse a certificate's DER (strictly enough for SVID checks). Throws `der.DerError` when malformed. */
export function parseCertificate(input: Buffer): ParsedCertificate {
  const top = der.children(der.expectTag(der.parseDer(input), 0x30, 'Certificate'));
  if (top.length !== 3) throw new der.DerError('Certificate must have 3 fields');
  const [tbsN, sigAlg, sigN] = top;
  der.expectTag(tbsN, 0x30, 'tbsCertificate');
  der.expectTag(sigN, 0x03, 'signatureValue');
  const f = der.children(tbsN);
  let i = 0;
  if (f[i]?.tag === 0xa0) i++;
  const serial = der.expectTag(f[i++], 0x02, 'serialNumber');
  i++; // signature algorithm (inner)
  const issuer = der.expectTag(f[i++], 0x30, 'issuer');
  const validity = der.children(der.expectTag(f[i++], 0x30, 'validity'));
  const subject = der.expectTag(f[i++], 0x30, 'subject');
  const spki = der.expectTag(f[i++], 0x30, 'subjectPublicKeyInfo');
  const extensions: CertExtension[] = [];
  for (; i < f.length; i++) {
    if (f[i].tag !== 0xa3) continue;
    const list = der.children(der.expectTag(der.children(f[i])[0], 0x30, 'extensions'));
    for (const e of list) {
      const parts = der.children(e);
      const o = der.decodeOid(parts[0]);
      let critical = false;
      if (parts.length === 3) critical = der.content(der.expectTag(parts[1], 0x01, 'critical'))[0] !== 0;
      const value = Buffer.from(der.content(der.expectTag(parts[parts.length - 1], 0x04, 'extnValue')));
      if (extensions.some((x) => x.oid === o)) throw new der.DerError(`duplicate extension ${o}`);
      extensions.push({ oid: o, critical, value });
    }
  }
  const sig = der.content(sigN);
  if (sig.length < 1 || sig[0] !== 0) throw new der.DerError('signature BIT STRING has unused bits');
  const out: ParsedCertificate = {
    der: input,
    tbs: der.raw(tbsN),
    sigAlg,
    signature: sig.subarray(1),
    serialHex: der.content(serial).toString('hex'),
    issuer: der.raw(issuer),
    subject: der.raw(subject),
    notBefore: der.decodeTime(validity[0]),
    notAfter: der.decodeTime(validity[1]),
    spki: der.raw(spki),
    extensions,
    uris: [],
    dnsNames: [],
    otherSanCount: 0,
  };
  for (const e of extensions) {
    if (e.oid === OID.basicConstraints) {
      const parts = der.children(der.parseDer(e.value));
      let ca = false;
      let pathLen: number | undefined;
      for (const p of parts) {
        if (p.tag === 0x01) ca = der.content(p)[0] !== 0;
        else if (p.tag === 0x02) pathLen = der.content(p).reduce((a, b) => a * 256 + b, 0);
      }
      out.basicConstraints = { ca, pathLen, critical: e.critical };
    } else if (e.oid === OID.keyUsage) {
      const bits = der.content(der.expectTag(der.parseDer(e.value), 0x03, 'keyUsage'));
      const usages = new Set<KeyUsageName>();
      for (const [name, bit] of KU_NAMES) {
        const byte = 1 + Math.floor(bit / 8);
        if (byte < bits.length && bits[byte] & (0x80 >> bit % 8)) usages.add(name);
      }
      out.keyUsage = { usages, critical: e.critical };
    } else if (e.oid === OID.extKeyUsage) {
      out.extKeyUsage = der.children(der.parseDer(e.value)).map((n) => der.decodeOid(n));
    } else if (e.oid === OID.subjectAltName) {
      for (const gn of der.children(der.parseDer(e.value))) {
        if (gn.tag === 0x86) out.uris.push(der.content(gn).toString('latin1'));
        else {
          if (gn.tag === 0x82) out.dnsNames.push(der.content(gn).toString('latin1'));
          out.otherSanCount++;
        }
      }
    } else if (e.oid === OID.subjectKeyIdentifier) {
      out.subjectKeyId = Buffer.from(der.content(der.parseDer(e.value)));
    } else if (e.oid === OID.authorityKeyIdentifier) {
      const k = der.children(der.parseDer(e.value)).find((n) => n.tag === 0x80);
      if (k) out.authorityKeyId = Buffer.from(der.content(k));
    }
  }
  return out;
}

/** Does `issuer` sign `cert`? (Names match and the signature verifies.) */
export function isIssuedBy(cert: ParsedCertificate, issuer: ParsedCertificate, issuerKey?: KeyObject): boolean {
  if (!cert.issuer.equals(issuer.subject)) return false;
  if (cert.authorityKeyId && issuer.subjectKeyId && !cert.authorityKeyId.equals(issuer.subjectKeyId)) return false;
  const key = issuerKey ?? publicKeyOf(issuer);
  return verifyWithAlgId(cert.sigAlg, cert.tbs, key, cert.signature);
}

const keyCache = new WeakMap<ParsedCertificate, KeyObject>();
export function publicKeyOf(c: ParsedCertificate): KeyObject {
  let k = keyCache.get(c);
  if (!k) {
    k = createPublicKey({ key: c.spki, format: 'der', type: 'spki' });
    keyCache.set(c, k);
  }
  return k;
}

/** Human form of a Name (`O=ztmesh, CN=...`), for `cert inspect`. */
export function nameToString(name: Buffer): string {
  const short: Record<string, string> = { [OID.commonName]: 'CN', [OID.organization]: 'O', '2.5.4.6': 'C', '2.5.4.11': 'OU', '2.5.4.7': 'L', '2.5.4.8': 'ST' };
  const parts: string[] = [];
  for (const rdn of der.children(der.parseDer(name))) {
    for (const atv of der.children(rdn)) {
      const [t, v] = der.children(atv);
      const o = der.decodeOid(t);
      parts.push(`${short[o] ?? o}=${der.content(v).toString('utf8')}`);
    }
  }
  return parts.join(', ');
}
