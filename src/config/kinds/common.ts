import type { PathSeg, Schema } from '../schema.js';
import { map, obj, str } from '../schema.js';
import ipaddr from 'ipaddr.js';

/** A semantic check reports problems relative to the document root. */
export type Report = (path: PathSeg[], message: string) => void;

export interface KindDef {
  kind: string;
  apiVersions: readonly string[];
  spec: Schema;
  /** Whether `spec` may be absent (treated as `{}`). */
  specOptional?: boolean;
  validate?(spec: any, report: Report, meta: { name: string; namespace: string }): void;
}

export const selectorSchema: Schema = obj({ matchLabels: map(str()) });

/** Istio's validateWorkloadSelector: no empty keys, no wildcards. */
export function validateSelector(sel: { matchLabels?: Record<string, string> } | undefined, path: PathSeg[], report: Report): void {
  if (!sel?.matchLabels) return;
  for (const [k, v] of Object.entries(sel.matchLabels)) {
    if (k === '') report([...path, 'matchLabels'], `empty key is not supported in selector: "${k}=${v}"`);
    if (k.includes('*') || String(v).includes('*')) report([...path, 'matchLabels', k], `wildcard is not supported in selector: "${k}=${v}"`);
  }
}

/** A single IP address or a CIDR prefix, IPv4 or IPv6, as Go's netip parses them (strict). */
export function ipOrCidrError(v: string): string | undefined {
  if (v.includes('/')) {
    const [addr, bits, ...rest] = v.split('/');
    if (rest.length || !/^[0-9]{1,3}$/.test(bits) || !isStrictIp(addr)) return `bad CIDR range (${v})`;
    const max = ipaddr.parse(addr).kind() === 'ipv4' ? 32 : 128;
    if (Number(bits) > max) return `bad CIDR range (${v}): prefix length ${bits} is out of range`;
    return undefined;
  }
  return isStrictIp(v) ? undefined : `bad IP address (${v})`;
}

/** Dotted-quad IPv4 without leading zeros, or an IPv6 literal (no zone, no brackets). */
export function isStrictIp(s: string): boolean {
  if (/^[0-9.]+$/.test(s)) {
    const parts = s.split('.');
    return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
  }
  if (!s.includes(':') || s.includes('%')) return false;
  return ipaddr.IPv6.isValid(s);
}

export function portError(v: string): string | undefined {
  return /^[0-9]{1,5}$/.test(v) && Number(v) <= 65535 ? undefined : `bad port (${v})`;
}
