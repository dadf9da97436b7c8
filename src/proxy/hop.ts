/** Header hygiene when forwarding between hops. */
import type { Agent, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { Socket } from 'node:net';

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

/**
 * Headers node:http keeps only the first of when it builds `message.headers` (the others it
 * joins, `set-cookie` it lists); forwardRawHeaders drops the repeats of these the same way.
 */
const FIRST_ONLY = new Map(
  ['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent'].map((h, i) => [h, 1 << i]),
);

/**
 * As forwardHeaders, from `message.rawHeaders` into the flat `[name, value, …]` list that
 * `writeHead` takes: the same headers with lower-case names (repeated ones as separate lines,
 * which HTTP defines as equivalent to the joined value), without building `message.headers`
 * (node:http builds it lazily, on first access) or an intermediate object.
 */
export function forwardRawHeaders(raw: readonly string[], drop: ReadonlySet<string> = NOTHING): string[] {
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      const n = connectionNamed(raw[i + 1]);
      if (n) for (const h of n) (named ??= new Set()).add(h);
    }
  }
  const out: string[] = [];
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(k) || drop.has(k) || (named !== null && named.has(k))) continue;
    const bit = FIRST_ONLY.get(k);
    if (bit !== undefined) {
      if (seen & bit) continue;
      seen |= bit;
    }
    out.push(k, raw[i + 1]);
  }
  return out;
}

/** The first value of header `name` (lower-case) in `raw`, as `message.headers[name]` has it for the single-valued headers. */
export function rawHeader(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === name.length && raw[i].toLowerCase() === name) return raw[i + 1];
  }
  return undefined;
}

/**
 * The TLS server name node:http derives from a request's Host header (https.Agent's
 * calculateServerName): the host without its port or brackets, none for an IP address.
 * A request sent with a `[name, value, …]` header list must pass it as `servername`: node
 * only reads the Host of headers given as an object.
 */
export function serverNameOf(host: string): string {
  let name: string;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    name = end === -1 ? host : host.slice(1, end);
  } else name = host.split(':', 1)[0];
  return isIP(name) ? '' : name;
}

const KEEP_ALIVE_HINT_BUFFER_MS = 1000;

/**
 * Make `agent` put a socket back in its pool as node:http's Agent#keepSocketAlive does
 * (TCP keep-alive, unref, the pool's timeout shortened by the server's `Keep-Alive: timeout=`
 * hint less a second, not kept at all when that leaves nothing), reading the hint from the
 * response's rawHeaders: node's own reads `res.headers`, which builds the response's header
 * object (lazily built otherwise) once per response just for this.
 */
export function keepAliveFromRawHeaders<A extends Agent>(agent: A): A {
  const a = agent as unknown as { keepAliveMsecs: number; options: { timeout?: number }; keepSocketAlive(socket: Socket): boolean };
  a.keepSocketAlive = (socket: Socket): boolean => {
    socket.setKeepAlive(true, a.keepAliveMsecs);
    socket.unref();
    let timeout = a.options.timeout || 0;
    let keep = true;
    const res = (socket as unknown as { _httpMessage?: { res?: IncomingMessage } })._httpMessage?.res;
    const hintValue = res ? rawHeader(res.rawHeaders, 'keep-alive') : undefined;
    const hint = hintValue ? /^timeout=(\d+)/.exec(hintValue)?.[1] : undefined;
    if (hint) {
      let serverMs = Number.parseInt(hint, 10) * 1000 - KEEP_ALIVE_HINT_BUFFER_MS;
      serverMs = serverMs > 0 ? serverMs : 0;
      if (serverMs === 0) keep = false;
      else if (serverMs < timeout) timeout = serverMs;
    }
    if ((socket as { timeout?: number }).timeout !== timeout) socket.setTimeout(timeout);
    return keep;
  };
  return agent;
}
