/** units.*, semver.*, uuid.* built-ins. */
import { randomUUID } from 'node:crypto';
import semver from 'semver';
import { builtinErr, typeErr } from '../errors.js';
import { num, RObject, type Value } from '../value.js';
import { reg, str } from './registry.js';

// ---------- units ----------
const POW10 = (n: number): bigint => 10n ** BigInt(n);
function decimalParts(s: string): { mant: bigint; scale: number } | undefined {
  // s: [+-]?digits[.digits][e[+-]digits]
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) return undefined;
  const frac = m[3] ?? '';
  let mant = BigInt((m[2] || '0') + frac);
  if (m[1] === '-') mant = -mant;
  let scale = frac.length;
  if (m[4]) scale -= parseInt(m[4], 10);
  return { mant, scale };
}
function scaled(mant: bigint, scale: number, mult: bigint, multScale = 0): bigint | number {
  const total = scale + multScale;
  const v = mant * mult;
  if (total <= 0) return v * POW10(-total);
  const d = POW10(total);
  if (v % d === 0n) return v / d;
  return num(Number(v) / Number(d));
}

const SI: Record<string, [bigint, number]> = {
  '': [1n, 0],
  k: [1000n, 0],
  ki: [1024n, 0],
  m: [1000000n, 0],
  mi: [1n << 20n, 0],
  g: [10n ** 9n, 0],
  gi: [1n << 30n, 0],
  t: [10n ** 12n, 0],
  ti: [1n << 40n, 0],
  p: [10n ** 15n, 0],
  pi: [1n << 50n, 0],
  e: [10n ** 18n, 0],
  ei: [1n << 60n, 0],
};

function splitAmount(s: string): [string, string] {
  const m = /^[+-]?[\d.]+(?:[eE][+-]?\d+)?/.exec(s);
  if (!m) return ['', s];
  return [m[0], s.slice(m[0].length)];
}

