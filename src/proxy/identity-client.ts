/**
 * The sidecar's identity: bootstrap an X.509-SVID from the control plane with a join
 * token, renew it over mTLS, persist it (fail-static restarts), and keep it fresh.
 */
import https from 'node:https';
import tls from 'node:tls';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { ZtmError } from '../errors.js';
import { BundleSet, SvidRotator, loadPersistedCredential, toPem, verifySvidChain, workloadSpiffeId } from '../identity/index.js';
import type { CurrentSvid } from '../identity/index.js';
import { writeFileAtomic } from '../identity/ca.js';
import { CONTROL_PLANE_SA } from '../control/protocol.js';
import type { Logger } from '../telemetry/log.js';
import { spiffeServerCheck } from './tls.js';

export interface IdentityClientOptions {
  controlPlane: { host: string; port: number };
  bundles: BundleSet;
  trustDomain: string;
  dataDir: string;
  token?: string;
  log: Logger;
}

export class IdentityClient {
  readonly rotator: SvidRotator;
  readonly controlPlaneId: string;
  private seed?: { key: KeyObject; chainPem: string };

  constructor(private readonly o: IdentityClientOptions) {
    this.controlPlaneId = workloadSpiffeId(o.trustDomain, 'istio-system', CONTROL_PLANE_SA).toString();
    this.rotator = new SvidRotator({
      bundles: o.bundles,
      generateKey: async () => {
        if (this.seed) return this.seed.key;
        const { generateKeyPair } = await import('node:crypto');
        return new Promise((resolve, reject) => generateKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))));
      },
      issuer: async ({ csr, current }) => {
        if (this.seed) {
          const chainPem = this.seed.chainPem;
          this.seed = undefined;
          return { chainPem };
        }
        const csrPem = toPem(csr, 'CERTIFICATE REQUEST');
        const res = current ? await this.call('/v1/renew', { csr: csrPem }, current) : await this.call('/v1/sign', { csr: csrPem, token: this.requireToken() });
        return { chainPem: res.chainPem };
      },
    });
    this.rotator.on('rotated', (s) => {
      void this.persist(s).catch((e) => o.log.error({ err: (e as Error).message }, 'could not persist the SVID'));
      o.log.info({ spiffeId: s.spiffeId, notAfter: s.notAfter.toISOString() }, 'workload certificate ready');
    });
    this.rotator.on('renewal_failed', ({ error, attempt, retryInMs }) => o.log.warn({ err: error.message, attempt, retryInMs }, 'certificate renewal failed; retrying (serving on the current certificate)'));
    this.rotator.on('expired', () => o.log.error('workload certificate expired: mTLS connections will fail until the control plane is reachable'));
  }

  /** Load a persisted, still-valid SVID (fail-static), then obtain or renew as needed. */
  async start(): Promise<CurrentSvid> {
    await this.loadPersisted();
    return this.rotator.start();
  }

  stop(): void {
    this.rotator.stop();
  }

  private requireToken(): string {
    if (!this.o.token) throw new ZtmError('ZTM_USAGE', 'no valid certificate on disk and no join token: pass --token (create one with `ztmesh token create`)');
    return this.o.token;
  }

  /** Certificate chain and private key in one file (0600), written atomically: never a mismatched pair. */
  private path(): string {
    return join(this.o.dataDir, 'svid.pem');
  }

  private async persist(s: CurrentSvid): Promise<void> {
    await writeFileAtomic(this.path(), s.chainPem + s.keyPem);
  }

  private async loadPersisted(): Promise<void> {
    const r = await loadPersistedCredential(this.path(), (certs) => verifySvidChain(certs, this.o.bundles));
    if (r && 'unusable' in r) this.o.log.warn({ reason: r.unusable }, 'the persisted certificate is not usable; requesting a new one');
    else if (r) this.seed = r;
  }

  /**
   * POST JSON to the control plane's TLS API, checking it is the control plane; `current`
   * is the client certificate (the SVID) for the mTLS endpoints. Resolves with the
   * `chainPem` the answer carries.
   */
  call(path: string, body: unknown, current?: CurrentSvid): Promise<{ chainPem: string; spiffeId: string }> {
    const data = JSON.stringify(body);
    const ctxOpts: tls.SecureContextOptions = { ca: this.o.bundles.allRootsPem(), minVersion: 'TLSv1.2', ...(current ? { key: current.keyPem, cert: current.chainPem } : {}) };
    return new Promise((resolve, reject) => {
      const opts: https.RequestOptions & tls.ConnectionOptions = {
          host: this.o.controlPlane.host,
          port: this.o.controlPlane.port,
          method: 'POST',
          path,
          agent: false,
          secureContext: tls.createSecureContext(ctxOpts),
          ALPNProtocols: ['http/1.1'],
          checkServerIdentity: spiffeServerCheck(this.o.bundles, (id) => id === this.controlPlaneId, this.controlPlaneId),
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
          timeout: 10_000,
      };
      const req = https.request(opts, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let parsed: { chainPem?: string; spiffeId?: string; error?: string };
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              return reject(new Error(`control plane answered ${res.statusCode} with a non-JSON body`));
            }
            if (res.statusCode !== 200 || typeof parsed.chainPem !== 'string') return reject(new ZtmError('ZTM_CA', `control plane refused ${path}: ${res.statusCode} ${parsed.error ?? ''}`));
            resolve({ chainPem: parsed.chainPem, spiffeId: parsed.spiffeId ?? '' });
          });
      });
      req.on('timeout', () => req.destroy(new Error('control plane did not answer within 10 s')));
      req.on('error', reject);
      req.end(data);
    });
  }
}
