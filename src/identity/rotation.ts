/**
 * Workload-side X.509-SVID rotation. Renews at half the certificate's lifetime (minus
 * a random jitter), swaps TLS contexts for new connections without touching open
 * ones, retries with exponential backoff while the CA is unreachable, and keeps
 * serving on the current certificate until it expires. Clock, randomness and issuer
 * are injected so tests are exact.
 */
import { EventEmitter } from 'node:events';
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { ZtmError } from '../errors.js';
import type { BundleSet } from './bundle.js';
import { verifySvidChain } from './verify.js';
import { buildCsr, pemCertificates, spkiDer, parseCertificate, toPem } from './x509.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.min(ms, 2 ** 31 - 1));
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface CurrentSvid {
  spiffeId: string;
  key: KeyObject;
  keyPem: string;
  /** Leaf first, then intermediates (PEM). */
  chainPem: string;
  chain: Buffer[];
  notBefore: Date;
  notAfter: Date;
}

export interface IssueRequest {
  /** PKCS#10 DER for the freshly generated key. */
  csr: Buffer;
  /** The SVID being renewed (absent on bootstrap). */
  current?: CurrentSvid;
}

/** Talks to the CA: returns the issued chain (leaf first) as PEM. */
export type SvidIssuer = (req: IssueRequest) => Promise<{ chainPem: string }>;

export interface RotatorOptions {
  issuer: SvidIssuer;
  bundles: BundleSet;
  clock?: Clock;
  /** Uniform [0,1): drives jitter. */
  random?: () => number;
  /** Renewal happens at lifetime × (0.5 − jitter × random()); default jitter 0.1. */
  jitter?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** URI SAN to request in the CSR (optional; the CA decides the identity). */
  requestedSpiffeId?: string;
  /** Key generator (default: ECDSA P-256). */
  generateKey?: () => Promise<KeyObject>;
  /**
   * Checks the issued chain (leaf first) and returns the name it certifies, which becomes
   * `CurrentSvid.spiffeId`. Default: the X.509-SVID rules (`verifySvidChain`). The
   * gateway's TLS server certificate (DNS names, no SPIFFE ID) is rotated with its own.
   */
  verifyChain?: (chain: Buffer[], now: number) => { ok: true; id: string } | { ok: false; reason: string; detail: string };
}

export interface RotatorEvents {
  rotated: [CurrentSvid];
  renewal_failed: [{ error: Error; attempt: number; retryInMs: number }];
  expired: [CurrentSvid];
  bundle_updated: [];
}

function defaultKey(): Promise<KeyObject> {
  return new Promise((resolve, reject) =>
    generateKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  );
}

export class SvidRotator extends EventEmitter<RotatorEvents> {
  private readonly o: Required<Omit<RotatorOptions, 'requestedSpiffeId' | 'verifyChain'>> & Pick<RotatorOptions, 'requestedSpiffeId' | 'verifyChain'>;
  private svid?: CurrentSvid;
  private ctx?: tls.SecureContext;
  private timer: unknown;
  private expiryTimer: unknown;
  private attempt = 0;
  private stopped = true;
  private inflight?: Promise<CurrentSvid>;
  private readonly servers = new Set<tls.Server>();
  private unsubscribe?: () => void;

  constructor(o: RotatorOptions) {
    super();
    this.o = {
      clock: systemClock,
      random: Math.random,
      jitter: 0.1,
      backoffInitialMs: 1000,
      backoffMaxMs: 60_000,
      generateKey: defaultKey,
      ...o,
    };
  }

  /** Get a first SVID (retrying with backoff until one arrives), then keep it fresh. */
  start(): Promise<CurrentSvid> {
    this.stopped = false;
    this.unsubscribe ??= this.o.bundles.onChange(() => this.onBundleChange());
    return new Promise((resolve) => {
      const first = (s: CurrentSvid) => {
        this.off('rotated', first);
        resolve(s);
      };
      if (this.svid) return resolve(this.svid);
      this.on('rotated', first);
      void this.renew();
    });
  }

