/**
 * TLS server certificates issued by the mesh CA for DNS names (the edge gateway's HTTPS
 * listener): the DNS name rules, and the check a holder runs on what the CA returned.
 * Such a certificate names DNS hosts only (no SPIFFE ID, so it is never a workload
 * identity: `checkLeaf` refuses it with `missing_uri_san`), is for serverAuth only and
 * chains to the mesh roots like an SVID.
 */
import { ZtmError } from '../errors.js';
import type { BundleSource } from './bundle.js';
import { chainToRoot } from './verify.js';
import { OID, parseCertificate, type ParsedCertificate } from './x509.js';

/** Most DNS names one server certificate may carry. */
export const MAX_SERVER_CERT_NAMES = 100;

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * One DNS name, lower-cased: RFC 1123 labels (letters, digits, inner hyphens, 1–63
 * characters), 253 characters at most, optionally a leading `*.` wildcard label followed
 * by at least two labels. IP addresses, trailing dots, empty labels, `_` and IDN
 * U-labels are refused (write IDNs as A-labels, `xn--…`).
 */
export function normalizeDnsName(input: string): string {
  const name = String(input).trim().toLowerCase();
  const bad = (why: string) => new ZtmError('ZTM_USAGE', `"${input}" is not a DNS name for a server certificate: ${why}`);
  if (!name) throw bad('it is empty');
  if (name.length > 253) throw bad('longer than 253 characters');
  if (name.endsWith('.')) throw bad('write it without the trailing dot');
  if (/^[0-9.]+$/.test(name) || name.includes(':') || /^\[.*\]$/.test(name)) throw bad('IP addresses are not DNS names');
  const labels = name.split('.');
  const wildcard = labels[0] === '*';
  const rest = wildcard ? labels.slice(1) : labels;
  if (wildcard && rest.length < 2) throw bad('a wildcard needs at least two labels after "*." (e.g. *.example.com)');
  for (const l of rest) {
    if (l === '*' || l.includes('*')) throw bad('"*" is allowed only as the whole first label ("*.example.com")');
    if (!LABEL.test(l)) throw bad(`label "${l}" is not an RFC 1123 label (a-z, 0-9 and inner "-", 1 to 63 characters)`);
  }
  if (/^[0-9]+$/.test(rest[rest.length - 1])) throw bad('the last label is all digits (an IP address?)');
  return name;
}

/** Validate, lower-case and de-duplicate a list of DNS names (at least one, at most 100). */
export function normalizeDnsNames(list: readonly string[]): string[] {
  const out = [...new Set(list.map((n) => normalizeDnsName(n)))];
  if (out.length === 0) throw new ZtmError('ZTM_USAGE', 'at least one DNS name is required');
  if (out.length > MAX_SERVER_CERT_NAMES) throw new ZtmError('ZTM_USAGE', `at most ${MAX_SERVER_CERT_NAMES} DNS names per certificate`);
  return out;
}

/** `--dns-names a.example.com,b.example.com` → normalized names. */
export function parseDnsNamesFlag(v: string): string[] {
  return normalizeDnsNames(v.split(',').map((s) => s.trim()).filter((s) => s !== ''));
}

export type ServerCertVerifyResult =
  | { ok: true; dnsNames: string[]; notAfter: Date; serialHex: string; chain: ParsedCertificate[] }
  | { ok: false; reason: string; detail: string };

/**
 * Check a server certificate chain (leaf first) from the mesh CA: it chains to a root of
 * `trustDomain` in `bundles`, is valid at `now`, is not a CA, has digitalSignature, EKU
 * serverAuth and nothing else, DNS SANs only and, when `expectedNames` is given, exactly
 * those names.
 */
export function verifyServerCertChain(ders: Buffer[], bundles: BundleSource, trustDomain: string, now: number = Date.now(), expectedNames?: readonly string[]): ServerCertVerifyResult {
  const no = (reason: string, detail: string): ServerCertVerifyResult => ({ ok: false, reason, detail });
  if (ders.length === 0) return no('empty_certificate', 'no certificate');
  let parsed: ParsedCertificate[];
  try {
    parsed = ders.map((d) => parseCertificate(d));
  } catch (e) {
    return no('malformed', `malformed certificate: ${(e as Error).message}`);
  }
  const leaf = parsed[0];
  if (leaf.basicConstraints?.ca) return no('ca_leaf', 'the leaf is a CA certificate');
  if (leaf.uris.length) return no('unexpected_uri_san', `a server certificate must not carry a URI SAN (${leaf.uris.join(', ')})`);
  if (leaf.dnsNames.length === 0 || leaf.otherSanCount !== leaf.dnsNames.length) return no('bad_san', 'the subjectAltName must hold DNS names only');
  const ku = leaf.keyUsage?.usages;
  if (!ku?.has('digitalSignature') || ku.has('keyCertSign') || ku.has('cRLSign')) return no('bad_key_usage', 'key usage must be digitalSignature (and not a CA usage)');
  const eku = leaf.extKeyUsage ?? [];
  if (eku.length !== 1 || eku[0] !== OID.serverAuth) return no('bad_key_usage', `extended key usage must be serverAuth only, got ${eku.join(', ') || 'none'}`);
  if (expectedNames) {
    const want = [...new Set(expectedNames)].sort();
    const got = [...new Set(leaf.dnsNames)].sort();
    if (want.join(',') !== got.join(',')) return no('wrong_names', `the certificate names ${got.join(', ')}, expected ${want.join(', ')}`);
  }
  if (now < leaf.notBefore.getTime()) return no('not_yet_valid', `not valid before ${leaf.notBefore.toISOString()}`);
  if (now > leaf.notAfter.getTime()) return no('expired', `expired at ${leaf.notAfter.toISOString()}`);
  const bundle = bundles.getBundle(trustDomain);
  if (!bundle || bundle.x509Authorities.length === 0) return no('wrong_trust_domain', `no trust bundle for "${trustDomain}"`);
  const walked = chainToRoot(leaf, parsed.slice(1), bundle, trustDomain, now);
  if (!walked.ok) return walked;
  return { ok: true, dnsNames: leaf.dnsNames, notAfter: leaf.notAfter, serialHex: leaf.serialHex, chain: walked.path };
}