reg('units.parse', 1, (a) => {
  const fn = 'units.parse';
  let s = str(fn, a, 0).replace(/"/g, '');
  if (/\s/.test(s)) throw builtinErr(fn, 'spaces not allowed in resource strings');
  const [amount, unit0] = splitAmount(s);
  if (amount === '') throw builtinErr(fn, 'no amount provided');
  const d = decimalParts(amount);
  if (!d) throw builtinErr(fn, 'could not parse amount to a number');
  if (unit0 === 'm') return scaled(d.mant, d.scale, 1n, 3);
  const u = unit0.toLowerCase();
  const mult = SI[u];
  if (!mult) throw builtinErr(fn, `unknown unit ${unit0}`);
  s = '';
  return scaled(d.mant, d.scale, mult[0]);
});

const BYTES: Record<string, bigint> = {
  '': 1n,
  b: 1n,
  k: 1000n,
  kb: 1000n,
  ki: 1024n,
  kib: 1024n,
  m: 10n ** 6n,
  mb: 10n ** 6n,
  mi: 1n << 20n,
  mib: 1n << 20n,
  g: 10n ** 9n,
  gb: 10n ** 9n,
  gi: 1n << 30n,
  gib: 1n << 30n,
  t: 10n ** 12n,
  tb: 10n ** 12n,
  ti: 1n << 40n,
  tib: 1n << 40n,
  p: 10n ** 15n,
  pb: 10n ** 15n,
  pi: 1n << 50n,
  pib: 1n << 50n,
  e: 10n ** 18n,
  eb: 10n ** 18n,
  ei: 1n << 60n,
  eib: 1n << 60n,
};
reg('units.parse_bytes', 1, (a) => {
  const fn = 'units.parse_bytes';
  const s = str(fn, a, 0).replace(/"/g, '');
  if (/\s/.test(s)) throw builtinErr(fn, 'spaces not allowed in resource strings');
  const m = /^([0-9.]*)(.*)$/.exec(s)!;
  if (m[1] === '') throw builtinErr(fn, 'no byte amount provided');
  const d = decimalParts(m[1]);
  if (!d) throw builtinErr(fn, 'could not parse byte amount to a number');
  const mult = BYTES[m[2].toLowerCase()];
  if (mult === undefined) throw builtinErr(fn, `unknown unit ${m[2]}`);
  const v = d.mant * mult;
  if (d.scale <= 0) return v * POW10(-d.scale);
  return v / POW10(d.scale);
});

// ---------- semver ----------
function sv(fn: string, s: string, pos = 1): semver.SemVer {
  const v = semver.parse(s, { loose: false });
  if (!v || s.startsWith('v')) throw builtinErr(fn, `operand ${pos}: string ${JSON.stringify(s)} is not a valid SemVer`);
  return v;
}
reg('semver.is_valid', 1, ([v]) => typeof v === 'string' && !v.startsWith('v') && semver.valid(v) !== null);
reg('semver.compare', 2, (a) => {
  const x = sv('semver.compare', str('semver.compare', a, 0));
  const y = sv('semver.compare', str('semver.compare', a, 1), 2);
  return BigInt(semver.compare(x, y));
});

// ---------- uuid ----------
reg('uuid.rfc4122', 1, (a, ctx) => {
  const k = 'uuid.rfc4122:' + str('uuid.rfc4122', a, 0);
  const c = ctx.cache.get(k);
  if (c !== undefined) return c;
  const u = randomUUID();
  ctx.cache.set(k, u);
  return u;
});
reg('uuid.parse', 1, (a) => {
  let s = str('uuid.parse', a, 0);
  if (/^urn:uuid:/i.test(s)) s = s.slice(9);
  else if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  let hex: string;
  if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)) hex = s.replace(/-/g, '');
  else if (/^[0-9a-fA-F]{32}$/.test(s)) hex = s;
  else return undefined;
  const b = Buffer.from(hex, 'hex');
  const version = b[6] >> 4;
  const v8 = b[8];
  const variant = (v8 & 0x80) === 0 ? 'Reserved, NCS backward compatibility' : (v8 & 0xc0) === 0x80 ? 'RFC4122' : (v8 & 0xe0) === 0xc0 ? 'Reserved, Microsoft Corporation backward compatibility' : 'Reserved, future definition';
  const out = new RObject();
  out.set('version', BigInt(version));
  out.set('variant', variant);
  if (version === 1 || version === 2) {
    let timeLow = BigInt(b.readUInt32BE(0));
    const timeMid = BigInt(b.readUInt16BE(4));
    const timeHi = BigInt(b.readUInt16BE(6) & 0x0fff);
    const t100 = (timeHi << 48n) | (timeMid << 32n) | timeLow;
    const unixNs = (t100 - 122192928000000000n) * 100n;
    out.set('time', unixNs);
    const clockSeq = BigInt(((b[8] & 0x3f) << 8) | b[9]);
    out.set('clocksequence', version === 2 ? BigInt((b[8] & 0x3f) << 8) : clockSeq);
    const node = [...b.subarray(10, 16)].map((x) => x.toString(16).padStart(2, '0'));
    out.set('nodeid', node.join('-'));
    out.set('macvariables', `${b[10] & 0x02 ? 'local' : 'global'}:${b[10] & 0x01 ? 'multicast' : 'unicast'}`);
    if (version === 2) {
      const dom = b[9];
      out.set('domain', dom === 0 ? 'Person' : dom === 1 ? 'Group' : dom === 2 ? 'Org' : `Domain${dom}`);
      out.set('id', BigInt(b.readUInt32BE(0)));
    }
  }
  return out as Value;
});

// ---------- http.send (parameter validation only: the engine makes no network calls) ----------
const HTTP_KEYS = new Set([
  'method', 'url', 'body', 'enable_redirect', 'force_json_decode', 'force_yaml_decode', 'headers', 'raw_body', 'tls_use_system_certs',
  'tls_ca_cert', 'tls_ca_cert_file', 'tls_ca_cert_env_variable', 'tls_client_cert', 'tls_client_cert_file', 'tls_client_cert_env_variable',
  'tls_client_key', 'tls_client_key_file', 'tls_client_key_env_variable', 'tls_insecure_skip_verify', 'tls_server_name', 'timeout',
  'cache', 'force_cache', 'force_cache_duration_seconds', 'raise_error', 'caching_mode', 'max_retry_attempts', 'cache_ignored_headers',
]);
reg('http.send', 1, ([req]) => {
  if (!(req instanceof RObject)) throw typeErr('http.send', 'operand 1 must be object');
  const bad = req.keys().filter((k) => typeof k !== 'string' || !HTTP_KEYS.has(k));
  if (bad.length) throw typeErr('http.send', `invalid request parameters(s): {${bad.map((k) => JSON.stringify(k)).join(', ')}}`);
  const missing = ['method', 'url'].filter((k) => !req.has(k));
  if (missing.length) throw typeErr('http.send', `missing required request parameters(s): {${missing.map((k) => JSON.stringify(k)).join(', ')}}`);
  throw builtinErr('http.send', 'network access is not available in this engine (mock http.send with `with`)');
});
