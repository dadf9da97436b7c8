/**
 * The gateway's HTTPS certificate issued by the mesh CA for DNS names (`--dns-names`). The
 * gateway generates its own P-256 key (it never leaves the process and its data dir), sends
 * a CSR with the names over its mTLS connection to the control plane (POST /v1/sign-server,
 * authenticated by its SVID), and keeps the certificate fresh with the SVID rotator's
 * schedule (half the lifetime minus jitter, exponential backoff on failure), swapping it
 * into the live HTTPS server for new connections (`attachServer` → `setSecureContext`).
 * Certificate and key are kept in `<data-dir>/server-cert.pem` (0600): a restart while the
 * control plane is away keeps serving on a still-valid certificate (fail-static).
 */
import { join } from 'node:path';
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { SvidRotator, loadPersistedCredential, parseCertificate, toPem, verifyServerCertChain } from '../identity/index.js';
import type { BundleSet, CurrentSvid } from '../identity/index.js';
import { writeFileAtomic } from '../identity/ca.js';
import { ZtmError } from '../errors.js';
import type { IdentityClient } from '../proxy/identity-client.js';
import type { Logger } from '../telemetry/log.js';

export interface ServerCertClientOptions {
  /** Normalized DNS names (see normalizeDnsNames). */
  dnsNames: string[];
  /** The gateway's workload identity: its SVID authenticates the request. */
  identity: IdentityClient;
  bundles: BundleSet;
  trustDomain: string;
  dataDir: string;
  log: Logger;
  /**
   * Resolves once the gateway's registration (its labels, which the Gateways' selectors
   * match) is live at the control plane; rejects when that takes too long.
   */
  registered: () => Promise<void>;
}

export const SERVER_CERT_FILE = 'server-cert.pem';

export class ServerCertClient {
  readonly rotator: SvidRotator;
  private seed?: { key: KeyObject; chainPem: string };

  constructor(private readonly o: ServerCertClientOptions) {
    this.rotator = new SvidRotator({
      bundles: o.bundles,
      verifyChain: (chain, now) => {
        const v = verifyServerCertChain(chain, o.bundles, o.trustDomain, now, o.dnsNames);
        return v.ok ? { ok: true, id: v.dnsNames.join(',') } : v;
      },
      generateKey: async () => {
        if (this.seed) return this.seed.key;
        return new Promise((resolve, reject) => generateKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))));
      },
      issuer: async ({ csr }) => {
        if (this.seed) {
          const chainPem = this.seed.chainPem;
          this.seed = undefined;
          return { chainPem };
        }
        await o.registered();
        const svid = o.identity.rotator.current();
        if (!svid) throw new ZtmError('ZTM_SVID_INVALID', 'the gateway has no workload certificate to authenticate with');
        const res = await o.identity.call('/v1/sign-server', { csr: toPem(csr, 'CERTIFICATE REQUEST'), dnsNames: o.dnsNames }, svid);
        return { chainPem: res.chainPem };
      },
    });
    this.rotator.on('rotated', (c) => {
      void writeFileAtomic(this.path(), c.chainPem + c.keyPem).catch((e) => o.log.error({ err: (e as Error).message }, 'could not persist the server certificate'));
      o.log.info({ dnsNames: o.dnsNames, notAfter: c.notAfter.toISOString(), serial: parseCertificate(c.chain[0]).serialHex }, 'HTTPS server certificate ready');
    });
    this.rotator.on('renewal_failed', ({ error, attempt, retryInMs }) => o.log.warn({ err: error.message, attempt, retryInMs }, 'server certificate renewal failed; retrying (serving on the current certificate)'));
    this.rotator.on('expired', () => o.log.error({ dnsNames: o.dnsNames }, 'the HTTPS server certificate expired: clients will refuse it until the control plane issues a new one'));
  }

  /** Use a persisted, still-valid certificate for exactly these names first (fail-static), then renew on schedule. */
  async start(): Promise<CurrentSvid> {
    await this.loadPersisted();
    return this.rotator.start();
  }

  stop(): void {
    this.rotator.stop();
  }

  get dnsNames(): readonly string[] {
    return this.o.dnsNames;
  }

  current(): CurrentSvid | undefined {
    return this.rotator.current();
  }

  private path(): string {
    return join(this.o.dataDir, SERVER_CERT_FILE);
  }

  private async loadPersisted(): Promise<void> {
    const r = await loadPersistedCredential(this.path(), (certs) => verifyServerCertChain(certs, this.o.bundles, this.o.trustDomain, Date.now(), this.o.dnsNames));
    if (r && 'unusable' in r) this.o.log.warn({ reason: r.unusable }, 'the persisted server certificate is not usable; requesting a new one');
    else if (r) this.seed = r;
  }
}
