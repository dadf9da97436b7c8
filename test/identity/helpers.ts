import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, createIntermediateCa, createRootCa, type CaCertificate } from '../../src/identity/ca.js';
import {
  authorityKeyIdExt,
  basicConstraintsExt,
  buildCertificate,
  encodeName,
  extKeyUsageExt,
  keyIdentifier,
  keyUsageExt,
  OID,
  spkiDer,
  subjectKeyIdExt,
  uriSanExt,
  type KeyUsageName,
} from '../../src/identity/x509.js';

export const TD = 'cluster.local';

export function p256(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

export interface TestPki {
  root: CaCertificate;
  inter: CaCertificate;
  ca: CertificateAuthority;
}

export function makePki(trustDomain = TD, now = Date.now()): TestPki {
  const root = createRootCa({ trustDomain, now: now - 60_000 });
  const inter = createIntermediateCa(root, { trustDomain, now: now - 60_000 });
  const ca = new CertificateAuthority({ trustDomain, roots: [root.der], chain: [inter.der], signingKey: inter.key });
  return { root, inter, ca };
}

export interface LeafSpec {
  uris?: string[];
  ca?: boolean;
  keyUsage?: KeyUsageName[] | null;
  notBefore?: number;
  notAfter?: number;
  key?: KeyObject;
}

/** A hand-built leaf signed by `issuer`, for malformed-certificate tests. */
export function makeLeaf(issuer: CaCertificate, spec: LeafSpec = {}): Buffer {
  const key = spec.key ?? p256();
  const spki = spkiDer(key);
  const now = Date.now();
  const exts = [
    basicConstraintsExt(spec.ca ?? false),
    subjectKeyIdExt(keyIdentifier(spki)),
    authorityKeyIdExt(issuer.parsed.subjectKeyId!),
    extKeyUsageExt([OID.serverAuth, OID.clientAuth]),
  ];
  if (spec.keyUsage !== null) exts.push(keyUsageExt(spec.keyUsage ?? ['digitalSignature']));
  const uris = spec.uris ?? ['spiffe://cluster.local/ns/default/sa/test'];
  if (uris.length) exts.push(uriSanExt(uris));
  return buildCertificate(
    {
      issuer: issuer.parsed.subject,
      subject: encodeName([{ oid: OID.organization, value: 'test' }]),
      notBefore: new Date(Math.floor((spec.notBefore ?? now - 60_000) / 1000) * 1000),
      notAfter: new Date(Math.floor((spec.notAfter ?? now + 3_600_000) / 1000) * 1000),
      spki,
      extensions: exts,
    },
    issuer.key,
  );
}

export function tmpDir(prefix = 'ztm-id-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A manual clock: timers fire only when `advance` passes them. */
export class FakeClock {
  t: number;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private seq = 0;
  constructor(start = Date.UTC(2030, 0, 1)) {
    this.t = start;
  }
  now = (): number => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== h);
  };
  pending(): number[] {
    return this.timers.map((x) => x.at).sort((a, b) => a - b);
  }
  /** Move time forward, firing due timers in order (and letting async work settle). */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > target) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
      await flush();
    }
    this.t = target;
    await flush();
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}