  stop(): void {
    this.stopped = true;
    this.o.clock.clearTimeout(this.timer);
    this.o.clock.clearTimeout(this.expiryTimer);
    this.timer = this.expiryTimer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  current(): CurrentSvid | undefined {
    return this.svid;
  }

  /** Milliseconds until the current certificate expires (negative once expired; -Infinity with none). */
  timeToExpiryMs(): number {
    return this.svid ? this.svid.notAfter.getTime() - this.o.clock.now() : -Infinity;
  }

  /** When the next renewal attempt is due (ms since epoch), if scheduled. */
  nextRenewalAt?: number;

  /** The context for outgoing connections: `tls.connect({ secureContext: r.secureContext(), ... })`. */
  secureContext(): tls.SecureContext {
    if (!this.ctx) throw new ZtmError('ZTM_SVID_INVALID', 'no SVID yet: await rotator.start() first');
    return this.ctx;
  }

  /** Options for `tls.createServer` (mTLS: client certificates required). */
  serverOptions(): tls.TlsOptions {
    return { ...this.contextOptions(), requestCert: true, rejectUnauthorized: true };
  }

  /** Options for `tls.connect` (SPIFFE identity is checked with peerIdentity, not host names). */
  clientOptions(): tls.ConnectionOptions {
    return { secureContext: this.secureContext(), checkServerIdentity: () => undefined };
  }

  /** Keep `server` on the current certificate and bundle; returns a detach function. */
  attachServer(server: tls.Server): () => void {
    this.servers.add(server);
    if (this.svid) server.setSecureContext(this.contextOptions());
    return () => this.servers.delete(server);
  }

  /** Renew now (e.g. after a root rotation); resolves with the new SVID or rejects. */
  async rotateNow(): Promise<CurrentSvid> {
    this.o.clock.clearTimeout(this.timer);
    try {
      return await this.renewOnce();
    } catch (e) {
      // Keep the regular schedule (or the backoff) going.
      if (this.svid) this.scheduleRenewal();
      else this.schedule(this.o.backoffInitialMs);
      throw e;
    }
  }

  private contextOptions(): tls.SecureContextOptions {
    if (!this.svid) throw new ZtmError('ZTM_SVID_INVALID', 'no SVID yet');
    return { key: this.svid.keyPem, cert: this.svid.chainPem, ca: this.o.bundles.allRootsPem(), minVersion: 'TLSv1.2' };
  }

  private apply(): void {
    const opts = this.contextOptions();
    this.ctx = tls.createSecureContext(opts);
    for (const s of this.servers) s.setSecureContext(opts);
  }

  private onBundleChange(): void {
    if (!this.svid) return;
    this.apply();
    this.emit('bundle_updated');
  }

  private verifyChain(chain: Buffer[]): { ok: true; id: string } | { ok: false; reason: string; detail: string } {
    const now = this.o.clock.now();
    if (this.o.verifyChain) return this.o.verifyChain(chain, now);
    const v = verifySvidChain(chain, this.o.bundles, now);
    return v.ok ? { ok: true, id: v.spiffeId } : v;
  }

  private async renewOnce(): Promise<CurrentSvid> {
    if (this.inflight) return this.inflight;
    this.inflight = (async () => {
      const key = await this.o.generateKey();
      const csr = buildCsr(key, this.o.requestedSpiffeId ? [this.o.requestedSpiffeId] : []);
      const res = await this.o.issuer({ csr, current: this.svid });
      const chain = pemCertificates(res.chainPem);
      if (chain.length === 0) throw new ZtmError('ZTM_SVID_INVALID', 'the CA returned no certificate');
      const leaf = parseCertificate(chain[0]);
      if (!leaf.spki.equals(spkiDer(key))) throw new ZtmError('ZTM_SVID_INVALID', 'the CA returned a certificate for a different key');
      const v = this.verifyChain(chain);
      if (!v.ok) throw new ZtmError('ZTM_SVID_INVALID', `the CA returned an invalid ${this.o.verifyChain ? 'certificate' : 'SVID'} (${v.reason}: ${v.detail})`, {}, { reason: v.reason });
      const svid: CurrentSvid = {
        spiffeId: v.id,
        key,
        keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
        chainPem: res.chainPem,
        chain,
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
      };
      this.svid = svid;
      this.attempt = 0;
      this.apply();
      this.scheduleRenewal();
      this.scheduleExpiry();
      this.emit('rotated', svid);
      return svid;
    })();
    try {
      return await this.inflight;
    } finally {
      this.inflight = undefined;
    }
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.renewOnce();
    } catch (e) {
      if (this.stopped) return;
      const retryInMs = Math.min(this.o.backoffMaxMs, this.o.backoffInitialMs * 2 ** this.attempt);
      this.attempt++;
      this.schedule(retryInMs);
      this.emit('renewal_failed', { error: e as Error, attempt: this.attempt, retryInMs });
    }
  }

  private schedule(delay: number): void {
    this.o.clock.clearTimeout(this.timer);
    if (this.stopped) return;
    this.nextRenewalAt = this.o.clock.now() + delay;
    this.timer = this.o.clock.setTimeout(() => void this.renew(), delay);
  }

  private scheduleRenewal(): void {
    if (!this.svid) return;
    const nb = this.svid.notBefore.getTime();
    const life = this.svid.notAfter.getTime() - nb;
    const at = nb + life * (0.5 - this.o.jitter * this.o.random());
    this.schedule(Math.max(0, at - this.o.clock.now()));
  }

  private scheduleExpiry(): void {
    this.o.clock.clearTimeout(this.expiryTimer);
    if (this.stopped || !this.svid) return;
    const s = this.svid;
    this.expiryTimer = this.o.clock.setTimeout(
      () => {
        if (this.svid === s) this.emit('expired', s);
      },
      Math.max(0, s.notAfter.getTime() - this.o.clock.now() + 1),
    );
  }
}

/**
 * A certificate chain and its private key kept in one PEM file (fail-static restarts): read
 * back, checked with `verify` and for a key that matches the leaf. Returns the seed a
 * rotator can start from, null when there is no file, or the reason it is not usable.
 */
export async function loadPersistedCredential(
  file: string,
  verify: (chain: Buffer[]) => { ok: true } | { ok: false; reason: string; detail?: string },
): Promise<{ key: KeyObject; chainPem: string } | { unusable: string } | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  const certs = pemCertificates(text);
  const keyPem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(text)?.[0];
  const v = verify(certs);
  if (!v.ok) return { unusable: v.detail ? `${v.reason}: ${v.detail}` : v.reason };
  if (!keyPem) return { unusable: 'no private key' };
  const key = createPrivateKey(keyPem);
  if (!parseCertificate(certs[0]).spki.equals(createPublicKey(key).export({ type: 'spki', format: 'der' }))) return { unusable: 'the private key does not match the certificate' };
  return { key, chainPem: certs.map((c) => toPem(c)).join('') };
}
