/**
 * The CA's request-facing side: attest a workload (join token or current SVID),
 * check the CSR's proof of possession, and issue its X.509-SVID.
 */
import { ZtmError } from '../errors.js';
import { CertificateAuthority, checkCsr, checkRequestedIdentity, type IssuedSvid } from './ca.js';
import { JoinTokenStore } from './join-token.js';
import { workloadSpiffeId } from './spiffe-id.js';
import type { BundleSource } from './bundle.js';
import { verifySvidChain, type CertInput } from './verify.js';

export interface IssueWithTokenRequest {
  csr: Buffer | string;
  token: string;
  ttlMs?: number;
}

export class IdentityAuthority {
  constructor(
    readonly ca: CertificateAuthority,
    readonly tokens: JoinTokenStore,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Bootstrap: the CSR must verify (proof of possession) before the token is burnt;
   * the SPIFFE ID comes from the token's binding, never from the request.
   */
  async issueWithJoinToken(req: IssueWithTokenRequest): Promise<IssuedSvid> {
    const info = checkCsr(req.csr);
    const pending = await this.tokens.peek(req.token);
    const id = workloadSpiffeId(this.ca.trustDomain, pending.namespace, pending.serviceAccount);
    checkRequestedIdentity(info, id.toString());
    const att = await this.tokens.consume(req.token);
    return this.ca.issue(info, { spiffeId: workloadSpiffeId(this.ca.trustDomain, att.namespace, att.serviceAccount), ttlMs: req.ttlMs, now: this.clock() });
  }

  /** Renewal: the workload proves its current identity with its (still valid) SVID. */
  renewWithSvid(req: { csr: Buffer | string; currentChain: CertInput[]; bundles: BundleSource; ttlMs?: number }): IssuedSvid {
    const now = this.clock();
    const v = verifySvidChain(req.currentChain, req.bundles, now, { expectedTrustDomain: this.ca.trustDomain });
    if (!v.ok) throw new ZtmError('ZTM_SVID_INVALID', `cannot renew: the current SVID is not valid (${v.reason}: ${v.detail})`, {}, { reason: v.reason });
    const info = checkCsr(req.csr);
    checkRequestedIdentity(info, v.spiffeId);
    return this.ca.issue(info, { spiffeId: v.id, ttlMs: req.ttlMs, now });
  }
}
