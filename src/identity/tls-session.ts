/**
 * Client-side TLS session resumption that keeps the peer's SPIFFE identity.
 *
 * On a resumed TLS 1.3 session Node's client reports an empty peer certificate, so
 * `peerIdentity` rejects it (`empty_certificate`). A resumed session is bound to the
 * original full handshake, so the identity can instead come from the certificate chain
 * verified then: this class remembers that chain with each session ticket and, on
 * resumption, re-verifies it against the CURRENT bundles and clock (a retired root or
 * an expired certificate still fails).
 *
 *   const offer = sessions.offer(peerKey);
 *   const sock = tls.connect({ ...opts, session: offer?.session });
 *   sessions.watch(sock, peerKey);
 *   sock.on('secureConnect', () => { const id = sessions.identify(sock, offer, bundles); ... });
 */
import type { TLSSocket } from 'node:tls';
import type { BundleSource } from './bundle.js';
import { peerIdentity, verifySvidChain, type SvidVerifyResult, type VerifyOptions } from './verify.js';

export interface SessionOffer {
  session: Buffer;
  /** The chain verified on the handshake that produced this session. */
  chain: Buffer[];
}

export class TlsSessionIdentities {
  private readonly byPeer = new Map<string, SessionOffer>();
  private readonly verifiedChain = new WeakMap<TLSSocket, Buffer[]>();

  constructor(private readonly maxPeers = 1024) {}

  /** The session to offer when connecting to `peerKey` (e.g. `host:port`), if any. */
  offer(peerKey: string): SessionOffer | undefined {
    return this.byPeer.get(peerKey);
  }

  /** Remember tickets this socket receives, together with its verified chain. */
  watch(socket: TLSSocket, peerKey: string): void {
    socket.on('session', (session: Buffer) => {
      const chain = this.verifiedChain.get(socket);
      if (!chain) return; // never store a ticket for an unverified peer
      this.byPeer.delete(peerKey);
      this.byPeer.set(peerKey, { session, chain });
      while (this.byPeer.size > this.maxPeers) this.byPeer.delete(this.byPeer.keys().next().value as string);
    });
  }

  /** Forget a peer (e.g. after an identity mismatch). */
  forget(peerKey: string): void {
    this.byPeer.delete(peerKey);
  }

  /**
   * The peer identity of a connected socket: from its certificate on a full handshake,
   * from the offered session's chain (re-verified now) on a resumed one.
   */
  identify(socket: TLSSocket, offered: SessionOffer | undefined, bundles: BundleSource, now: number = Date.now(), opts: VerifyOptions = {}): SvidVerifyResult {
    let r: SvidVerifyResult;
    if (socket.isSessionReused()) {
      if (!offered) return { ok: false, reason: 'empty_certificate', detail: 'the session was resumed but no session was offered by this cache' };
      r = verifySvidChain(offered.chain, bundles, now, opts);
    } else {
      r = peerIdentity(socket, bundles, now, opts);
    }
    if (r.ok) this.verifiedChain.set(socket, r.chain.slice(0, -1).map((c) => c.der));
    return r;
  }
}
