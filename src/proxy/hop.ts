/** Header hygiene when forwarding between hops. */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const NOTHING: ReadonlySet<string> = new Set();

/** Copy headers minus hop-by-hop ones (and those named in `Connection`), minus `drop`. */
export function forwardHeaders(h: IncomingHttpHeaders, drop: ReadonlySet<string> = NOTHING): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = connectionNamed(h.connection);
  for (const k in h) {
    if (HOP_BY_HOP.has(k) || drop.has(k) || (named !== null && named.has(k))) continue;
    const v = h[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * Header names listed in `Connection` (lower-cased), or null when it names none beyond
 * the usual `keep-alive`/`close` (hop-by-hop or not a header): the common case allocates nothing.
 */
function connectionNamed(c: string | undefined): Set<string> | null {
  if (c === undefined || c === '') return null;
  const lc = c.toLowerCase();
  if (lc === 'keep-alive' || lc === 'close') return null;
  const named = new Set<string>();
  for (const part of lc.split(',')) {
    const t = part.trim();
    if (t) named.add(t);
  }
  return named;
}
