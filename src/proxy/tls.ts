/** TLS helpers shared by the sidecar's upstream, control-plane and bootstrap connections. */
import type { PeerCertificate, DetailedPeerCertificate } from 'node:tls';
import { verifySvidChain } from '../identity/verify.js';
import type { BundleSource } from '../identity/bundle.js';
import type { SvidRejectReason } from '../identity/verify.js';

export class PeerIdentityError extends Error {
  readonly code = 'ERR_ZTMESH_PEER_IDENTITY';
  constructor(
    message: string,
    readonly reason: SvidRejectReason | 'wrong_identity',
    readonly spiffeId?: string,
  ) {
    super(message);
  }
}

/**
 * A `checkServerIdentity` for Node TLS clients: the server must present a valid
 * X.509-SVID (checked against the bundle, not host names) whose SPIFFE ID `accept`s.
 * Node calls it on every full handshake, before any request byte is written; a
 * returned error aborts the connection.
 */
export function spiffeServerCheck(bundles: BundleSource, accept: (spiffeId: string) => boolean, describe: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const chain: Buffer[] = [];
    let c = cert as DetailedPeerCertificate | undefined;
    const seen = new Set<unknown>();
    while (c && c.raw && !seen.has(c) && chain.length < 10) {
      seen.add(c);
      chain.push(c.raw);
      c = c.issuerCertificate;
    }
    if (chain.length === 0) return new PeerIdentityError('the server presented no certificate', 'empty_certificate');
    const v = verifySvidChain(chain, bundles);
    if (!v.ok) return new PeerIdentityError(`the server's certificate is not a valid SVID (${v.reason}: ${v.detail})`, v.reason);
    if (!accept(v.spiffeId)) return new PeerIdentityError(`secure naming: the server is ${v.spiffeId}, not ${describe}`, 'wrong_identity', v.spiffeId);
    return undefined;
  };
}
