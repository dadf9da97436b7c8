/**
 * The original client address: the peer, or — behind N trusted proxies — the N-th
 * X-Forwarded-For entry from the right (Envoy's xff_num_trusted_hops). Used for
 * `remote.ip`/`remoteIpBlocks` by sidecars and for the gateway's IP access lists.
 */
import ipaddr from 'ipaddr.js';

export type Addr = ipaddr.IPv4 | ipaddr.IPv6;

/** Parse an address, folding IPv4-mapped IPv6 (`::ffff:1.2.3.4`) to IPv4; null when malformed. */
export function parseAddress(s: string): Addr | null {
  const t = s.trim().replace(/^\[(.*)\]$/, '$1');
  if (!t || t.includes('%')) return null;
  if (!ipaddr.isValid(t)) return null;
  if (/^[0-9.]+$/.test(t) && !ipaddr.IPv4.isValidFourPartDecimal(t)) return null;
  return ipaddr.process(t);
}

/**
 * The client address. With `trustedProxies` = N > 0 the immediate peer is the last of N
 * proxies, and the client is the N-th X-Forwarded-For entry from the right (Envoy's
 * xff_num_trusted_hops). With fewer entries than that, the peer address is used.
 */
export function clientAddress(peer: string, xff: string | string[] | undefined, trustedProxies: number): { ok: true; address: string } | { ok: false; reason: string } {
  const p = parseAddress(peer);
  const peerText = p ? p.toString() : peer;
  if (trustedProxies <= 0 || xff === undefined) return { ok: true, address: peerText };
  const list = (Array.isArray(xff) ? xff.join(',') : xff)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length < trustedProxies) return { ok: true, address: peerText };
  const chosen = list[list.length - trustedProxies];
  const a = parseAddress(chosen);
  if (!a) return { ok: false, reason: `X-Forwarded-For entry "${chosen}" is not an IP address` };
  return { ok: true, address: a.toString() };
}

