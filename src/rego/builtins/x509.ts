/**
 * crypto.x509.parse_certificates and crypto.x509.parse_and_verify_certificates.
 * Certificates are returned with the field names of Go's x509.Certificate JSON encoding (as OPA
 * does) for the fields policies use: Raw, Version, SerialNumber, Issuer, Subject, NotBefore,
 * NotAfter, DNSNames, EmailAddresses, IPAddresses, URIs, IsCA, BasicConstraintsValid,
 * ExtKeyUsage and PublicKeyAlgorithm. Other Go fields are not produced.
 */
import { X509Certificate } from 'node:crypto';
import { builtinErr } from '../errors.js';
import { RObject, type Value } from '../value.js';
import { reg, str } from './registry.js';

const NAME_OIDS: Record<string, [string, number[], boolean]> = {
  C: ['Country', [2, 5, 4, 6], true],
  O: ['Organization', [2, 5, 4, 10], true],
  OU: ['OrganizationalUnit', [2, 5, 4, 11], true],
  L: ['Locality', [2, 5, 4, 7], true],
  ST: ['Province', [2, 5, 4, 8], true],
  street: ['StreetAddress', [2, 5, 4, 9], true],
  postalCode: ['PostalCode', [2, 5, 4, 17], true],
  serialNumber: ['SerialNumber', [2, 5, 4, 5], false],
  CN: ['CommonName', [2, 5, 4, 3], false],
};

function pkixName(dn: string): RObject {
  const out = new RObject();
  for (const [, [field, , multi]] of Object.entries(NAME_OIDS)) out.set(field, multi ? null : '');
  const names: Value[] = [];
  for (const line of dn.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const val = line.slice(eq + 1);
    const spec = NAME_OIDS[key];
    if (!spec) continue;
    const [field, oid, multi] = spec;
    if (multi) {
      const cur = out.get(field);
      out.set(field, Array.isArray(cur) ? [...cur, val] : [val]);
    } else out.set(field, val);
    names.push(RObject.fromRecord({ Type: oid.map((n) => BigInt(n)), Value: val }));
  }
  out.set('Names', names);
  out.set('ExtraNames', null);
  return out;
}

function rfc3339(s: string): string {
  return new Date(s).toISOString().replace(/\.000Z$/, 'Z');
}

function urlObject(u: string): RObject {
  let scheme = '';
  let host = '';
  let path = '';
  let query = '';
  let fragment = '';
  let opaque = '';
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/.exec(u);
  if (m) {
    scheme = m[1].toLowerCase();
    let rest = m[2];
    const h = rest.indexOf('#');
    if (h >= 0) {
      fragment = rest.slice(h + 1);
      rest = rest.slice(0, h);
    }
    const q = rest.indexOf('?');
    if (q >= 0) {
      query = rest.slice(q + 1);
      rest = rest.slice(0, q);
    }
    if (rest.startsWith('//')) {
      const slash = rest.indexOf('/', 2);
      host = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
      path = slash < 0 ? '' : rest.slice(slash);
    } else opaque = rest;
  } else path = u;
  return RObject.fromRecord({
    Scheme: scheme,
    Opaque: opaque,
    User: null,
    Host: host,
    Path: path,
    RawPath: '',
    OmitHost: false,
    ForceQuery: false,
    RawQuery: query,
    Fragment: fragment,
    RawFragment: '',
  });
}

const EKU: Record<string, number> = {
  '2.5.29.37.0': 0,
  '1.3.6.1.5.5.7.3.1': 1,
  '1.3.6.1.5.5.7.3.2': 2,
  '1.3.6.1.5.5.7.3.3': 3,
  '1.3.6.1.5.5.7.3.4': 4,
  '1.3.6.1.5.5.7.3.5': 5,
  '1.3.6.1.5.5.7.3.6': 6,
  '1.3.6.1.5.5.7.3.7': 7,
  '1.3.6.1.5.5.7.3.8': 8,
  '1.3.6.1.5.5.7.3.9': 9,
};
const PK_ALG: Record<string, number> = { rsa: 1, dsa: 2, ec: 3, ed25519: 4 };

function certObject(c: X509Certificate): RObject {
  const dns: Value[] = [];
  const emails: Value[] = [];
  const ips: Value[] = [];
  const uris: Value[] = [];
  for (const part of (c.subjectAltName ?? '').split(/,\s*/)) {
    const i = part.indexOf(':');
    if (i < 0) continue;
    const kind = part.slice(0, i);
    const v = part.slice(i + 1).replace(/^"|"$/g, '');
    if (kind === 'DNS') dns.push(v);
    else if (kind === 'email') emails.push(v);
    else if (kind === 'IP Address') ips.push(v);
    else if (kind === 'URI') uris.push(urlObject(v));
  }
  const eku = (c.keyUsage ?? []).map((o) => (EKU[o] !== undefined ? BigInt(EKU[o]) : null)).filter((x) => x !== null) as Value[];
  return RObject.fromRecord({
    Raw: c.raw.toString('base64'),
    Version: 3n,
    SerialNumber: BigInt('0x' + c.serialNumber),
    Issuer: pkixName(c.issuer),
    Subject: pkixName(c.subject),
    NotBefore: rfc3339(c.validFrom),
    NotAfter: rfc3339(c.validTo),
    DNSNames: dns.length ? dns : null,
    EmailAddresses: emails.length ? emails : null,
    IPAddresses: ips.length ? ips : null,
    URIs: uris.length ? uris : null,
    IsCA: c.ca,
    BasicConstraintsValid: c.ca,
    ExtKeyUsage: eku.length ? eku : null,
    PublicKeyAlgorithm: BigInt(PK_ALG[c.publicKey.asymmetricKeyType ?? ''] ?? 0),
  });
}

/** Certificates from PEM text, or base64 of PEM or DER. */
function loadCerts(fn: string, input: string): X509Certificate[] {
  let text = input;
  if (!text.includes('-----BEGIN')) {
    const der = Buffer.from(text.replace(/\s+/g, ''), 'base64');
    const asText = der.toString('latin1');
    if (asText.includes('-----BEGIN')) text = asText;
    else {
      try {
        return [new X509Certificate(der)];
      } catch (e) {
        throw builtinErr(fn, `failed to parse certificate: ${(e as Error).message}`);
      }
    }
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw builtinErr(fn, 'no PEM certificate block found');
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw builtinErr(fn, `failed to parse certificate: ${(e as Error).message}`);
    }
  });
}

reg('crypto.x509.parse_certificates', 1, (a) => loadCerts('crypto.x509.parse_certificates', str('crypto.x509.parse_certificates', a, 0)).map(certObject));

/** Chain: leaf first, root (self-signed) last; each certificate issued and signed by the next; all valid now. */
reg('crypto.x509.parse_and_verify_certificates', 1, (a, ctx) => {
  const fn = 'crypto.x509.parse_and_verify_certificates';
  let certs: X509Certificate[];
  try {
    certs = loadCerts(fn, str(fn, a, 0));
  } catch {
    return [false, []];
  }
  const now = Number(ctx.nowNs / 1000000n);
  const ok =
    certs.length >= 2 &&
    certs.every((c, i) => {
      const validNow = Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
      if (!validNow) return false;
      const issuer = i + 1 < certs.length ? certs[i + 1] : c;
      if (i + 1 < certs.length && !issuer.ca) return false;
      return c.checkIssued(issuer) && c.verify(issuer.publicKey);
    });
  return ok ? [true, certs.map(certObject)] : [false, []];
});
