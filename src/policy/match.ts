/**
 * Compiled matchers for Istio's value syntax: exact, `prefix*`, `*suffix` and `*`
 * (presence: any non-empty value). Lists are OR'd; exact values go into a Set so a
 * long principal list costs one lookup. Everything here is built once per snapshot.
 */
import ipaddr from 'ipaddr.js';
import { parseAddress } from './client-address.js';

export type StringTest = (v: string) => boolean;

export interface StringMatchOptions {
  ignoreCase?: boolean;
}

/** Istio's conversion: `*` → presence, `*x` → suffix, `x*` → prefix, otherwise exact. */
export function compileStringList(values: readonly string[], opts: StringMatchOptions = {}): StringTest {
  const norm = opts.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let presence = false;
  for (const raw of values) {
    const v = norm(raw);
    if (v === '*') presence = true;
    else if (v.startsWith('*')) suffixes.push(v.slice(1));
    else if (v.endsWith('*')) prefixes.push(v.slice(0, -1));
    else exact.add(v);
  }
  if (presence) return (s) => s.length > 0;
  const np = prefixes.length;
  const ns = suffixes.length;
  // Exact values go through a Set even when there is one: the request string's hash is
  // computed once and cached, where `===` would compare long shared prefixes every time.
  if (np === 0 && ns === 0) return opts.ignoreCase ? (s) => exact.has(s.toLowerCase()) : (s) => exact.has(s);
  return (input) => {
    const s = opts.ignoreCase ? input.toLowerCase() : input;
    if (exact.has(s)) return true;
    for (let i = 0; i < np; i++) if (s.startsWith(prefixes[i])) return true;
    for (let i = 0; i < ns; i++) if (s.endsWith(suffixes[i])) return true;
    return false;
  };
}

/** Split `host[:port]` (IPv6 literals in brackets) into the host without port. */
export function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 0 ? host.slice(0, end + 1) : host;
  }
  const colon = host.lastIndexOf(':');
  if (colon < 0) return host;
  return /^[0-9]+$/.test(host.slice(colon + 1)) ? host.slice(0, colon) : host;
}

/** `hosts`: case-insensitive; a value without a port matches the host with any port. */
export function compileHostList(values: readonly string[]): StringTest {
  const withPort = compileStringList(values, { ignoreCase: true });
  return (host) => {
    if (withPort(host)) return true;
    const bare = stripPort(host);
    return bare !== host && withPort(bare);
  };
}

/**
 * Istio/Envoy path templates: `{*}` is one non-empty path segment of pchars, `{**}`
 * is the rest of the path (zero or more segments); otherwise the plain Istio syntax.
 */
export function compilePathList(values: readonly string[]): StringTest {
  const plain: string[] = [];
  const templates: RegExp[] = [];
  for (const v of values) {
    if (v.includes('{*}') || v.includes('{**}')) templates.push(templateRegex(v));
    else plain.push(v);
  }
  const p = plain.length ? compileStringList(plain) : null;
  if (templates.length === 0) return p ?? (() => false);
  return (path) => {
    if (p?.(path)) return true;
    for (const re of templates) if (re.test(path)) return true;
    return false;
  };
}

const PCHAR = "[A-Za-z0-9\\-._~%!$&'()+,;:@=]";

function templateRegex(t: string): RegExp {
  let out = '^';
  let i = 0;
  while (i < t.length) {
    if (t.startsWith('{**}', i)) {
      out += `(?:${PCHAR}|/)*`;
      i += 4;
    } else if (t.startsWith('{*}', i)) {
      out += `${PCHAR}+`;
      i += 3;
    } else {
      out += t[i].replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i++;
    }
  }
  return new RegExp(out + '$');
}

export type ParsedIp = ipaddr.IPv4 | ipaddr.IPv6;

/** Parse an address as a socket reports it; IPv4-mapped IPv6 becomes IPv4. Undefined when not an IP. */
export function parseIp(s: string | undefined): ParsedIp | undefined {
  return s ? (parseAddress(s) ?? undefined) : undefined;
}

export type IpTest = (ip: ParsedIp | undefined) => boolean;

/** A list of addresses and CIDR blocks, OR'd. An absent address matches nothing. */
/** One address or CIDR block as [range, prefix bits]; an IPv4-mapped IPv6 block (≥ /96) folds to IPv4, as addresses do. */
export function cidrRange(v: string): [ParsedIp, number] {
  if (v.includes('/')) {
    const [a, bits] = ipaddr.parseCIDR(v);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) return [(a as ipaddr.IPv6).toIPv4Address(), bits - 96];
    return [a, bits];
  }
  const a = ipaddr.process(v);
  return [a, a.kind() === 'ipv4' ? 32 : 128];
}

export function inRanges(ip: ParsedIp, ranges: readonly [ParsedIp, number][]): boolean {
  const kind = ip.kind();
  for (const [range, bits] of ranges) if (range.kind() === kind && (ip as ipaddr.IPv4).match(range as ipaddr.IPv4, bits)) return true;
  return false;
}

export function compileCidrList(values: readonly string[]): IpTest {
  const ranges = values.map(cidrRange);
  return (ip) => ip !== undefined && inRanges(ip, ranges);
}
