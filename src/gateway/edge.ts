/**
 * Edge checks as pure functions: the client address (peer, or X-Forwarded-For counted from
 * the right past the trusted proxies), IP allow/deny lists, request-smuggling ambiguities
 * in the raw header list, and request size limits on the declared length.
 */
import ipaddr from 'ipaddr.js';

import { parseAddress } from '../policy/client-address.js';
import { cidrRange, inRanges } from '../policy/match.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

// The client address is shared with sidecars (remote.ip); it lives in src/policy.
export { clientAddress, parseAddress } from '../policy/client-address.js';

export interface IpAccess {
  allow: [Addr, number][];
  deny: [Addr, number][];
}

export function compileIpAccess(spec: { allow?: string[]; deny?: string[] } | undefined): IpAccess {
  return { allow: (spec?.allow ?? []).map(cidrRange), deny: (spec?.deny ?? []).map(cidrRange) };
}

const inList = inRanges;

/** Deny wins; then a non-empty allow list refuses everything it does not hold. */
export function ipAllowed(acl: IpAccess, address: string): { ok: true } | { ok: false; reason: string } {
  if (!acl.allow.length && !acl.deny.length) return { ok: true };
  const a = parseAddress(address);
  if (!a) return { ok: false, reason: `client address "${address}" is not an IP address` };
  if (inList(a, acl.deny)) return { ok: false, reason: `${address} is in the deny list` };
  if (acl.allow.length && !inList(a, acl.allow)) return { ok: false, reason: `${address} is not in the allow list` };
  return { ok: true };
}

/**
 * Refuse framing a proxy and its upstream could read differently (request smuggling):
 * Content-Length together with Transfer-Encoding, any Transfer-Encoding other than exactly
 * `chunked`, repeated Transfer-Encoding, repeated or malformed Content-Length, and header
 * names or values with whitespace or control-character tricks. `raw` is rawHeaders.
 */
export function smugglingProblem(raw: readonly string[]): string | null {
  let cl: string | null = null;
  let te = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1] ?? '';
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return `malformed header name "${name}"`;
    if (/[\0\r\n]/.test(value)) return `control characters in header ${name}`;
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      if (cl !== null) return 'duplicate Content-Length';
      if (!/^[0-9]{1,15}$/.test(value)) return `malformed Content-Length "${value}"`;
      cl = value;
    } else if (lower === 'transfer-encoding') {
      te++;
      if (te > 1) return 'repeated Transfer-Encoding';
      if (value !== 'chunked' && value.toLowerCase() !== 'chunked') return `Transfer-Encoding "${value}" is not exactly "chunked"`;
      if (value.trim() !== value) return 'Transfer-Encoding with surrounding whitespace';
    }
  }
  if (cl !== null && te > 0) return 'both Content-Length and Transfer-Encoding';
  return null;
}

export interface SizeLimit {
  maxBytes: number | null;
  requireContentLength: boolean;
}

/** The status for a request's declared framing before any body is read (null: go on and count). */
export function sizeCheck(limit: SizeLimit, req: { method: string; headers: Record<string, string | string[] | undefined> }): { status: 411 | 413 | 417; reason: string } | null {
  const cl = req.headers['content-length'];
  const te = req.headers['transfer-encoding'];
  const hasBody = cl !== undefined ? Number(cl) > 0 : te !== undefined;
  const expect = String(req.headers.expect ?? '').toLowerCase();
  if (limit.requireContentLength && te !== undefined) return { status: 411, reason: 'a Content-Length is required (chunked bodies are not accepted here)' };
  if (limit.maxBytes !== null && cl !== undefined && Number(cl) > limit.maxBytes) {
    if (expect === '100-continue') return { status: 417, reason: `Content-Length ${cl} is over the limit of ${limit.maxBytes} bytes (Expect: 100-continue refused)` };
    return { status: 413, reason: `Content-Length ${cl} is over the limit of ${limit.maxBytes} bytes` };
  }
  void hasBody;
  return null;
}
