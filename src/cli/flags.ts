/** Flag parsing shared by the commands: strict, with errors that name the flag. */
import { ZtmError } from '../errors.js';

/** For repeatable options: `.option('--x <v>', '...', collect, [])`. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** `k=v,k2=v2` → record. */
export function parseKeyValues(list: string | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (list ?? '').split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ZtmError('ZTM_USAGE', `${flag} expects key=value pairs, got "${part}"`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

export function parsePort(v: string, flag: string, allowZero = false): number {
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 65535 || (!allowZero && Number(v) === 0)) throw new ZtmError('ZTM_USAGE', `${flag} must be a port number${allowZero ? ' (0 = any free port)' : ''}, got "${v}"`);
  return Number(v);
}

export function parseHostPort(v: string, flag: string, allowZero = false): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):([0-9]{1,5})$/.exec(v);
  if (!m) throw new ZtmError('ZTM_USAGE', `${flag} must be host:port, got "${v}"`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: parsePort(m[2], flag, allowZero) };
}
